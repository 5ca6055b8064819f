"""Progress of long commands (synth, ingest, extract build, stats build, demo).

On a terminal a rich progress bar is drawn on stderr (or on the console the command prints
to) and removed when the command ends, before its summary. Not on a terminal, each step is a
line on stderr, as a log reads it. Under `--json` nothing is shown: stdout holds the JSON
only and stderr stays empty unless something goes wrong.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from rich.console import Console
    from rich.progress import Progress

    from tre.cli.framework import Context


class Report:
    """What a long command reports to: `report(message)` says what happens now (a domain
    module's `progress=` callback), `step(message)` finishes a step, `update(done, total)`
    sets the count. Every method is safe to call whether or not a bar is drawn."""

    def __init__(self, bar: Progress | None = None, task=None, log=None, names: Sequence[str] = ()):
        self.bar, self.task, self.log = bar, task, log
        # Items (or steps) in order: a message "<name>" or "<name>: ..." means those before it are done.
        self.names = list(names)
        self.done = 0

    def __call__(self, message: str) -> None:
        if self.names:
            known = [i for i, name in enumerate(self.names) if message == name or message.startswith(f"{name}:")]
            if known:
                self.update(known[0], len(self.names))
        self._show(message)

    def step(self, message: str = "") -> None:
        self.done += 1
        if self.bar is not None:
            self.bar.update(self.task, completed=self.done)
        if message:
            self._show(message)

    def update(self, done: int, total: int | None, message: str = "") -> None:
        self.done = done
        if self.bar is not None:
            self.bar.update(self.task, completed=done, total=total)
        if message:
            self._show(message)

    def print(self, text) -> None:
        """Print above the bar (a demo's narration)."""
        if self.bar is not None:
            self.bar.console.print(text)
        elif self.log is not None:
            self.log(str(text))

    def _show(self, message: str) -> None:
        if self.bar is not None:
            self.bar.update(self.task, description=_short(message))
        elif self.log is not None:
            self.log(message)


def _short(message: str, width: int = 60) -> str:
    message = " ".join(message.split())
    return message if len(message) <= width else message[: width - 1] + "…"


def is_terminal(stream) -> bool:
    return bool(getattr(stream, "isatty", lambda: False)())


@contextmanager
def progress(
    ctx: Context,
    what: str,
    *,
    total: int | None = None,
    unit: str = "",
    names: Sequence[str] = (),
    console: Console | None = None,
    log_lines: bool = True,
    show: bool = True,
) -> Iterator[Report]:
    """A progress bar titled `what` for the duration of the block (see the module docstring).

    `total` steps of `unit` (None: a bar that pulses), `names`: the items a domain module's
    messages start with (`"<name>: ..."`), in order. `console`: draw on it instead of on stderr
    (a command that prints while it works). `log_lines`: off a terminal, each message is a line
    on stderr. `show=False`: no bar (a run too short for one)."""
    if ctx.json or not show:
        yield Report()
        return
    stream = console.file if console is not None else ctx.stderr
    if not is_terminal(stream):
        yield Report(log=ctx.info if log_lines else None, names=names)
        return
    from rich.console import Console
    from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn

    columns = [TextColumn(f"[bold]{what}[/bold]"), BarColumn()]
    if total is not None or names or unit:
        columns += [MofNCompleteColumn(), TextColumn(unit)] if unit else [MofNCompleteColumn()]
    columns += [TimeElapsedColumn(), TextColumn("{task.description}")]
    bar = Progress(*columns, console=console or Console(file=ctx.stderr), transient=True)
    with bar:
        task = bar.add_task("", total=len(names) if names else total)
        report = Report(bar, task, names=names)
        yield report
        if report.bar.tasks[0].total is not None:
            bar.update(task, completed=bar.tasks[0].total)
