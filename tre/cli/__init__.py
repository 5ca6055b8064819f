"""The `tre` command line: `main(argv, environ)` parses, checks who acts, runs, prints.

Errors the user can fix print one line and exit non-zero without a traceback. Anything else
is an internal error: one line on stderr, and the traceback (ID-number-shaped digits
redacted) in `$TRE_HOME/logs/errors.log`. `TRE_DEBUG=1` re-raises instead.
"""

from __future__ import annotations

import importlib
import os
import sys

from tre.cli.framework import ANY_ROLE, Context, build_parser, utc_now
from tre.config import Settings, ensure_dirs, load_settings
from tre.errors import PermissionDenied, UnsafeFile, UserError

# One module per command group; each registers its commands on import.
COMMAND_MODULES = (
    "tre.cli.setup",
    "tre.cli.users",
    "tre.cli.audit_log",
    "tre.cli.synth",
    "tre.cli.approvals",
    "tre.cli.demo",
    "tre.cli.projects",
    "tre.cli.hub",
    "tre.cli.logins",
    "tre.cli.check",
    "tre.cli.central",
    "tre.cli.extracts",
    "tre.cli.requests",
    "tre.cli.review",
    "tre.cli.stats",
)

INTERNAL_ERROR = 70  # EX_SOFTWARE


def main(argv=None, environ=None, stdout=None, stderr=None, clock=None) -> int:
    environ = dict(os.environ if environ is None else environ)
    stdout = stdout or sys.stdout
    stderr = stderr or sys.stderr
    settings = None
    try:
        for module in COMMAND_MODULES:
            importlib.import_module(module)
        parser = build_parser()
        args = parser.parse_args(argv)
        command = getattr(args, "command", None)
        if command is None:
            parser.print_help(stdout) if not getattr(args, "group", None) else _group_help(parser, args.group, stdout)
            return 0 if not getattr(args, "group", None) else 2
        settings = load_settings(environ)
        ctx = Context(
            settings=settings,
            environ=environ,
            command=command,
            json=getattr(args, "json", False),
            stdout=stdout,
            stderr=stderr,
            clock=clock or utc_now,
        )
        from tre import identity  # after parsing: `tre --help` imports no database code

        if identity.mode(settings) == "demo":
            ctx.store.audit_context = dict(identity.DEMO_MARK)
        _run(ctx, args)
        return 0
    except UserError as e:
        stderr.write(f"tre: {e}\n")
        return e.exit_code
    except KeyboardInterrupt:
        stderr.write("tre: interrupted\n")
        return 130
    except Exception as e:
        if environ.get("TRE_DEBUG"):
            raise
        where = _log_internal_error(settings, e)
        stderr.write(f"tre: internal error ({e.__class__.__name__}){where}\n")
        return INTERNAL_ERROR


def _run(ctx: Context, args) -> None:
    command = ctx.command
    if command.needs_store:
        ensure_dirs(ctx.settings)
        ctx.store.check_ready()
    try:
        if command.roles is not None:
            _authorise(ctx, getattr(args, "acting_user", None) or ctx.settings.user)
        command.func(ctx, args)
    except (PermissionDenied, UnsafeFile) as refusal:
        if not getattr(refusal, "audited", False):  # some refusals are audited where they happen
            _audit_refusal(ctx, getattr(args, "acting_user", None) or ctx.settings.user, refusal)
        raise


def _authorise(ctx: Context, name: str) -> None:
    from tre import identity
    from tre.users import check_active, check_role, count_users, find_user, suggest_user

    command = ctx.command
    with ctx.store.transaction() as session:
        if command.bootstrap and count_users(session) == 0:
            ctx.bootstrapping = True
            ctx.actor = name or "bootstrap"
            return
        if not name:
            raise PermissionDenied(f"{command.name} needs to know who you are: pass --as NAME or set TRE_USER")
        user = find_user(session, name)
        if user is None:
            raise PermissionDenied(f"{command.name} refused: {name!r} is not a TRE user{suggest_user(session, name)}")
        os_user = identity.caller(ctx.environ) if identity.mode(ctx.settings) == "os" else None
        bound = os_user is None or identity.is_bound(session, user.name, os_user)
        if bound:
            if command.roles == (ANY_ROLE,):
                check_active(user, command.name)
            else:
                check_role(user, command.roles, command.name)
            ctx.actor = user.name
    if not bound:
        refusal = identity.refusal(command.name, user.name, os_user)
        _audit_identity_refusal(ctx, user.name, os_user, refusal)
        raise refusal


def _audit_identity_refusal(ctx: Context, name: str, os_user: str, refusal: PermissionDenied) -> None:
    from tre import audit

    with ctx.store.transaction() as session:
        audit.record(
            session,
            at=ctx.now(),
            actor=name,
            action="cli.identity_refused",
            object=ctx.command.name,
            details={"os_user": os_user, "reason": str(refusal)},
        )


def _audit_refusal(ctx: Context, name: str, refusal: PermissionDenied | UnsafeFile) -> None:
    """A refusal in the audit chain: a missing right (`access.denied`), or a file of a project
    that privileged code would not read (`project.file_refused`: a link, a FIFO, ...)."""
    from tre import audit
    from tre.project_files import shown

    unsafe = isinstance(refusal, UnsafeFile)
    with ctx.store.transaction() as session:
        audit.record(
            session,
            at=ctx.now(),
            actor=name or "(nobody)",
            action="project.file_refused" if unsafe else "access.denied",
            object=ctx.command.name,
            details={"reason": shown(str(refusal), 400)} if unsafe else {"reason": str(refusal)},
        )


def _group_help(parser, group: str, out) -> None:
    for action in parser._subparsers._group_actions:
        if group in action.choices:
            action.choices[group].print_help(out)


def _log_internal_error(settings: Settings | None, error: Exception) -> str:
    """Keep the traceback for developers, without anything shaped like an ID number."""
    from tre import errorlog

    return "" if settings is None else errorlog.write(settings.home, error)
