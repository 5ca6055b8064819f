"""Hub logins: a password and a TOTP second factor per TRE user, kept in the metadata store.

Accounts come from `tre user add`; there is no self-signup. An admin sets a password
(`tre user password NAME`, read from a prompt or stdin, or generated) and enrols the second
factor (`tre user totp NAME`, which prints the secret once as an otpauth:// URI for an
authenticator app). Passwords are stored as bcrypt hashes; the TOTP secret, which checking a
code needs in the clear, is stored sealed under the logins data key that the master key wraps
(`tre.sealed`). A code is accepted once: its time step must be later than the last accepted
one (RFC 6238 § 5.2), so a code seen over a shoulder or in a proxy log is worth nothing. Neither
password nor secret ever appears in an audit event or a message.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets
import time
import urllib.parse
from dataclasses import dataclass
from pathlib import Path

import bcrypt
import onetimepass
from sqlalchemy import select
from sqlalchemy.orm import Session

from tre import audit
from tre.errors import ConfigError, UserError
from tre.models import LoginCredential, User
from tre.sealed import SecretBox, is_sealed
from tre.users import get_user

TOTP_STEP = 30  # seconds per code

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


def _totp_context(name: str) -> str:
    return f"totp:{name}"


def enrol_totp(session: Session, name: str, *, actor: str, now: dt.datetime, box: SecretBox) -> str:
    """Give `name` a new TOTP secret (replacing any old one), stored sealed; returns it, once."""
    user = get_user(session, name)
    credential = _credential(session, user)
    secret = generate_totp_secret()
    credential.totp_secret = box.seal(secret, _totp_context(name))
    credential.totp_set_at = now
    credential.totp_last_step = None
    audit.record(session, at=now, actor=actor, action="login.totp_enrolled", object=f"user:{name}")
    return secret


def seal_plain_secrets(session: Session, box: SecretBox) -> int:
    """Seal TOTP secrets stored in the clear by an older version (`tre init`); returns how many."""
    sealed = 0
    for credential, name in session.execute(
        select(LoginCredential, User.name).join(User, User.id == LoginCredential.user_id)
    ).all():
        if credential.totp_secret and not is_sealed(credential.totp_secret):
            credential.totp_secret = box.seal(credential.totp_secret, _totp_context(name))
            sealed += 1
    return sealed


def has_plain_secrets(session: Session) -> bool:
    values = session.execute(select(LoginCredential.totp_secret).where(LoginCredential.totp_secret.is_not(None)))
    return any(not is_sealed(v) for (v,) in values)


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
    session: Session,
    name: str,
    password: str,
    code: str | None,
    *,
    two_factor: bool,
    box: SecretBox | None = None,
    at: float | None = None,
) -> LoginCheck:
    """Check a hub login against the store; the reason says which check failed (for the audit).

    With `two_factor`, `box` opens the TOTP secret; an accepted code's time step is recorded in
    the same transaction, so the same code (or an earlier one) fails the next time.
    """
    user = session.execute(select(User).where(User.name == name)).scalar_one_or_none()
    if user is None:
        # Spend the time a bcrypt check takes, so that timing does not reveal which names exist.
        bcrypt.checkpw(b"x", _DUMMY_HASH)
        return LoginCheck(False, "unknown user")
    credential = session.execute(
        select(LoginCredential).where(LoginCredential.user_id == user.id).with_for_update()
    ).scalar_one_or_none()
    if credential is None or not credential.password_hash:
        return LoginCheck(False, "no password set")
    if not bcrypt.checkpw(password.encode("utf-8"), credential.password_hash.encode("ascii")):
        return LoginCheck(False, "wrong password")
    if not user.active or not user.roles:
        return LoginCheck(False, "inactive")
    if two_factor:
        if not credential.totp_secret:
            return LoginCheck(False, "second factor not enrolled")
        if box is None:
            raise ConfigError("checking a second-factor code needs the logins key (the master key)")
        secret = box.open(credential.totp_secret, _totp_context(name))
        step = totp_step(secret, code or "", at=at)
        if step is None:
            return LoginCheck(False, "wrong second-factor code")
        if credential.totp_last_step is not None and step <= credential.totp_last_step:
            return LoginCheck(False, "second-factor code already used")
        credential.totp_last_step = step
    return LoginCheck(True, "")


def totp_step(secret: str, code: str, *, at: float | None = None) -> int | None:
    """The time step whose code `code` is: now, or one step before or after (clock drift)."""
    code = code.strip().replace(" ", "")
    if not (len(code) == 6 and code.isdigit()):
        return None
    now = time.time() if at is None else at
    for offset in (-1, 0, 1):
        moment = now + offset * TOTP_STEP
        if secrets.compare_digest(current_totp(secret, at=moment), code):
            return int(moment // TOTP_STEP)
    return None


_DUMMY_HASH = bcrypt.hashpw(b"not a password", bcrypt.gensalt(rounds=12))
