"""Key material of the identity vault: envelope encryption under one master key.

The vault has two *data keys*, random 256-bit: `fnr` (AES-GCM, encrypts ID numbers) and
`index` (HMAC-SHA256, the blind index for equality look-ups). The vault stores them only
*wrapped* (AES-GCM) by the *master key*, which lives outside the central zone. The master key
comes from, in this order:

1. the KMS hook: setting `kms` names `module:callable`; called with the settings, it returns a
   `MasterKey` (an external key service that wraps and unwraps, so that the master key never
   enters this process);
2. the environment: `TRE_MASTER_KEY`, 32 bytes in base64;
3. the key file: setting `master_key_file` (default `$TRE_HOME/keys/master.key`), mode 0600,
   created by the first ingest when the vault has no keys yet.

Rotation (`tre vault rotate-key`) re-wraps the data keys under a new master key; the data
keys, and so every ciphertext and blind index, stay as they are.
"""

from __future__ import annotations

import base64
import binascii
import hashlib
import importlib
import os
import secrets
import stat
from dataclasses import dataclass, field
from pathlib import Path
from typing import Protocol, runtime_checkable

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tre.config import Settings, ensure_private_dir
from tre.errors import ConfigError, IntegrityError

MASTER_KEY_ENV = "TRE_MASTER_KEY"
NEW_MASTER_KEY_ENV = "TRE_NEW_MASTER_KEY"
KEY_BYTES = 32
DATA_KEY_NAMES = ("fnr", "index")
_NONCE = 12


@runtime_checkable
class MasterKey(Protocol):
    """What wraps the data keys: a local key, or a handle on an external key service."""

    key_id: str  # a fingerprint that names the key without revealing it

    def wrap(self, data: bytes, context: bytes) -> bytes: ...

    def unwrap(self, blob: bytes, context: bytes) -> bytes: ...


def key_id(key: bytes) -> str:
    """A short fingerprint of a key: tells keys apart, reveals nothing about them.

    In groups of four, so that it never holds a run of 11 digits (the audit log refuses those)."""
    digest = hashlib.sha256(b"tre-master-key-id\0" + key).hexdigest()
    return "-".join(digest[i : i + 4] for i in range(0, 16, 4))


class LocalMasterKey:
    """A master key held in this process (from the key file or the environment)."""

    def __init__(self, key: bytes, origin: str):
        if len(key) != KEY_BYTES:
            raise ConfigError(f"the master key from {origin} is {len(key)} bytes; it must be {KEY_BYTES}")
        self._aead = AESGCM(key)
        self.key_id = key_id(key)
        self.origin = origin

    def __repr__(self) -> str:
        return f"LocalMasterKey({self.key_id} from {self.origin})"

    def wrap(self, data: bytes, context: bytes) -> bytes:
        nonce = os.urandom(_NONCE)
        return nonce + self._aead.encrypt(nonce, data, b"tre-wrap:" + context)

    def unwrap(self, blob: bytes, context: bytes) -> bytes:
        try:
            return self._aead.decrypt(blob[:_NONCE], blob[_NONCE:], b"tre-wrap:" + context)
        except InvalidTag:
            raise IntegrityError(
                f"the master key {self.key_id} from {self.origin} does not unwrap the vault's data keys: "
                "it is the wrong key, or the vault was tampered with"
            ) from None


@dataclass(frozen=True)
class DataKeys:
    """The unwrapped data keys. Never printed: their repr hides the bytes."""

    fnr: bytes = field(repr=False)
    index: bytes = field(repr=False)

    @classmethod
    def generate(cls) -> DataKeys:
        return cls(fnr=secrets.token_bytes(KEY_BYTES), index=secrets.token_bytes(KEY_BYTES))

    def by_name(self) -> dict[str, bytes]:
        return {"fnr": self.fnr, "index": self.index}


def wrap_context(name: str) -> bytes:
    return b"tre-data-key:" + name.encode()


# --- where the master key comes from ------------------------------------------------------


@dataclass(frozen=True)
class KeySource:
    kind: str  # "kms", "env" or "file"
    path: Path | None = None

    def __str__(self) -> str:
        return {"kms": "the KMS hook (setting kms)", "env": f"${MASTER_KEY_ENV}"}.get(self.kind, str(self.path))


def key_source(settings: Settings, environ) -> KeySource:
    if settings.kms:
        return KeySource("kms")
    if environ.get(MASTER_KEY_ENV):
        return KeySource("env")
    return KeySource("file", settings.master_key_file)


