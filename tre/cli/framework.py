"""The CLI's machinery: a registry of commands, the context each runs in, and output.

A command is a plain function `f(ctx, args)` registered with `@command("group name", ...)`.
It declares the roles it needs; the framework resolves the acting user (`--as` or
`TRE_USER`), checks the role before the function runs, and audits a refusal. Commands print
through `ctx.emit`, which honours `--json`.
"""

from __future__ import annotations

import argparse
import datetime as dt
import importlib
import json
import sys
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from tre.enums import Role
from tre.errors import UsageError

if TYPE_CHECKING:  # imported when a command runs, so that `tre --help` answers at once
    from rich.console import Console

    from tre.config import Settings
    from tre.db import Clock, Store


def utc_now() -> dt.datetime:
    """The metadata store's clock (`tre.db.utc_now`), imported when a command runs."""
    from tre.db import utc_now as now

    return now()


ANY_ROLE = "any"  # a known, active user of any role


class LazyModule:
    """A module imported at its first use: command modules name the domain modules they call
    at the top (`approvals = lazy("tre.approvals")`), and `tre --help` imports none of them."""

    def __init__(self, name: str):
        self._name = name

    def __getattr__(self, attribute: str):
        return getattr(importlib.import_module(self._name), attribute)


def lazy(name: str) -> Any:
    return LazyModule(name)


class LazyChoices:
    """argparse choices that a domain module defines, read when a value is checked (give the
    argument a metavar, or argparse reads them when the parser is built)."""

    def __init__(self, module: str, name: str):
        self.module, self.name = module, name

    def _values(self):
        return getattr(importlib.import_module(self.module), self.name)

    def __contains__(self, value) -> bool:
        return value in self._values()

    def __iter__(self):
        return iter(self._values())


def positive_int(text: str) -> int:
    """An argparse type: a whole number above 0."""
    try:
        value = int(text)
    except ValueError:
        value = 0
    if value <= 0:
        raise argparse.ArgumentTypeError(f"{text!r} is not a whole number above 0")
    return value


def iso_date(text: str) -> dt.date:
    """An argparse type: YYYY-MM-DD."""
    try:
        return dt.date.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(f"{text!r} is not a date; use YYYY-MM-DD") from None


def moment(text: str) -> dt.datetime:
    """An argparse type: an ISO 8601 date or time, UTC unless a zone is given."""
    try:
        value = dt.datetime.fromisoformat(text)
    except ValueError:
        raise argparse.ArgumentTypeError(
            f"{text!r} is not a date or time; use ISO 8601, e.g. 2026-11-26 or 2026-11-26T14:00"
        ) from None
    return value if value.tzinfo else value.replace(tzinfo=dt.UTC)


@dataclass(frozen=True)
class Arg:
    names: tuple[str, ...]
    options: dict


def arg(*names: str, **options) -> Arg:
    """One argparse argument of a command: `arg("--role", choices=[...], help=...)`."""
    return Arg(names, options)


@dataclass(frozen=True)
class Command:
    path: tuple[str, ...]  # ("user", "add")
    func: Callable
    help: str
    args: tuple[Arg, ...]
    roles: tuple[str, ...] | None  # None: no acting user needed
    json: bool
    needs_store: bool
    bootstrap: bool  # allowed without a user while the store has no users at all

    @property
    def name(self) -> str:
        return "tre " + " ".join(self.path)


COMMANDS: dict[tuple[str, ...], Command] = {}
GROUPS: dict[str, str] = {}
GROUP_DEFAULTS: dict[str, str] = {}  # group -> the action `tre <group>` alone runs


def group(name: str, help: str, default: str | None = None) -> None:
    """Declare a command group (`tre user ...`) and its one-line help.

    With `default`, `tre <group>` alone runs `tre <group> <default>` with its default options.
    """
    GROUPS[name] = help
    if default:
        GROUP_DEFAULTS[name] = default


def command(
    path: str,
    *,
    help: str,
    args: Iterable[Arg] = (),
    roles: Iterable[Role | str] | str | None = ANY_ROLE,
    json: bool = True,
    needs_store: bool = True,
    bootstrap: bool = False,
):
    """Register `func` as the command `tre <path>`."""

    def register(func):
        key = tuple(path.split())
        if key in COMMANDS:
            raise AssertionError(f"command registered twice: tre {path}")
        needed = None if roles is None else ((roles,) if isinstance(roles, str) else tuple(str(r) for r in roles))
        COMMANDS[key] = Command(
            key, func, help, tuple(args), needed, json, needs_store or needed is not None, bootstrap
        )
        return func

    return register


