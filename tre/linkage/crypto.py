"""The vault's cryptography at work: blind indexes and sealed ID numbers, one and in bulk.

Kept apart from the rest of the vault so that the worker processes that run the per-number
loop start fast: they import this module, `cryptography` and nothing else.

- blind index: HMAC-SHA256(K_index, number), the first 128 bits (`BLIND_BYTES`);
- sealed number: nonce (12 random bytes) || AES-GCM(K_fnr, number, associated data =
  b"tre-vault-fnr:" + the 16 bytes of the row's pid).
"""

from __future__ import annotations

import multiprocessing
import os
import struct
import uuid
from concurrent.futures import ProcessPoolExecutor

from cryptography.exceptions import InvalidTag
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives import hmac as crypto_hmac
from cryptography.hazmat.primitives.ciphers.aead import AESGCM

from tre.errors import IntegrityError

NUMBER_BYTES = 11  # every valid ID number is 11 ASCII digits
PID_BYTES = 16  # a random UUID: 128 random bits
BLIND_BYTES = 16  # HMAC-SHA256 truncated to 128 bits
NONCE_BYTES = 12
SEALED_BYTES = NONCE_BYTES + NUMBER_BYTES + 16  # nonce, ciphertext, GCM tag


def _ready() -> bool:
    return True


AAD_PREFIX = b"tre-vault-fnr:"


def _aad(pid: bytes) -> bytes:
    return AAD_PREFIX + pid


def _blind_chunk(key: bytes, numbers: bytes) -> bytes:
    # struct.iter_unpack cuts the fixed-width records in C: a fifth less time per number than
    # slicing in Python, and the per-number loop is all the work there is.
    copy = crypto_hmac.HMAC(key, hashes.SHA256()).copy
    out: list[bytes] = []
    for (number,) in struct.iter_unpack(f"{NUMBER_BYTES}s", numbers):
        h = copy()
        h.update(number)
        out.append(h.finalize()[:BLIND_BYTES])
    return b"".join(out)


def _seal_chunk(key: bytes, numbers: bytes, pids: bytes, nonces: bytes) -> bytes:
    encrypt = AESGCM(key).encrypt
    out: list[bytes] = []
    for (number,), (pid,), (nonce,) in zip(
        struct.iter_unpack(f"{NUMBER_BYTES}s", numbers),
        struct.iter_unpack(f"{PID_BYTES}s", pids),
        struct.iter_unpack(f"{NONCE_BYTES}s", nonces),
        strict=True,
    ):
        out.append(nonce)
        out.append(encrypt(nonce, number, AAD_PREFIX + pid))  # _aad, inlined
    return b"".join(out)


def _unseal_chunk(key: bytes, sealed: bytes, pids: bytes) -> bytes:
    decrypt = AESGCM(key).decrypt
    out: list[bytes] = []
    for (blob,), (pid,) in zip(
        struct.iter_unpack(f"{SEALED_BYTES}s", sealed), struct.iter_unpack(f"{PID_BYTES}s", pids), strict=True
    ):
        try:
            out.append(decrypt(blob[:NONCE_BYTES], blob[NONCE_BYTES:], AAD_PREFIX + pid))
        except InvalidTag:
            raise IntegrityError(
                "an identity in the vault does not decrypt under its own pid: the vault was tampered with; "
                "restore it from a backup (`tre restore`)"
            ) from None
    return b"".join(out)


class Crypto:
    """The data keys at work: blind indexes and sealing, in bulk on several processes.

    Bulk inputs are fixed-width byte strings (n × 11 digits, n × 16-byte pid), so that a chunk
    travels to a worker as one buffer and comes back as one. The per-number loop runs inside
    the worker; nothing loops per register row.
    """

    PARALLEL_FROM = 200_000  # below this, starting processes costs more than it saves

    def __init__(self, keys, *, workers: int = 1):
        self._keys = keys
        self.workers = max(1, workers or os.cpu_count() or 1)
        self._pool: ProcessPoolExecutor | None = None

    def __repr__(self) -> str:
        return f"Crypto(workers={self.workers})"

    @property
    def keys(self):
        """The data keys this works with (to tell whether the vault's keys changed)."""
        return self._keys

    def close(self) -> None:
        if self._pool is not None:
            self._pool.shutdown()
            self._pool = None

    def start(self) -> None:
        """Start the worker processes now (they take a moment), so that they are ready when needed."""
        if self.workers > 1 and self._pool is None:
            # spawn, not fork: the parent holds DuckDB's threads.
            self._pool = ProcessPoolExecutor(self.workers, mp_context=multiprocessing.get_context("spawn"))
            for _ in range(self.workers):
                self._pool.submit(_ready)

    def _map(self, func, width: int, key: bytes, *blobs_and_widths) -> bytes:
        """Run `func(key, *chunks)` over `n` fixed-width records, split across the workers."""
        (first, first_width), *_ = blobs_and_widths
        n = len(first) // first_width
        if self.workers == 1 or n < self.PARALLEL_FROM:
            return func(key, *(blob for blob, _ in blobs_and_widths))
        self.start()
        bounds = [n * i // (self.workers * 2) for i in range(self.workers * 2 + 1)]
        futures = [
            self._pool.submit(func, key, *(blob[lo * w : hi * w] for blob, w in blobs_and_widths))
            for lo, hi in zip(bounds, bounds[1:], strict=False)
        ]
        return b"".join(f.result() for f in futures)

    def blind(self, number: str) -> bytes:
        return _blind_chunk(self._keys.index, number.encode("ascii"))

    def blind_many(self, numbers: bytes) -> bytes:
        """n × 11-digit numbers → n × 16-byte blind indexes."""
        return self._map(_blind_chunk, BLIND_BYTES, self._keys.index, (numbers, NUMBER_BYTES))

    def seal_many(self, numbers: bytes, pids: bytes) -> bytes:
        """n × 11-digit numbers and their n × 16-byte pids → n × sealed (nonce || ciphertext)."""
        nonces = os.urandom(len(numbers) // NUMBER_BYTES * NONCE_BYTES)
        return self._map(
            _seal_chunk, SEALED_BYTES, self._keys.fnr, (numbers, NUMBER_BYTES), (pids, PID_BYTES), (nonces, NONCE_BYTES)
        )

    def unseal_many(self, sealed: bytes, pids: bytes) -> bytes:
        """n × sealed numbers and their n × 16-byte pids → n × 11-digit numbers (re-encryption)."""
        return self._map(_unseal_chunk, NUMBER_BYTES, self._keys.fnr, (sealed, SEALED_BYTES), (pids, PID_BYTES))

    def unseal(self, sealed: bytes, pid: str) -> str:
        try:
            plain = AESGCM(self._keys.fnr).decrypt(
                sealed[:NONCE_BYTES], sealed[NONCE_BYTES:], _aad(uuid.UUID(pid).bytes)
            )
        except InvalidTag:
            raise IntegrityError(
                "an identity in the vault does not decrypt under its own pid: the vault was tampered with; "
                "restore it from a backup (`tre restore`)"
            ) from None
        return plain.decode("ascii")


def new_pids(n: int) -> bytes:
    """n random person keys (UUIDs) as one buffer of n × 16 bytes, from the OS's CSPRNG."""
    return os.urandom(n * PID_BYTES)


def blind_parts(blinds: bytes):
    """16-byte blind indexes → (hi, lo) arrays of unsigned 64-bit integers."""
    import numpy as np

    parts = np.frombuffer(blinds, dtype="<u8").reshape(-1, 2)
    return parts[:, 0].copy(), parts[:, 1].copy()
