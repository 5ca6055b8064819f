"""A small key service for tests of the KMS hook (`TRE_KMS=central_kms:open_kms`).

It keeps numbered key versions in `$TRE_HOME/kms/` and never hands a key out: callers get
wrap/unwrap, as from a real KMS. `rotated()` makes the next version.
"""

from __future__ import annotations

import os
from pathlib import Path

from cryptography.hazmat.primitives.ciphers.aead import AESGCM


class FolderKMS:
    def __init__(self, folder: Path, version: int | None = None):
        self.folder = folder
        folder.mkdir(mode=0o700, exist_ok=True)
        versions = sorted(int(p.stem) for p in folder.glob("*.key"))
        if not versions:
            (folder / "1.key").write_bytes(os.urandom(32))
            versions = [1]
        self.version = version or versions[-1]
        self.key_id = f"folder-kms-v{self.version}"

    def _key(self, version: int) -> bytes:
        return (self.folder / f"{version}.key").read_bytes()

    def wrap(self, data: bytes, context: bytes) -> bytes:
        nonce = os.urandom(12)
        return bytes([self.version]) + nonce + AESGCM(self._key(self.version)).encrypt(nonce, data, context)

    def unwrap(self, blob: bytes, context: bytes) -> bytes:
        return AESGCM(self._key(blob[0])).decrypt(blob[1:13], blob[13:], context)

    def rotated(self) -> FolderKMS:
        (self.folder / f"{self.version + 1}.key").write_bytes(os.urandom(32))
        return FolderKMS(self.folder, self.version + 1)


def open_kms(settings) -> FolderKMS:
    return FolderKMS(settings.home / "kms")
