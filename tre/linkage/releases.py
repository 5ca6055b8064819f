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

The digest (SHA-256 over the sorted pids) makes the persons part of the record itself, and
every release record is *anchored* in the audit chain: the transaction that writes a record
also appends a `release.anchor` event holding the record's id, batch and the SHA-256 of all
its fields (`tre.release_anchors`). The audit chain is tamper-evident, so `verify` finds a record
deleted (an anchor without its row), altered or renumbered (a row that no longer hashes to its
anchor), inserted (a row without an anchor), or whose persons were changed (a batch that no
longer hashes to the record's digest); `tre audit verify` runs it with the chain. Recovery
never deletes a batch that an anchor names, so deleting a record's row does not make its
persons an "orphan" to be cleaned away. Records written before anchoring existed are counted as
*legacy*: the chain cannot vouch for them, but the first anchoring recorded which they were
(`release.legacy`: how many, the highest id, the digest of their ids and record digests), so
an unanchored record outside that set (a forged id 0 or -1 too) is found as inserted.
"""

from __future__ import annotations

import datetime as dt
import fcntl
import hashlib
import json
import os
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

import duckdb
import pyarrow as pa
from sqlalchemy import select

from tre import audit
from tre.config import Settings
from tre.db import Store
from tre.models import AuditEvent, ReleaseRecord
from tre.release_anchors import ANCHOR, LEGACY, legacy_digest, record_digest, record_fields

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
        # A batch an anchor names belongs to a committed release whose row has gone (tampering):
        # it is evidence for `verify`, never an orphan.
        orphans = set(batches) - named
        orphans = sorted(orphans - anchored_batches(metadata)) if orphans else []
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
    held: dict[str, str] = {}  # batch -> the digest of the persons it holds
    if releases_path(settings).exists():
        with releases_db(settings, write=False) as con:
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


# --- anchoring in the audit chain and verifying ---------------------------------------------


def _anchors(session) -> list[tuple[int, dict]]:
    """(audit sequence number, details) of every anchor, in the chain's order."""
    events = session.execute(
        select(AuditEvent.seq, AuditEvent.details).where(AuditEvent.action == ANCHOR).order_by(AuditEvent.seq)
    ).all()
    return [(seq, json.loads(details)) for seq, details in events]


def anchored_batches(metadata: Store) -> set[str]:
    with metadata.transaction() as session:
        return {d["batch"] for _, d in _anchors(session) if d.get("batch")}


@dataclass
class Verification:
    """The record of releases checked against its anchors and its persons."""

    records: int = 0
    anchored: int = 0
    legacy: int = 0  # written before anchoring existed: ids below the first anchored one
    problems: list[str] | None = None
    anchors: dict[int, int] | None = None  # record id -> the audit event that anchors it

    def as_dict(self) -> dict:
        return {"records": self.records, "anchored": self.anchored, "legacy": self.legacy, "problems": self.problems}


def verify(settings: Settings, metadata: Store) -> Verification:
    """Every anchor has its record, unchanged; every record since anchoring began has its
    anchor; every record's batch holds the persons its digest says. Problems name record ids
    and audit sequence numbers, never persons."""
    with metadata.transaction() as session:
        anchors = _anchors(session)
        found = session.execute(
            select(AuditEvent.seq, AuditEvent.details).where(AuditEvent.action == LEGACY).order_by(AuditEvent.seq)
        ).first()
        legacy_event = (found[0], json.loads(found[1])) if found else None
        rows = {r.id: record_digest(r) for r in session.execute(select(ReleaseRecord)).scalars()}
    problems: list[str] = []
    by_record: dict[int, int] = {}
    for seq, details in anchors:
        record_id = details.get("record")
        if record_id in by_record:
            problems.append(
                f"release record {record_id} is anchored twice (audit events {by_record[record_id]} and {seq}): "
                "a record was deleted and its id given to another"
            )
            continue
        by_record[record_id] = seq
        if record_id not in rows:
            problems.append(f"release record {record_id} (anchored by audit event {seq}) is missing: deleted")
        elif audit.digest(rows[record_id]) != details.get("record_digest"):
            problems.append(
                f"release record {record_id} differs from what audit event {seq} anchored: altered or renumbered"
            )
    unanchored = sorted(rows.keys() - by_record.keys())
    legacy = 0
    if not anchors and legacy_event is None:
        legacy = len(unanchored)  # nothing anchored yet: the chain vouches for none
    elif legacy_event is not None and unanchored and _legacy_matches(legacy_event[1], unanchored, rows):
        legacy = len(unanchored)
    elif unanchored:
        seq = f"audit event {legacy_event[0]}" if legacy_event else "no audit event"
        highest = legacy_event[1].get("highest") if legacy_event else None
        for record_id in unanchored:
            how = "inserted" if highest is None or record_id > highest else "inserted, or a legacy record changed"
            problems.append(
                f"release record {record_id} has no anchor in the audit chain and is not one of the records "
                f"from before anchoring ({seq} recorded them): {how}"
            )
    problems += check_records(settings, metadata)
    return Verification(len(rows), len(by_record.keys() & rows.keys()), legacy, problems, by_record)


def _legacy_matches(recorded: dict, unanchored: list[int], rows: dict[int, str]) -> bool:
    """Whether the unanchored records are exactly those the first anchoring recorded."""
    digest = legacy_digest((i, rows[i]) for i in unanchored)
    return (len(unanchored), max(unanchored), digest) == (
        recorded.get("records"),
        recorded.get("highest"),
        recorded.get("digest"),
    )


# --- inspection (an authority's, § 4-10) -------------------------------------------------------

INSPECTION_COLUMNS = (
    "record",
    "kind",
    "project",
    "approval",
    "approval_version",
    "recipient",
    "legal_basis",
    "persons",
    "reference",
    "released_at",
    "keep_until",
    "persons_batch",
    "persons_digest",
    "record_digest",
    "anchor_event",
)


def inspection(
    settings: Settings,
    metadata: Store,
    *,
    project: str | None = None,
    first_day: dt.date | None = None,
    last_day: dt.date | None = None,
) -> list[dict]:
    """The release records an authority inspects: one row per release (batch), with how many
    persons it covered and the digests that tie it to its persons and to the audit chain; never
    the persons themselves. Days are the TRE's (`time_zone`). Refuses a damaged record."""
    from tre.errors import IntegrityError
    from tre.timezones import display_zone

    checked = verify(settings, metadata)
    if checked.problems:
        raise IntegrityError(
            f"the record of releases is damaged ({checked.problems[0]}): run `tre audit verify` and restore it "
            "from a backup before it is inspected"
        )
    zone = display_zone(settings.time_zone)
    query = select(ReleaseRecord).order_by(ReleaseRecord.id)
    if project is not None:
        query = query.where(ReleaseRecord.project_id == project)
    rows = []
    with metadata.transaction() as session:
        for row in session.execute(query).scalars():
            day = row.released_at.astimezone(zone).date()
            if (first_day and day < first_day) or (last_day and day > last_day):
                continue
            fields = record_fields(row)
            rows.append(
                {
                    "record": fields.pop("id"),
                    **fields,
                    "released_at": row.released_at.astimezone(zone).isoformat(),
                    "record_digest": record_digest(row),
                    "anchor_event": checked.anchors.get(row.id),
                }
            )
    return rows


def inspection_csv(rows: list[dict]) -> str:
    """CSV for a spreadsheet: a text cell that starts like a formula is written with a leading '."""
    import csv
    import io

    out = io.StringIO()
    writer = csv.DictWriter(out, fieldnames=INSPECTION_COLUMNS, lineterminator="\n")
    writer.writeheader()
    for row in rows:
        writer.writerow(
            {
                k: "'" + v if isinstance(v, str) and v.startswith(("=", "+", "-", "@", "\t", "\r")) else v
                for k, v in row.items()
            }
        )
    return out.getvalue()