@dataclass
class Context:
    """What a running command may use: settings, the store, the acting user, a clock, output."""

    settings: Settings
    environ: dict
    command: Command
    json: bool = False
    stdout: Any = field(default_factory=lambda: sys.stdout)
    stderr: Any = field(default_factory=lambda: sys.stderr)
    clock: Clock = utc_now
    actor: str = ""  # the acting user's name, once checked
    bootstrapping: bool = False
    _store: Store | None = None

    @property
    def store(self) -> Store:
        if self._store is None:
            from tre.db import Store

            self._store = Store(self.settings.db_url, clock=self.clock)
        return self._store

    def now(self) -> dt.datetime:
        return self.clock()

    def emit(self, data, text: str | Callable[[Console], None] | None = None) -> None:
        """Print `data` as JSON under --json, else `text` (a string or a function of a console)."""
        if self.json:
            self.stdout.write(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n")
            return
        if text is None:
            return
        if callable(text):
            text(self.console())
        else:
            self.stdout.write(text + ("\n" if not text.endswith("\n") else ""))

    def console(self) -> Console:
        from rich.console import Console

        return Console(file=self.stdout, highlight=False, soft_wrap=True, width=120)

    def info(self, message: str) -> None:
        """Progress and notices: to stderr, so that stdout stays parseable."""
        self.stderr.write(message + "\n")


def table(columns: Iterable[str], rows: Iterable[Iterable], title: str | None = None) -> Callable[[Console], None]:
    """A renderer for `ctx.emit` that prints a table."""

    def render(console: Console) -> None:
        from rich.table import Table

        t = Table(title=title, title_justify="left", show_edge=False, header_style="bold")
        for c in columns:
            t.add_column(c)
        for row in rows:
            t.add_row(*("" if v is None else str(v) for v in row))
        console.print(t)

    return render


class Parser(argparse.ArgumentParser):
    """argparse, but errors become one-line UsageErrors instead of usage dumps."""

    def error(self, message):
        raise UsageError(f"{message} (see `{self.prog} --help`)")


def build_parser() -> Parser:
    common = argparse.ArgumentParser(add_help=False)
    common.add_argument(
        "--as",
        dest="acting_user",
        metavar="NAME",
        default=argparse.SUPPRESS,
        help="act as this TRE user (default: $TRE_USER)",
    )
    parser = Parser(
        prog="tre",
        description="tre: a trusted research environment for Norwegian health-register data (KPR).",
        parents=[common],
    )
    groups = parser.add_subparsers(dest="group", metavar="COMMAND", parser_class=Parser)
    group_parsers: dict[str, argparse._SubParsersAction] = {}
    group_defaults: dict[str, tuple[argparse.ArgumentParser, argparse.ArgumentParser]] = {}
    gp_of: dict[str, argparse.ArgumentParser] = {}
    for key in sorted(COMMANDS, key=lambda k: (len(k) > 1, k)):
        cmd = COMMANDS[key]
        if len(key) == 1:
            sub = groups.add_parser(key[0], help=cmd.help, description=cmd.help, parents=[common])
        else:
            if key[0] not in group_parsers:
                gp = groups.add_parser(key[0], help=GROUPS.get(key[0], ""), description=GROUPS.get(key[0], ""))
                gp_of[key[0]] = gp
                group_parsers[key[0]] = gp.add_subparsers(dest="action", metavar="ACTION", parser_class=Parser)
            sub = group_parsers[key[0]].add_parser(key[1], help=cmd.help, description=cmd.help, parents=[common])
            if GROUP_DEFAULTS.get(key[0]) == key[1]:
                group_defaults[key[0]] = (gp_of[key[0]], sub)
        for a in cmd.args:
            sub.add_argument(*a.names, **a.options)
        if cmd.json:
            sub.add_argument("--json", action="store_true", help="print the result as JSON")
        sub.set_defaults(command=cmd)
    for gp, sub in group_defaults.values():
        # `tre hub` alone: the default action with every option at its default.
        defaults = {a.dest: a.default for a in sub._actions if a.dest != "help" and a.default is not argparse.SUPPRESS}
        gp.set_defaults(**defaults, **sub._defaults)
    return parser
