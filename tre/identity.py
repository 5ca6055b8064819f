"""Who runs the CLI: TRE users bound to the operating-system accounts that may act as them.

`--as NAME` (or `TRE_USER`) names the TRE user a command acts as; by itself that is only a
claim. With `cli_identity = "os"` (the default) the claim must be backed by the OS: the
account running the command must be one an admin bound to that TRE user
(`tre user bind-os NAME ACCOUNT`). The account is the real uid's, or, when root runs the
command through sudo, the account sudo authenticated (SUDO_USER; root could forge the
variable, but root can also open the metadata store itself). The first admin of a fresh
store is bound to whoever creates them. Any other claim is refused with a one-line message
and an audit event `cli.identity_refused` naming the OS account.

`cli_identity = "demo"` accepts the claim as given, for `make demo` and the test suite; it
must be set explicitly, and every audit event written in that mode carries
`"cli_identity": "asserted (demo mode)"` in its details.
"""

from __future__ import annotations

import datetime as dt
import os
import pwd
import re

from sqlalchemy import select
from sqlalchemy.orm import Session

from tre import audit
from tre.errors import ConfigError, PermissionDenied, UserError
from tre.models import OsLogin
from tre.users import get_user

MODES = ("os", "demo")
DEMO_MARK = {"cli_identity": "asserted (demo mode)"}
OS_NAME = re.compile(r"^[a-z_][a-z0-9_.-]{0,31}\$?$")


def mode(settings) -> str:
    value = settings.cli_identity.strip().lower()
    if value not in MODES:
        raise ConfigError(f"cli_identity must be os or demo, got {settings.cli_identity!r}")
    return value


def caller(environ, uid: int | None = None) -> str:
    """The OS account running this process (sudo's authenticated user when root runs via sudo)."""
    uid = os.getuid() if uid is None else uid
    if uid == 0 and environ.get("SUDO_USER") and environ.get("SUDO_UID"):
        try:
            entry = pwd.getpwnam(environ["SUDO_USER"])
        except KeyError:
            entry = None
        if entry is not None and str(entry.pw_uid) == environ["SUDO_UID"]:
            return entry.pw_name
    try:
        return pwd.getpwuid(uid).pw_name
    except KeyError:
        return f"uid {uid}"


def os_logins(session: Session, name: str) -> list[str]:
    user = get_user(session, name)
    return sorted(session.execute(select(OsLogin.os_user).where(OsLogin.user_id == user.id)).scalars())


def bind(session: Session, name: str, os_user: str, *, actor: str, now: dt.datetime) -> bool:
    """Let the OS account `os_user` act as TRE user `name`; returns False if it already may."""
    if not OS_NAME.fullmatch(os_user):
        raise UserError(f"{os_user!r} is not an OS account name")
    try:
        pwd.getpwnam(os_user)
    except KeyError:
        raise UserError(f"there is no OS account {os_user!r} on this machine") from None
    user = get_user(session, name)
    if os_user in os_logins(session, name):
        return False
    session.add(OsLogin(user_id=user.id, os_user=os_user, granted_at=now, granted_by=actor))
    audit.record(
        session, at=now, actor=actor, action="user.bind_os", object=f"user:{name}", details={"os_user": os_user}
    )
    return True


def unbind(session: Session, name: str, os_user: str, *, actor: str, now: dt.datetime) -> bool:
    user = get_user(session, name)
    row = session.execute(
        select(OsLogin).where(OsLogin.user_id == user.id, OsLogin.os_user == os_user)
    ).scalar_one_or_none()
    if row is None:
        return False
    session.delete(row)
    audit.record(
        session, at=now, actor=actor, action="user.unbind_os", object=f"user:{name}", details={"os_user": os_user}
    )
    return True


class IdentityRefused(PermissionDenied):
    """The OS account running the CLI may not act as the TRE user it names."""

    audited = True  # as cli.identity_refused, by the CLI


def is_bound(session: Session, name: str, os_user: str) -> bool:
    return os_user in os_logins(session, name)


def refusal(command: str, name: str, os_user: str) -> IdentityRefused:
    return IdentityRefused(
        f"{command} refused: the OS account {os_user!r} may not act as TRE user {name!r}; "
        f"an admin allows it with `tre user bind-os {name} {os_user}`"
    )
