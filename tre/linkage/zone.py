"""The central zone on disk: its files, its lock, and recovery of an interrupted ingest.

Files (all in `central_dir`, mode 0700):

- `vault.duckdb`: the identity vault (encrypted ID numbers, blind indexes, wrapped data keys);
- `registers.duckdb`: the register store (rows keyed by pid; no ID numbers);
- `rejects/<delivery>-<file>.csv`: the rejected rows of each delivery (line, rule, column, key);
- `tmp/`: DuckDB's spill space while an ingest runs (wiped by recovery);
- `central.lock`: writers (ingest, key rotation) hold it exclusively, readers shared;
  `central.turn` makes them take it in turn.

Atomicity across three databases. DuckDB commits one attached database per transaction, and
the metadata store is a third database, so an ingest commits in a fixed order:

1. the vault: the delivery's new identities and ID changes, tagged with the delivery id;
2. the register store: the delivery's rows, tagged likewise, *and its row in
   `__tre_deliveries`*, in one transaction: **this is the commit point**;
3. the metadata store: the `Delivery` record and its audit event.

Recovery runs under the exclusive lock before any reader or writer uses the zone. It deletes
vault rows (and rejects files) of deliveries that have no commit marker: a crash before the
commit point leaves the zone as it was. A crash after it is rolled forward: the metadata
store gets the `Delivery` record the marker describes.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import fcntl
import hashlib
import json
import os
import re
import shutil
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from sqlalchemy import select

from tre import audit, idnumbers
from tre.config import Settings, ensure_private_dir
from tre.db import Clock, Store, utc_now
from tre.enums import DeliveryStatus, ExtractStatus
from tre.errors import IntegrityError
from tre.linkage import releases
from tre.linkage import store as register_store
from tre.linkage import vault as vault_schema
from tre.models import Delivery, Extract

SYSTEM_ACTOR = "tre"
_ID_SHAPE = re.compile(r"(?<!\d)\d{11}(?!\d)")


@dataclass
class Recovery:
    removed_deliveries: list[int] = field(default_factory=list)
    removed_identities: int = 0
    rolled_forward: list[int] = field(default_factory=list)
    removed_builds: list[str] = field(default_factory=list)  # projects whose killed build left files
    removed_release_batches: int = 0  # persons of releases whose record never committed

    @property
    def happened(self) -> bool:
        return bool(
            self.removed_deliveries or self.rolled_forward or self.removed_builds or self.removed_release_batches
        )


def _third_of_memory() -> int:
    return os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") // 3


class CentralZone:
    """The central zone of one installation. Pass it in; it keeps no connections between uses."""

    def __init__(self, settings: Settings, *, environ=None, clock: Clock = utc_now):
        self.settings = settings
        self.environ = dict(os.environ if environ is None else environ)
        self.clock = clock
        root = settings.central_dir
        self.vault_path = root / "vault.duckdb"
        self.store_path = root / "registers.duckdb"
        self.rejects_dir = root / "rejects"
        self.tmp_dir = root / "tmp"
        self.lock_path = root / "central.lock"
        self.turnstile_path = root / "central.turn"
        self.last_recovery = Recovery()

    # --- locking and connections -----------------------------------------------------------

    @contextmanager
    def _locked(self, mode: int) -> Iterator[int]:
        ensure_private_dir(self.settings.central_dir, "the central zone (TRE_CENTRAL_DIR)")
        descriptor = os.open(self.lock_path, os.O_RDWR | os.O_CREAT, 0o600)
        try:
            # In turn: whoever waits for the zone holds the turnstile, so that an ingest, which
            # takes the zone again right after each delivery, cannot starve a reader or a
            # backup waiting for the moment between two deliveries.
            turnstile = os.open(self.turnstile_path, os.O_RDWR | os.O_CREAT, 0o600)
            try:
                fcntl.flock(turnstile, fcntl.LOCK_EX)
                fcntl.flock(descriptor, mode)
            finally:
                os.close(turnstile)
            yield descriptor
        finally:
            os.close(descriptor)  # releases the lock

    def _connect(self, *, vault: str | None, store: str | None, spill: Path | None = None) -> duckdb.DuckDBPyConnection:
        """An in-memory connection with the vault and the store attached ("rw", "ro" or None)."""
        con = duckdb.connect(config={"temp_directory": str(spill or self.tmp_dir)})
        con.execute("SET enable_progress_bar = false")
        # Freed blocks are kept for reuse instead of going back to the OS: every staging table
        # of a national delivery would otherwise fault its pages in again (a tenth of ingest).
        con.execute(f"SET block_allocator_memory = '{_third_of_memory()}B'")
        self._attach(con, vault=vault, store=store)
        return con

    def _attach(self, con, *, vault: str | None, store: str | None) -> None:
        for path, alias, mode in ((self.vault_path, "vault", vault), (self.store_path, "registers", store)):
            if mode:
                options = " (READ_ONLY)" if mode == "ro" else ""
                con.execute(f"ATTACH {register_store.literal(str(path))} AS {alias}{options}")

    @contextmanager
    def session(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory connection for a run of several writes (an ingest's deliveries), with
        nothing of the zone attached: `writing(metadata, con)` attaches the zone to it for one
        write at a time, so that its temporary tables (a run's caches) last between them. Its
        spill space is a folder of its own in `tmp/`, held by a lock while the run lasts, which
        recovery (by another process, between two writes) leaves alone."""
        ensure_private_dir(self.tmp_dir, "the central zone's spill directory")
        spill = self.tmp_dir / f"run-{uuid.uuid4().hex}"
        # The lock first: a folder without one is a dead run's, for recovery to remove.
        descriptor = os.open(spill.with_name(spill.name + ".lock"), os.O_RDWR | os.O_CREAT, 0o600)
        fcntl.flock(descriptor, fcntl.LOCK_EX)
        spill.mkdir(mode=0o700)
        con = self._connect(vault=None, store=None, spill=spill)
        try:
            yield con
        finally:
            con.close()
            shutil.rmtree(spill, ignore_errors=True)
            spill.with_name(spill.name + ".lock").unlink(missing_ok=True)
            os.close(descriptor)

    @contextmanager
    def writing(
        self, metadata: Store, con: duckdb.DuckDBPyConnection | None = None
    ) -> Iterator[duckdb.DuckDBPyConnection]:
        """The zone locked for writing, recovered, with vault and store attached read-write (to
        `con`, a `session()`'s connection, and detached again afterwards; else to a new one)."""
        with self._locked(fcntl.LOCK_EX):
            own = con is None
            if own:
                con = self._connect(vault="rw", store="rw")
            else:
                self._attach(con, vault="rw", store="rw")
            try:
                self._prepare(metadata, con)
                yield con
            finally:
                if own:
                    con.close()
                else:
                    with contextlib.suppress(duckdb.Error):  # no transaction was open
                        con.execute("ROLLBACK")
                    con.execute("DETACH vault")
                    con.execute("DETACH registers")
                self._private_files()

    @contextmanager
    def consistent(self, metadata: Store) -> Iterator[None]:
        """The zone recovered and locked against writers (shared): its files are at rest, in step
        with the metadata store, for as long as this lasts (readers, backups)."""
        with self._locked(fcntl.LOCK_EX) as descriptor:
            self._prepare(metadata)
            fcntl.flock(descriptor, fcntl.LOCK_SH)
            yield

    @contextmanager
    def reading(self, metadata: Store, *, vault: bool = False) -> Iterator[duckdb.DuckDBPyConnection]:
        """The zone recovered and locked for reading: the store attached read-only as `registers`
        (the default schema), the vault as `vault` when asked for."""
        with self.consistent(metadata):
            con = self._connect(vault="ro" if vault else None, store="ro")
            con.execute("USE registers")
            try:
                yield con
            finally:
                con.close()

    def digests(self) -> dict[str, dict[str, str]]:
        """A content hash of every table of the vault and the register store (read-only; for
        before/after comparisons and backups)."""
        con = duckdb.connect()
        try:
            for path, alias in ((self.vault_path, "vault"), (self.store_path, "registers")):
                con.execute(f"ATTACH {register_store.literal(str(path))} AS {alias} (READ_ONLY)")
            return {alias: register_store.table_digests(con, alias) for alias in ("vault", "registers")}
        finally:
            con.close()

    def _prepare(self, metadata: Store, con: duckdb.DuckDBPyConnection | None = None) -> None:
        """Schema and recovery, on `con` (vault and store attached read-write) or on a
        connection of its own."""
        ensure_private_dir(self.tmp_dir, "the central zone's spill directory")
        ensure_private_dir(self.rejects_dir, "the rejects directory")
        own = con is None
        con = self._connect(vault="rw", store="rw") if own else con
        try:
            for alias, statements in (
                ("vault", vault_schema.schema_statements),
                ("registers", register_store.schema_statements),
            ):
                # The statements are idempotent: a zone made by an older version gains the
                # tables and views added since. They run only when they changed.
                listed = statements(alias)
                version = hashlib.sha256("\n".join(listed).encode()).hexdigest()[:16]
                if _schema_version(con, alias) == version:
                    continue
                new = not _has_schema(con, alias)
                for statement in listed:
                    con.execute(statement)
                con.execute(f"INSERT OR REPLACE INTO {alias}.__tre_meta VALUES ('schema_statements', $1)", [version])
                if new:
                    con.execute(f"CHECKPOINT {alias}")
            self.last_recovery = self._recover(con, metadata)
        finally:
            if own:
                con.close()
        self._private_files()

    def _private_files(self) -> None:
        for path in self.settings.central_dir.iterdir():
            if path.is_file():
                path.chmod(0o600)

    # --- recovery --------------------------------------------------------------------------

    def _recover(self, con: duckdb.DuckDBPyConnection, metadata: Store) -> Recovery:
        check_same_age(con, metadata)
        recovery = Recovery()
        self._clear_spill()
        committed = {row[0] for row in con.execute("SELECT id FROM registers.__tre_deliveries").fetchall()}
        # Uncommitted vault rows carry a delivery id above every committed one (ids count up,
        # and recovery runs before every delivery): a maximum tells whether to look closer.
        newest = max(
            con.execute(f"SELECT coalesce(max(delivery), 0) FROM vault.{table}").fetchall()[0][0]
            for table in vault_schema.DELIVERY_TAGGED
        )
        orphans = []
        if newest > max(committed, default=0):
            orphans = sorted(
                {
                    row[0]
                    for table in vault_schema.DELIVERY_TAGGED
                    for row in con.execute(f"SELECT DISTINCT delivery FROM vault.{table}").fetchall()
                }
                - committed
            )
        if orphans:
            con.execute("BEGIN")
            recovery.removed_identities = con.execute(
                "SELECT count(*) FROM vault.identities WHERE list_contains($1, delivery)", [orphans]
            ).fetchall()[0][0]
            for table in vault_schema.DELIVERY_TAGGED:
                con.execute(f"DELETE FROM vault.{table} WHERE list_contains($1, delivery)", [orphans])
            con.execute("COMMIT")
            con.execute("CHECKPOINT vault")
            recovery.removed_deliveries = orphans
        for path in self.rejects_dir.glob("*.csv"):
            number = path.name.split("-", 1)[0]
            if not number.isdigit() or int(number) not in committed:
                path.unlink()
        recovery.rolled_forward = self._roll_forward(con, metadata)
        recovery.removed_builds = self._remove_dead_builds(metadata)
        recovery.removed_release_batches = len(releases.recover_orphans(self.settings, metadata))
        if recovery.happened:
            with metadata.transaction() as session:
                audit.record(
                    session,
                    at=self.clock(),
                    actor=SYSTEM_ACTOR,
                    action="central.recover",
                    object="central-zone",
                    details={
                        "removed_uncommitted_deliveries": recovery.removed_deliveries,
                        "removed_identities": recovery.removed_identities,
                        "rolled_forward_deliveries": recovery.rolled_forward,
                        "removed_builds": recovery.removed_builds,
                        "removed_release_batches": recovery.removed_release_batches,
                    },
                )
        return recovery

    def _clear_spill(self) -> None:
        """DuckDB's spill files of a killed ingest may hold staged rows: everything in `tmp/` goes,
        but the spill folder of a run that is alive (its lock held, between two writes)."""
        live = set()
        for lock in self.tmp_dir.glob("run-*.lock"):
            descriptor = os.open(lock, os.O_RDWR)
            try:
                fcntl.flock(descriptor, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except BlockingIOError:
                live |= {lock.name, lock.name.removesuffix(".lock")}
            finally:
                os.close(descriptor)
        for leftover in self.tmp_dir.iterdir():
            if leftover.name in live:
                continue
            shutil.rmtree(leftover) if leftover.is_dir() and not leftover.is_symlink() else leftover.unlink()

    def _remove_dead_builds(self, metadata: Store) -> list[str]:
        """What killed extract builds left: their files in `building/<project>/` (a § 4-5
        build's copy holds ID numbers in plain text) are removed, and their extracts, still
        `building` in the metadata store, marked failed, wherever no build holds the project's
        lock."""
        root = self.settings.central_dir / "building"
        folders = [p.name for p in root.iterdir() if p.is_dir() and not p.is_symlink()] if root.is_dir() else []
        with metadata.transaction() as session:
            building = session.execute(select(Extract).where(Extract.status == ExtractStatus.BUILDING)).scalars().all()
            projects = sorted(set(folders) | {e.project_id for e in building})
            dead = []
            for project in projects:
                with build_lock(self.settings, project, wait=False) as held:
                    if not held:
                        continue
                    shutil.rmtree(root / project, ignore_errors=True)
                    for extract in building:
                        if extract.project_id == project:
                            extract.status = ExtractStatus.FAILED
                    dead.append(project)
        return dead

    def _roll_forward(self, con: duckdb.DuckDBPyConnection, metadata: Store) -> list[int]:
        markers = con.execute(
            "SELECT id, sha256, source, period, filename, rows_delivered, committed_at, committed_by, report "
            "FROM registers.__tre_deliveries ORDER BY id"
        ).fetchall()
        if not markers:
            return []
        with metadata.transaction() as session:
            recorded = {
                sha
                for (sha,) in session.execute(
                    select(Delivery.sha256).where(Delivery.status == DeliveryStatus.INGESTED)
                ).all()
            }
            missing = [m for m in markers if m[1] not in recorded]
            for marker in missing:
                record_delivery(session, DeliveryMarker.from_row(marker), recovered=True)
        return [m[0] for m in missing]


def check_same_age(con: duckdb.DuckDBPyConnection, metadata: Store) -> None:
    """The zone and the metadata store must be of one age: every delivery the metadata store
    records as ingested has its commit marker in the register store, and at most one committed
    delivery lacks its record (the one a crash after the commit point left, which recovery
    rolls forward; deliveries are committed one at a time, each recovered before the next).
    Anything else means one of them was restored from another backup than the other."""
    markers = dict(con.execute("SELECT sha256, id FROM registers.__tre_deliveries").fetchall())
    with metadata.transaction() as session:
        recorded = {
            sha: (source, period, at)
            for sha, source, period, at in session.execute(
                select(Delivery.sha256, Delivery.source, Delivery.period, Delivery.ingested_at).where(
                    Delivery.status == DeliveryStatus.INGESTED
                )
            ).all()
        }
    missing = [recorded[sha] for sha in recorded if sha not in markers]
    if missing:
        source, period, at = max(missing, key=lambda m: m[2])
        raise IntegrityError(
            f"the central zone lacks {len(missing)} of the {len(recorded)} deliveries the metadata store records as "
            f"ingested (the latest: {source} {period or ''}, {at:%Y-%m-%d}): the zone is older than the metadata "
            "store, as after restoring the zone alone from an older backup; restore both from one backup "
            "(`tre restore`)"
        )
    unrecorded = sorted(markers[sha] for sha in markers if sha not in recorded)
    if len(unrecorded) > 1:
        raise IntegrityError(
            f"the central zone holds {len(unrecorded)} committed deliveries the metadata store has no record of "
            f"(deliveries {unrecorded[0]}-{unrecorded[-1]}): the metadata store is older than the zone, as after "
            "restoring it alone from an older backup; restore both from one backup (`tre restore`)"
        )


@dataclass(frozen=True)
class DeliveryMarker:
    """A committed delivery as its commit marker in the register store describes it."""

    id: int
    sha256: str
    source: str
    period: str | None
    filename: str
    rows: int
    committed_at: dt.datetime
    committed_by: str
    report: dict

    @classmethod
    def from_row(cls, row) -> DeliveryMarker:
        report = row[8] if isinstance(row[8], dict) else json.loads(row[8])
        return cls(*row[:8], report=report)


def record_delivery(session, marker: DeliveryMarker, *, recovered: bool = False) -> None:
    """The metadata store's record of a committed delivery, and its audit event."""
    at = marker.committed_at if marker.committed_at.tzinfo else marker.committed_at.replace(tzinfo=dt.UTC)
    row = session.execute(select(Delivery).where(Delivery.sha256 == marker.sha256)).scalar_one_or_none()
    if row is None:
        row = Delivery(sha256=marker.sha256)
        session.add(row)
    row.source, row.period, row.filename = marker.source, marker.period, marker.filename
    row.rows, row.status, row.report = marker.rows, DeliveryStatus.INGESTED, marker.report
    row.ingested_at, row.ingested_by = at, marker.committed_by
    details = {
        "delivery": marker.id,
        "source": marker.source,
        "period": redact(marker.period),
        "file": redact(marker.filename),
        "sha256": audit.digest(marker.sha256),
        "rows": marker.rows,
        "stored": marker.report.get("rows_stored"),
        "rejected": marker.report.get("rows_rejected"),
    }
    if recovered:
        details["recovered"] = True
    audit.record(
        session,
        at=at,
        actor=marker.committed_by,
        action="delivery.ingest",
        object=f"delivery:{marker.id}",
        details=details,
    )


@contextmanager
def build_gate(settings: Settings, *, exclusive: bool) -> Iterator[None]:
    """Every extract build passes the gate (shared) for as long as it runs; a backup closes it
    (exclusive): it waits for the builds under way, and no new one starts until it is done, so
    that key tables, release records and extracts are copied at rest."""
    root = settings.central_dir / "building"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(root / ".gate", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        fcntl.flock(descriptor, fcntl.LOCK_EX if exclusive else fcntl.LOCK_SH)
        yield
    finally:
        os.close(descriptor)


@contextmanager
def build_lock(settings: Settings, project_id: str, *, wait: bool) -> Iterator[bool]:
    """The lock of one project's extract build (`building/<project>.lock`): yields whether it
    is held; without `wait`, False at once when another process holds it."""
    root = settings.central_dir / "building"
    root.mkdir(mode=0o700, parents=True, exist_ok=True)
    descriptor = os.open(root / f"{project_id}.lock", os.O_RDWR | os.O_CREAT, 0o600)
    try:
        try:
            fcntl.flock(descriptor, fcntl.LOCK_EX | (0 if wait else fcntl.LOCK_NB))
        except BlockingIOError:
            yield False
            return
        yield True
    finally:
        os.close(descriptor)  # releases the lock


def redact(text: str) -> str:
    """Text safe to show or audit: no ID number in any written form (`tre.idnumbers`), and no
    run of 11 digits either, valid or not."""
    return _ID_SHAPE.sub("<11 digits>", idnumbers.redact_text(text, "<ID number>"))


def _schema_version(con: duckdb.DuckDBPyConnection, alias: str) -> str | None:
    """The hash of the schema statements last run on `alias` (None on a new or older zone)."""
    if not _has_schema(con, alias):
        return None
    row = con.execute(f"SELECT value FROM {alias}.__tre_meta WHERE key = 'schema_statements'").fetchall()
    return row[0][0] if row else None


def _has_schema(con: duckdb.DuckDBPyConnection, alias: str) -> bool:
    return bool(
        con.execute(
            "SELECT count(*) FROM duckdb_tables() WHERE database_name = $1 AND table_name = '__tre_meta'", [alias]
        ).fetchall()[0][0]
    )