def load_master_key(settings: Settings, environ, *, create: bool = False) -> MasterKey:
    """The master key from the KMS hook, the environment or the key file.

    With `create`, a missing key file is created (0600) with a new random key; only the
    vault decides that it may, when it holds no keys yet.
    """
    source = key_source(settings, environ)
    if source.kind == "kms":
        return _kms(settings)
    if source.kind == "env":
        return LocalMasterKey(decode_key(environ[MASTER_KEY_ENV], MASTER_KEY_ENV), f"${MASTER_KEY_ENV}")
    path = source.path
    if not path.exists():
        if not create:
            raise ConfigError(
                f"no master key file at {path}: restore it from your key backup (the vault cannot be read without "
                "it), or set TRE_MASTER_KEY_FILE to where it is"
            )
        write_key_file(path, secrets.token_bytes(KEY_BYTES))
    return read_key_file(path)


def decode_key(text: str, origin: str) -> bytes:
    try:
        key = base64.b64decode(text.strip(), validate=True)
    except (binascii.Error, ValueError):
        raise ConfigError(f"{origin} is not base64: it must hold {KEY_BYTES} random bytes in base64") from None
    if len(key) != KEY_BYTES:
        raise ConfigError(f"{origin} holds {len(key)} bytes; it must hold {KEY_BYTES} (base64)")
    return key


def encode_key(key: bytes) -> str:
    return base64.b64encode(key).decode("ascii")


def read_key_file(path: Path) -> LocalMasterKey:
    """Read a master key file, refusing one that others than its owner may read."""
    try:
        info = path.stat()
        if stat.S_IMODE(info.st_mode) & 0o077:
            raise ConfigError(
                f"master key file {path} has mode {stat.S_IMODE(info.st_mode):04o}: others may read it; "
                f"run `chmod 600 {path}`"
            )
        text = path.read_text(encoding="ascii")
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read master key file {path} ({e.__class__.__name__}): check the file") from None
    return LocalMasterKey(decode_key(text, f"master key file {path}"), str(path))


def write_key_file(path: Path, key: bytes) -> None:
    """Write a key file atomically, mode 0600, in a 0700 directory."""
    ensure_private_dir(path.parent, "the key directory")
    temporary = path.with_name(path.name + ".tmp")
    descriptor = os.open(temporary, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    with os.fdopen(descriptor, "w", encoding="ascii") as f:
        f.write(encode_key(key) + "\n")
        f.flush()
        os.fsync(f.fileno())
    os.replace(temporary, path)
    _fsync_dir(path.parent)


def _fsync_dir(path: Path) -> None:
    descriptor = os.open(path, os.O_RDONLY)
    try:
        os.fsync(descriptor)
    finally:
        os.close(descriptor)


def _kms(settings: Settings) -> MasterKey:
    module_name, _, attribute = settings.kms.partition(":")
    if not module_name or not attribute:
        raise ConfigError(f"setting kms must be `module:callable`, got {settings.kms!r}")
    try:
        factory = getattr(importlib.import_module(module_name), attribute)
    except (ImportError, AttributeError) as e:
        raise ConfigError(
            f"setting kms names {settings.kms!r}, which cannot be imported ({e.__class__.__name__})"
        ) from None
    handle = factory(settings)
    if not isinstance(handle, MasterKey):
        raise ConfigError(f"the kms hook {settings.kms!r} must return an object with key_id, wrap() and unwrap()")
    return handle


# --- rotation -----------------------------------------------------------------------------


@dataclass
class Rotation:
    """A new master key, and how to make it the one in force once the vault holds keys wrapped by it."""

    new: MasterKey
    source: KeySource
    pending_file: Path | None = None  # the key file's successor, written before the vault changes

    def finish(self) -> None:
        """Put the new key in force (the key file's atomic replacement); nothing to do for env/KMS."""
        if self.pending_file is not None:
            os.replace(self.pending_file, self.source.path)
            _fsync_dir(self.source.path.parent)


def pending_key_file(path: Path) -> Path:
    return path.with_name(path.name + ".new")


def begin_rotation(settings: Settings, environ, current: MasterKey) -> Rotation:
    """Make (or fetch) the next master key without putting it in force yet."""
    source = key_source(settings, environ)
    if source.kind == "kms":
        rotated = getattr(current, "rotated", None)
        if rotated is None:
            raise ConfigError(
                f"the KMS hook {settings.kms!r} does not rotate (no rotated()): rotate the key in the KMS itself"
            )
        return Rotation(rotated(), source)
    if source.kind == "env":
        if not environ.get(NEW_MASTER_KEY_ENV):
            raise ConfigError(
                f"the master key comes from ${MASTER_KEY_ENV}: put the new key (32 random bytes, base64) in "
                f"${NEW_MASTER_KEY_ENV}, rotate, then move it to ${MASTER_KEY_ENV}"
            )
        new = LocalMasterKey(decode_key(environ[NEW_MASTER_KEY_ENV], NEW_MASTER_KEY_ENV), f"${NEW_MASTER_KEY_ENV}")
        return Rotation(new, source)
    pending = pending_key_file(source.path)
    write_key_file(pending, secrets.token_bytes(KEY_BYTES))
    return Rotation(read_key_file(pending), source, pending)
