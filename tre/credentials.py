"""Hub logins: a password and a TOTP second factor per TRE user, kept in the metadata store.

Accounts come from `tre user add`; there is no self-signup. An admin sets a password
(`tre user password NAME`, read from a prompt or stdin, or generated) and enrols the second
factor (`tre user totp NAME`, which prints the secret once as an otpauth:// URI for an
authenticator app). Passwords are stored as bcrypt hashes; the TOTP secret is stored as is,
because checking a code needs it. Neither ever appears in an audit event or a message.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import onetimepass
from sqlalchemy import select
from sqlalchemy.orm import Session

from tre import audit
from tre.errors import UserError
from tre.models import LoginCredential, User
from tre.users import get_user

MIN_PASSWORD_LENGTH = 12
TOTP_ISSUER = "TRE"


class WeakPassword(UserError):
    """A password that the login rules refuse."""


def _common_passwords() -> frozenset[str]:
    # The list NativeAuthenticator ships (the most common leaked passwords).
    import nativeauthenticator

    path = Path(nativeauthenticator.__file__).parent / "common-credentials.txt"
    return frozenset(path.read_text(encoding="utf-8", errors="ignore").split())


def check_password(name: str, password: str) -> None:
    """Raise WeakPassword naming every rule the password breaks."""
    problems = []
    if len(password) < MIN_PASSWORD_LENGTH:
        problems.append(f"shorter than {MIN_PASSWORD_LENGTH} characters")
    if password.strip() != password or not password.isprintable():
        problems.append("has leading/trailing spaces or unprintable characters")
    if name.lower() in password.lower():
        problems.append("contains the user name")
    if password.lower() in _common_passwords():
        problems.append("is a commonly used password")
    if problems:
        raise WeakPassword(f"password for {name!r} refused: {'; '.join(problems)}; choose a longer passphrase")


def generate_password() -> str:
    """A random password that passes `check_password` (about 100 bits)."""
    return secrets.token_urlsafe(16)


def generate_totp_secret() -> str:
    """A base32 TOTP secret of 160 bits, as authenticator apps expect."""
    return base64.b32encode(os.urandom(20)).decode("ascii")


def _credential(session: Session, user: User) -> LoginCredential:
    found = session.execute(select(LoginCredential).where(LoginCredential.user_id == user.id)).scalar_one_or_none()
    if found is None:
        found = LoginCredential(user_id=user.id)
        session.add(found)
    return found


def set_password(session: Session, name: str, password: str, *, actor: str, now: dt.datetime) -> None:
    """Store a bcrypt hash of `password` as `name`'s hub password (audited, without the password)."""
    user = get_user(session, name)
    check_password(name, password)
    credential = _credential(session, user)
    credential.password_hash = bcrypt.hashpw(password.encode("utf-8"), bcrypt.gensalt()).decode("ascii")
    credential.password_set_at = now
    audit.record(session, at=now, actor=actor, action="login.password_set", object=f"user:{name}")


def enrol_totp(session: Session, name: str, *, actor: str, now: dt.datetime) -> str:
    """Give `name` a new TOTP secret (replacing any old one) and return it, once."""
    user = get_user(session, name)
    credential = _credential(session, user)
    credential.totp_secret = generate_totp_secret()
    credential.totp_set_at = now
    audit.record(session, at=now, actor=actor, action="login.totp_enrolled", object=f"user:{name}")
    return credential.totp_secret


def totp_uri(name: str, secret: str, issuer: str = TOTP_ISSUER) -> str:
    """The otpauth:// URI authenticator apps read (as text or as a QR code)."""
    label = urllib.parse.quote(f"{issuer}:{name}")
    query = urllib.parse.urlencode({"secret": secret, "issuer": issuer, "algorithm": "SHA1", "digits": 6, "period": 30})
    return f"otpauth://totp/{label}?{query}"


def current_totp(secret: str, *, at: float | None = None) -> str:
    """The 6-digit code for `secret` now (what the user's authenticator app shows)."""
    return f"{onetimepass.get_totp(secret, clock=at):06d}"


@dataclass(frozen=True)
class LoginCheck:
    """What the hub needs to know about one login attempt."""

    ok: bool
    reason: str  # "", "unknown user", "inactive", "no password set", "wrong password", "second factor ..."


def check_login(
    session: Session, name: str, password: str, code: str | None, *, two_factor: bool, at: float | None = None
) -> LoginCheck:
    """Check a hub login against the store; the reason says which check failed (for the audit)."""
    user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    if user is None:
        # Spend the time a bcrypt check takes, so that timing does not reveal which names exist.
        bcrypt.checkpw(b"x", _DUMMY_HASH)
        return LoginCheck(False, "unknown user")
    credential = session.execute(select(LoginCredential).where(LoginCredential.user_id == user.id)).scalar_one_or_none()
    if credential is None or not credential.password_hash:
        return LoginCheck(False, "no password set")
    if not bcrypt.checkpw(password.encode("utf-8"), credential.password_hash.encode("ascii")):
        return LoginCheck(False, "wrong password")
    if not user.active or not user.roles:
        return LoginCheck(False, "inactive")
    if two_factor:
        if not credential.totp_secret:
            return LoginCheck(False, "second factor not enrolled")
        if not is_valid_totp(credential.totp_secret, code or "", at=at):
            return LoginCheck(False, "wrong second-factor code")
    return LoginCheck(True, "")


def is_valid_totp(secret: str, code: str, *, at: float | None = None) -> bool:
    """True if `code` is the current code or the one just before or after (clock drift)."""
    code = code.strip().replace(" ", "")
    if not (len(code) == 6 and code.isdigit()):
        return False
    return onetimepass.valid_totp(code, secret, clock=at, window=1)


_DUMMY_HASH = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=12))
