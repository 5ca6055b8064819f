"""`tre user password`, `tre user totp`: hub login credentials (no self-signup)."""

from __future__ import annotations

import getpass
import sys

from tre.cli.framework import arg, command
from tre.enums import Role
from tre.errors import UsageError, UserError


def _read_password(args) -> tuple[str, bool]:
    from tre.credentials import generate_password

    if args.generate:
        return generate_password(), True
    if args.stdin:
        text = sys.stdin.readline().rstrip("\n")
        if not text:
            raise UsageError("no password on standard input")
        return text, False
    if not sys.stdin.isatty():
        raise UsageError("no terminal to ask for the password: pass --stdin or --generate")
    first = getpass.getpass("new password: ")
    if first != getpass.getpass("again: "):
        raise UserError("the two passwords differ; nothing changed")
    return first, False


@command(
    "user password",
    help="set a user's hub password (asked twice, or --stdin, or --generate to make and print one)",
    args=[
        arg("name", help="the TRE user"),
        arg("--stdin", action="store_true", help="read the password from the first line of standard input"),
        arg("--generate", action="store_true", help="generate a random password and print it once"),
    ],
    roles=[Role.ADMIN],
)
def user_password(ctx, args):
    from tre.credentials import set_password

    password, generated = _read_password(args)
    with ctx.store.transaction() as session:
        set_password(session, args.name, password, actor=ctx.actor, now=ctx.now())
    data = {"name": args.name, "password": password if generated else None}
    text = f"{args.name}: password set" + (f"; it is: {password}" if generated else "")
    ctx.emit(data, text)


@command(
    "user totp",
    help="enrol (or replace) a user's second factor; prints the TOTP secret once, as an otpauth:// URI",
    args=[arg("name", help="the TRE user")],
    roles=[Role.ADMIN],
)
def user_totp(ctx, args):
    from tre.credentials import enrol_totp, totp_uri

    with ctx.store.transaction() as session:
        from tre.sealed import login_box

        box = login_box(ctx.settings, ctx.environ, session, now=ctx.now())
        secret = enrol_totp(session, args.name, actor=ctx.actor, now=ctx.now(), box=box)
    uri = totp_uri(args.name, secret)
    ctx.emit(
        {"name": args.name, "secret": secret, "uri": uri},
        f"{args.name}: second factor enrolled; give the user this, once, for an authenticator app:\n"
        f"  secret {secret}\n  {uri}",
    )


@command(
    "user totp-code",
    help="print the current 6-digit code for a TOTP secret read from standard input (demo and tests)",
    roles=None,
    needs_store=False,
)
def user_totp_code(ctx, args):
    from tre.credentials import current_totp

    secret = sys.stdin.readline().strip()
    if not secret:
        raise UsageError("no TOTP secret on standard input")
    try:
        code = current_totp(secret)
    except Exception:
        raise UserError("that is not a TOTP secret (base32 text, as `tre user totp` prints)") from None
    ctx.emit({"code": code}, code)
