"""Secrets the metadata store keeps sealed: the TOTP secrets of hub logins.

The same envelope as the identity vault (`tre.linkage.keys`): a random 256-bit data key,
`logins`, seals each secret with AES-GCM (the user's name as associated data, so a sealed
secret copied onto another user's row does not open); the data key is stored only wrapped by
the master key (key file, `TRE_MASTER_KEY` or the KMS hook), in `wrapped_keys`. A copy of the
metadata store alone no longer gives anyone the codes of every user.

A master-key rotation (`tre vault rotate-key`) wraps the data key under the new master key
before the vault changes (`wrap_for`) and forgets the old wrap after it completed
(`forget_other_wraps`); in between both open it.
"""

from __future__ import annotations

import base64
import datetime as dt
import os
import secrets

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from sqlalchemy import delete, select
from sqlalchemy.orm import Session

from tre.errors import ConfigError, IntegrityError
from tre.linkage import keys
from tre.models import WrappedKey

LOGINS = "logins"
PREFIX = "sealed:v1:"
_NONCE = 12


def _context(name: str) -> bytes:
    return b"tre-sealed-key:" + name.encode()


class SecretBox:
    """Seals and opens short secrets under one data key. Never printed."""

    def __init__(self, key: bytes):
        self._aead = AESGCM(key)

    def __repr__(self) -> str:
        return "SecretBox(<hidden>)"

    def seal(self, plaintext: str, context: str) -> str:
        nonce = os.urandom(_NONCE)
        blob = nonce + self._aead.encrypt(nonce, plaintext.encode("utf-8"), context.encode("utf-8"))
        return PREFIX + base64.b64encode(blob).decode("ascii")

    def open(self, sealed: str, context: str) -> str:
        if not is_sealed(sealed):
            raise IntegrityError("a secret that should be sealed is not: run `tre init` to seal it")
        blob = base64.b64decode(sealed[len(PREFIX) :])
        try:
            return self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], context.encode("utf-8")).decode("utf-8")
        except InvalidTag:
            raise IntegrityError("a sealed secret does not open: it was altered or moved to another row") from None


def is_sealed(value: str | None) -> bool:
    return bool(value) and value.startswith(PREFIX)


def load_box(session: Session, master: keys.MasterKey, *, now: dt.datetime, name: str = LOGINS) -> SecretBox:
    """The data key `name` unwrapped by `master`, made (and wrapped) on first use."""
    rows = list(session.execute(select(WrappedKey).where(WrappedKey.name == name)).scalars())
    mine = [r for r in rows if r.master_key_id == master.key_id]
    candidates = mine or (rows if not isinstance(master, keys.LocalMasterKey) else [])
    for row in candidates:
        try:
            return SecretBox(master.unwrap(bytes(row.wrapped), _context(name)))
        except IntegrityError:
            continue
    if rows:
        held = ", ".join(sorted(r.master_key_id for r in rows))
        raise IntegrityError(
            f"the {name} key of the metadata store is wrapped by master key {held}, but the master key in use is "
            f"{master.key_id}: restore the right master key"
        )
    key = secrets.token_bytes(keys.KEY_BYTES)
    session.add(
        WrappedKey(name=name, master_key_id=master.key_id, wrapped=master.wrap(key, _context(name)), wrapped_at=now)
    )
    session.flush()
    return SecretBox(key)


def wrap_for(session: Session, current: keys.MasterKey, new: keys.MasterKey, *, now: dt.datetime) -> None:
    """Before a rotation changes the vault: wrap every data key of this store under `new` too."""
    for name in {r.name for r in session.execute(select(WrappedKey)).scalars()}:
        box_key = None
        for row in session.execute(select(WrappedKey).where(WrappedKey.name == name)).scalars():
            if row.master_key_id == current.key_id or not isinstance(current, keys.LocalMasterKey):
                try:
                    box_key = current.unwrap(bytes(row.wrapped), _context(name))
                    break
                except IntegrityError:
                    continue
        if box_key is None:
            raise IntegrityError(f"the {name} key of the metadata store does not open with the current master key")
        existing = session.execute(
            select(WrappedKey).where(WrappedKey.name == name, WrappedKey.master_key_id == new.key_id)
        ).scalar_one_or_none()
        if existing is None:
            session.add(
                WrappedKey(
                    name=name, master_key_id=new.key_id, wrapped=new.wrap(box_key, _context(name)), wrapped_at=now
                )
            )
    session.flush()


def forget_other_wraps(session: Session, keep: keys.MasterKey) -> None:
    """After a rotation: the old master key opens nothing here any more."""
    session.execute(delete(WrappedKey).where(WrappedKey.master_key_id != keep.key_id))


def master_key(settings, environ) -> keys.MasterKey:
    """The master key for sealing: created (0600 file) only where no vault exists yet to need an
    existing one (a fresh installation that enrols logins before its first ingest)."""
    vault = settings.central_dir / "vault.duckdb"
    try:
        return keys.load_master_key(settings, environ, create=not vault.exists())
    except ConfigError as problem:
        raise ConfigError(f"TOTP secrets are sealed with the master key, which is not available: {problem}") from None


def login_box(settings, environ, session: Session, *, now: dt.datetime) -> SecretBox:
    return load_box(session, master_key(settings, environ), now=now)
