"""The vault's cryptography: blind indexes, sealing, pids, key wrapping, in bulk and one by one."""

from __future__ import annotations

import hashlib
import hmac
import uuid

import pyarrow as pa
import pytest
from delivery_factory import people

from tre.errors import ConfigError, IntegrityError
from tre.linkage import keys as vault_keys
from tre.linkage.crypto import BLIND_BYTES, PID_BYTES, SEALED_BYTES, Crypto, new_pids
from tre.linkage.ingest import fixed_binary, fixed_strings, fixed_width_bytes, uuid_array

NUMBERS = [p.fnr for p in people(50, seed=41)]


def pid_text(pids: bytes, i: int) -> str:
    return str(uuid.UUID(bytes=pids[i * PID_BYTES : (i + 1) * PID_BYTES]))


@pytest.fixture
def crypto():
    return Crypto(vault_keys.DataKeys.generate(), workers=1)


def test_blind_index_is_hmac_sha256_of_the_number_truncated_to_128_bits(crypto):
    blob = "".join(NUMBERS).encode()
    blinds = crypto.blind_many(blob)
    expected = b"".join(hmac.new(crypto._keys.index, n.encode(), hashlib.sha256).digest()[:16] for n in NUMBERS)
    assert blinds == expected and len(blinds) == BLIND_BYTES * len(NUMBERS)
    assert crypto.blind(NUMBERS[3]) == expected[3 * BLIND_BYTES : 4 * BLIND_BYTES]
    other = Crypto(vault_keys.DataKeys.generate())
    assert other.blind(NUMBERS[3]) != crypto.blind(NUMBERS[3])  # keyed: no dictionary attack without the key


def test_sealed_numbers_open_only_under_their_own_pid(crypto):
    pids = new_pids(len(NUMBERS))
    sealed = crypto.seal_many("".join(NUMBERS).encode(), pids)
    assert len(sealed) == SEALED_BYTES * len(NUMBERS)
    first = sealed[:SEALED_BYTES]
    assert crypto.unseal(first, pid_text(pids, 0)) == NUMBERS[0]
    assert NUMBERS[0].encode() not in sealed
    with pytest.raises(IntegrityError):
        crypto.unseal(first, pid_text(pids, 1))
    again = crypto.seal_many(NUMBERS[0].encode(), pids[:PID_BYTES])
    assert again != first  # a fresh nonce each time: equal numbers do not look equal


def test_the_worker_processes_compute_what_one_process_does():
    keys = vault_keys.DataKeys.generate()
    serial, parallel = Crypto(keys, workers=1), Crypto(keys, workers=2)
    parallel.PARALLEL_FROM = 10
    try:
        blob = "".join(NUMBERS).encode()
        assert parallel.blind_many(blob) == serial.blind_many(blob)
        pids = new_pids(len(NUMBERS))
        sealed = parallel.seal_many(blob, pids)
        opened = [
            serial.unseal(sealed[i * SEALED_BYTES : (i + 1) * SEALED_BYTES], pid_text(pids, i))
            for i in range(len(NUMBERS))
        ]
        assert opened == NUMBERS
    finally:
        parallel.close()


def test_pids_are_random_and_unique():
    pids = new_pids(10_000)
    assert len({pids[i : i + PID_BYTES] for i in range(0, len(pids), PID_BYTES)}) == 10_000


def test_pids_reach_duckdb_as_uuids_without_text():
    import duckdb

    pids = new_pids(3)
    con = duckdb.connect()
    con.register("p", pa.table({"pid": uuid_array(pids)}))
    assert [str(u) for (u,) in con.execute("SELECT pid FROM p").fetchall()] == [pid_text(pids, i) for i in range(3)]


def test_fixed_width_buffers_round_trip():
    column = pa.chunked_array([pa.array(NUMBERS[:10]), pa.array(NUMBERS[10:])])
    assert fixed_width_bytes(column, 11) == "".join(NUMBERS).encode()
    assert fixed_strings("".join(NUMBERS).encode(), 11).to_pylist() == NUMBERS
    assert fixed_binary(b"ab" * 3, 2).to_pylist() == [b"ab"] * 3
    with pytest.raises(ValueError):
        fixed_width_bytes(pa.array(["12", "123"]), 2)


def test_master_key_wraps_and_a_wrong_key_is_named(tmp_path):
    master = vault_keys.LocalMasterKey(b"\x07" * 32, "test")
    blob = master.wrap(b"data key", b"ctx")
    assert master.unwrap(blob, b"ctx") == b"data key"
    with pytest.raises(IntegrityError, match="wrong key"):
        vault_keys.LocalMasterKey(b"\x08" * 32, "other").unwrap(blob, b"ctx")
    with pytest.raises(IntegrityError):
        master.unwrap(blob, b"another context")


def test_key_files_are_private_and_well_formed(tmp_path):
    path = tmp_path / "keys" / "master.key"
    vault_keys.write_key_file(path, b"\x01" * 32)
    assert path.stat().st_mode & 0o777 == 0o600 and path.parent.stat().st_mode & 0o777 == 0o700
    assert vault_keys.read_key_file(path).key_id == vault_keys.key_id(b"\x01" * 32)
    path.chmod(0o644)
    with pytest.raises(ConfigError, match="chmod 600"):
        vault_keys.read_key_file(path)
    with pytest.raises(ConfigError, match="not base64"):
        vault_keys.decode_key("not base64!", "TRE_MASTER_KEY")
    with pytest.raises(ConfigError, match="must hold 32"):
        vault_keys.decode_key(vault_keys.encode_key(b"short"), "TRE_MASTER_KEY")
    assert "\\x01" not in repr(vault_keys.DataKeys(b"\x01" * 32, b"\x01" * 32))
