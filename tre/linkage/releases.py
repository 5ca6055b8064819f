"""The persons of the record of releases (§ 4-10), kept centrally beside the metadata store.

Which persons an extract release covered is too much for the metadata store (hundreds of
thousands of pids per release), so it lives in the central zone: `central/releases.duckdb`.
The release record is committed in two phases, because these are two databases:

1. *prepare*: the persons are written under a fresh random batch id (a UUID, never handed
   out again), with the batch's count and digest, in one DuckDB transaction;
2. *commit*: the metadata store's `ReleaseRecord` names that batch (`persons_batch`) and its
   digest (`persons_digest`): **the release exists iff that row exists**.

Both phases run under the releases lock (exclusive), so a batch that no release record names,
found under the lock, belongs to a build that died between the two: recovery
(`recover_orphans`, run by the central zone's recovery before any use of the zone) deletes
it. Nothing reads persons except through a committed record, so an orphan is never shown in
the meantime, and no release can inherit another's persons (a batch id is never reused, as
a metadata row id can be).

The digest (SHA-256 over the sorted pids) makes the persons part of the record itself: a hash
chain over release records (their fields and digests) covers who was released, too.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import pyarrow as pa
from sqlalchemy import select

from tre.config import Settings
from tre.db import Store
from tre.models import ReleaseRecord

RELEASES_FILE = "releases.duckdb"
LOCK_FILE = "releases.lock"
LEGACY_BATCH = "record-"  # batches of the first layout: persons stored under the record's id


def releases_path(settings: Settings):
    return settings.central_dir / RELEASES_FILE


@contextmanager
def locked(settings: Settings, *, write: bool) -> Iterator[None]:
    """The releases lock: exclusive to write (and to recover), shared to read or back up."""
    descriptor = os.open(settings.central_dir / LOCK_FILE, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX if write else fcntl.LOCK_SH)
        yield
    finally:
        os.close(descriptor)


@contextmanager
def releases_db(settings: Settings, *, write: bool) -> Iterator[duckdb.DuckDBPyConnection | None]:
    """`central/releases.duckdb` under the releases lock (DuckDB itself refuses a second
    process). None when reading and nothing was ever recorded."""
    path = releases_path(settings)
    with locked(settings, write=write):
        if not write and not path.exists():
            yield None
            return
        con = duckdb.connect(str(path), read_only=not write)
        try:
            if write:
                _schema(con)
                os.chmod(path, 0o600)
            yield con
        finally:
            con.close()


def _schema(con: duckdb.DuckDBPyConnection) -> None:
    con.execute(
        """CREATE TABLE IF NOT EXISTS release_batches (
            batch VARCHAR PRIMARY KEY, project VARCHAR, reference VARCHAR, persons BIGINT NOT NULL,
            digest VARCHAR, prepared_at TIMESTAMPTZ)"""
    )
    columns = _columns(con, "release_persons")
    if not columns:
        con.execute("CREATE TABLE release_persons (batch VARCHAR NOT NULL, pid VARCHAR NOT NULL)")
    elif "release_record" in columns:
        # The first layout kept persons under the metadata row's id; migration 0013 names
        # those batches `record-<id>` in the extract records that own them.
        con.execute("BEGIN")
        con.execute(
            f"""CREATE TABLE release_persons_new AS
                SELECT '{LEGACY_BATCH}' || release_record AS batch, pid FROM release_persons"""
        )
        con.execute(
            "INSERT INTO release_batches SELECT batch, NULL, NULL, count(*), NULL, NULL "
            "FROM release_persons_new GROUP BY batch ON CONFLICT DO NOTHING"
        )
        con.execute("DROP TABLE release_persons")
        con.execute("ALTER TABLE release_persons_new RENAME TO release_persons")
        con.execute("COMMIT")


def persons_digest(pids: pa.Array | list[str]) -> str:
    """SHA-256 over the sorted pids, one per line: what a release record says about its persons."""
    ordered = sorted(pa.array(pids, pa.string()).to_pylist() if not isinstance(pids, list) else pids)
    return hashlib.sha256("".join(p + "\n" for p in ordered).encode("ascii")).hexdigest()


@dataclass(frozen=True)
class Batch:
    batch: str
    persons: int
    digest: str


def prepare(con: duckdb.DuckDBPyConnection, pids: pa.Array, *, project: str, reference: str, now: dt.datetime) -> Batch:
    """Phase 1: the persons under a new batch id, in one transaction (on a write connection)."""
    batch = Batch(str(uuid.uuid4()), len(pids), persons_digest(pids))
    con.register("__tre_release_pids", pa.table({"pid": pids}))
    con.execute("BEGIN")
    con.execute(
        "INSERT INTO release_batches VALUES ($1, $2, $3, $4, $5, $6)",
        [batch.batch, project, reference, batch.persons, batch.digest, now],
    )
    con.execute("INSERT INTO release_persons SELECT $1, pid FROM __tre_release_pids", [batch.batch])
    con.execute("COMMIT")
    con.unregister("__tre_release_pids")
    return batch


def recover_orphans(settings: Settings, metadata: Store) -> list[str]:
    """Delete batches no release record names (a build died between the two phases); returns
    their ids. Under the exclusive lock, so that no build is between its phases."""
    if not releases_path(settings).exists():
        return []
    with releases_db(settings, write=True) as con:
        batches = [b for (b,) in con.execute("SELECT batch FROM release_batches").fetchall()]
        if not batches:
            return []
        with metadata.transaction() as session:
            named = set(
                session.execute(
                    select(ReleaseRecord.persons_batch).where(ReleaseRecord.persons_batch.is_not(None))
                ).scalars()
            )
        orphans = sorted(set(batches) - named)
        if orphans:
            con.execute("BEGIN")
            con.execute("DELETE FROM release_persons WHERE list_contains($1, batch)", [orphans])
            con.execute("DELETE FROM release_batches WHERE list_contains($1, batch)", [orphans])
            con.execute("COMMIT")
            con.execute("CHECKPOINT")
        return orphans


def _columns(con: duckdb.DuckDBPyConnection, table: str) -> set[str]:
    return {
        c for (c,) in con.execute("SELECT column_name FROM duckdb_columns() WHERE table_name = $1", [table]).fetchall()
    }


def _batch_sql(con: duckdb.DuckDBPyConnection) -> str:
    """The batch of a `release_persons` row, in either layout (a file of the first layout is
    converted by the first write after an upgrade; until then it is read as it is)."""
    if "release_record" in _columns(con, "release_persons"):
        return f"'{LEGACY_BATCH}' || release_record"
    return "batch"


def batches_of(settings: Settings, pids: list[str]) -> list[str]:
    """The batches that hold any of `pids` (read under the shared lock)."""
    with releases_db(settings, write=False) as con:
        if con is None:
            return []
        return [
            b
            for (b,) in con.execute(
                f"SELECT DISTINCT {_batch_sql(con)} FROM release_persons WHERE pid = ANY($1::VARCHAR[])", [pids]
            ).fetchall()
        ]


def check_records(settings: Settings, metadata: Store) -> list[str]:
    """Problems between the record and its persons: a release record whose batch is missing or
    holds other persons than its digest says (a releases file older than the metadata store)."""
    with metadata.transaction() as session:
        records = session.execute(
            select(ReleaseRecord.id, ReleaseRecord.persons_batch, ReleaseRecord.persons_digest).where(
                ReleaseRecord.persons_batch.is_not(None)
            )
        ).all()
    if not records:
        return []
    problems = []
    with releases_db(settings, write=False) as con:
        held: dict[str, str] = {}  # batch -> the digest of the persons it holds
        if con is not None:
            held = dict(
                con.execute(
                    f"""SELECT {_batch_sql(con)} AS b, sha256(string_agg(pid || chr(10), '' ORDER BY pid))
                        FROM release_persons GROUP BY b"""
                ).fetchall()
            )
    for record_id, batch, digest in records:
        if batch not in held:
            problems.append(f"release record {record_id} names persons the releases file does not hold")
        elif digest and held[batch] != digest:
            problems.append(f"release record {record_id}: the releases file holds other persons than its digest says")
    return problems
