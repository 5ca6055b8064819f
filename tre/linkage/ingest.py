"""Ingest of register deliveries: validate, split identity from health data, store, atomically.

For each delivery (`tre.linkage.deliveries`), on one DuckDB connection with the vault and the
register store attached:

1. *Hard checks* (nothing is stored; the message names file, line and column): manifest, sha256,
   encoding, header, every line with the header's number of fields, row count.
2. *Row rules* (`tre.linkage.rules`): a row breaking one goes to the rejects file (line, rule,
   column, record key) and is not stored.
3. *Identities*: every distinct ID number is blind-indexed once and looked up in the vault;
   numbers the vault does not know are validated (`idnumbers.validate_array`) and, when the
   row is stored, get a random pid and are sealed. Rows get their pid by a join in DuckDB: no
   Python loop runs per register row; the per-number cryptography runs in worker processes.
4. *Registration opt-out* (§ 2-2 first paragraph): for the sources under it, health-role
   fields are stored as NULL when the person had an active registration opt-out at the event
   date (reservation messages of this and earlier deliveries count); admin fields stay.
5. *Commit* in the order `tre.linkage.zone` describes: vault, register store with the commit
   marker, metadata store. A delivery whose sha256 is committed is not ingested again.
"""

from __future__ import annotations

import contextlib
import datetime as dt
import json
import os
import re
from collections.abc import Callable, Iterable
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from tre import audit, errorlog, idnumbers
from tre.db import Store
from tre.enums import DeliveryStatus
from tre.errors import DeliveryError
from tre.linkage.crypto import NUMBER_BYTES, PID_BYTES, SEALED_BYTES, Crypto, blind_parts, new_pids
from tre.linkage.deliveries import (
    MAX_LINE_BYTES,
    DeliveryFile,
    OpenData,
    Outcome,
    check_columns,
    check_scan,
    find_deliveries,
    located,
    open_data,
    read_header,
    scan_file,
)
from tre.linkage.rules import EMBEDDED_NEWLINE, ID_RULES, OUTSIDE_PERIOD, create_code_tables, stored_sql, validation_sql
from tre.linkage.store import DELIVERY, LINE, first, literal, quote, stored_columns
from tre.linkage.vault import load_data_keys
from tre.linkage.zone import CentralZone, DeliveryMarker, record_delivery, redact
from tre.models import Delivery

Progress = Callable[[str], None]
BIG_DELIVERY_BYTES = 16 << 20  # from here on, the crypto workers pay for their start
_PLAIN_PARQUET = re.compile(
    r"VARCHAR|BOOLEAN|(U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?)|FLOAT|DOUBLE|DECIMAL\(\d+,\d+\)|DATE|TIME|"
    r"TIMESTAMP(_S|_MS|_NS)?|TIMESTAMP WITH TIME ZONE"
)
_INTEGER_PARQUET = re.compile(r"U?(TINY|SMALL|BIG|HUGE)?INT(EGER)?|DECIMAL\(\d+,0\)")
DEDUPE_KEYS = {"dsf": ("fnr",), "ses": ("fnr", "year"), "dsf_idhistory": ("old_id", "new_id")}
CSV_ERRORS = {
    "MISSING COLUMNS": "fewer fields than the header's {n}: a truncated or broken line",
    "TOO MANY COLUMNS": "more fields than the header's {n}",
    "INVALID ENCODING": "not valid {encoding}; declare the file's encoding in the manifest",
    "UNQUOTED VALUE": "a quote inside an unquoted field",
    "LINE SIZE OVER MAXIMUM": "longer than {max} bytes",
}


def ingest(
    zone: CentralZone,
    metadata: Store,
    paths: Iterable[Path],
    *,
    actor: str,
    source: str | None = None,
    progress: Progress = lambda message: None,
) -> list[Outcome]:
    """Ingest every delivery the paths name; each one lands whole or not at all, and fails on its
    own: a bad file (or a fault while reading it) is recorded and audited as failed, and the
    run goes on with the next.

    The zone is locked for writing one delivery at a time, so that between deliveries readers,
    and a backup (`tre backup`), find it consistent and need not wait for the whole run.
    """
    found = find_deliveries(paths, source=source)
    outcomes: list[Outcome] = []
    crypto: Crypto | None = None
    with zone.session() as con:
        create_code_tables(con)
        # The blind index of every number seen in this run: a number in several deliveries
        # (the population register, then KUHR, NPR ...) is indexed once.
        con.execute(f"CREATE TEMP TABLE {BLINDS} (id VARCHAR, bh UBIGINT, bl UBIGINT)")
        try:
            for item in found:
                if isinstance(item, Outcome):
                    _record_failure(zone, metadata, item, actor=actor, sha256=None)
                    outcomes.append(item)
                    continue
                with zone.writing(metadata, con):
                    keys = load_data_keys(con, zone.settings, zone.environ, create=True, now=zone.clock())
                    if crypto is None or crypto.keys != keys:
                        # First delivery, or the keys were replaced between two deliveries (a
                        # re-encrypting rotation): blind indexes made under other keys are void.
                        if crypto is not None:
                            crypto.close()
                        crypto = Crypto(keys, workers=zone.settings.ingest_workers)
                        con.execute(f"DELETE FROM {BLINDS}")
                    if _size(item.data) > BIG_DELIVERY_BYTES:
                        crypto.start()  # the workers start while the file is read
                    outcomes.append(_ingest_one(con, zone, metadata, item, crypto, actor=actor, progress=progress))
        finally:
            if crypto is not None:
                crypto.close()
    return outcomes


BLINDS = "temp.__tre_blinds"


def _size(path: Path) -> int:
    try:
        return os.lstat(path).st_size
    except OSError:
        return 0  # open_data says what is wrong with it


def summary(name: str, report: dict) -> str:
    """One line about an ingested delivery."""
    text = (
        f"{name}: delivery {report['delivery']}, {report['rows_delivered']} rows: {report['rows_stored']} stored, "
        f"{report['rows_rejected']} rejected"
    )
    if report["rejects"]:
        counts = ", ".join(f"{rule} {sum(columns.values())}" for rule, columns in sorted(report["rejects"].items()))
        text += f" ({counts})"
    if report.get("registration_opt_out_rows"):
        text += f"; health fields withheld for {report['registration_opt_out_rows']} rows (registration opt-out)"
    if report.get("not_linked"):
        text += f"; {report['not_linked']} rows not linked to a person"
    return text


def _ingest_one(con, zone, metadata, item: DeliveryFile, crypto: Crypto, *, actor, progress) -> Outcome:
    manifest = item.manifest
    outcome = Outcome(file=item.name, status="failed", source=manifest.source, period=manifest.period)
    delivery_id = con.execute("SELECT coalesce(max(id), 0) + 1 FROM registers.__tre_deliveries").fetchall()[0][0]
    run = _Run(con, zone, item, crypto, delivery_id, actor=actor, progress=progress)
    try:
        run.opened = open_data(item)
        # The bytes are hashed and scanned while DuckDB reads the file (it releases the GIL);
        # the hash decides first, so a changed file is reported as changed, whatever else.
        with ThreadPoolExecutor(1) as background:
            # A text file with far more line ends than its manifest's rows is refused as soon as
            # the scan, which outruns the load, counts them: the load is stopped there rather
            # than left to read the rest. (A few more are left to the checks that say which
            # line spans lines, or how many rows there are.)
            scanning = background.submit(
                scan_file,
                run.opened.path,
                text=manifest.format == "csv",
                encoding=item.encoding,
                max_newlines=manifest.rows + 1 + max(1000, manifest.rows // 100),
                on_stop=run.stop_load,
            )
            try:
                run.load()
                unreadable = None
            except DeliveryError as e:
                unreadable = e
            run.scan = scan = scanning.result()
        if scan.stopped:
            raise located(
                item.name,
                f"has more lines than the {manifest.rows} rows its manifest says (reading stopped there): the manifest "
                "is wrong, the file is not the one it describes, or a field spans lines",
            )
        if scan.sha256 != manifest.sha256:
            raise DeliveryError(
                redact(
                    f"{item.name}: its sha256 does not match the manifest's: the file is incomplete or was changed "
                    "after the manifest was written; ask the reporter to deliver it again"
                )
            )
        done = first(
            con.execute("SELECT id, committed_at FROM registers.__tre_deliveries WHERE sha256 = $1", [scan.sha256])
        )
        if done is not None:
            outcome.status, outcome.delivery = "already_ingested", done[0]
            outcome.message = (
                f"{item.name}: already ingested as delivery {done[0]} on {done[1]:%Y-%m-%d %H:%M}: nothing to do"
            )
            return outcome
        check_scan(item, scan, opened=run.opened.path)
        if unreadable is not None:
            raise unreadable
        report = run.execute()
    except DeliveryError as e:
        run.undo()
        outcome.message = str(e)
        _record_failure(zone, metadata, outcome, actor=actor, sha256=run.scan.sha256 if run.scan else None)
        return outcome
    except Exception as e:  # a fault while reading one delivery fails that delivery, not the run
        run.undo()
        where = errorlog.write(zone.settings.home, e)
        outcome.message = redact(
            f"{item.name}: internal error ({e.__class__.__name__}) while ingesting it; nothing of it was stored{where}"
        )
        _record_failure(zone, metadata, outcome, actor=actor, sha256=run.scan.sha256 if run.scan else None)
        return outcome
    except BaseException:
        run.undo()
        raise
    finally:
        run.drop_staging()
        if run.opened is not None:
            run.opened.close()
    marker = DeliveryMarker(
        id=delivery_id,
        sha256=run.scan.sha256,
        source=manifest.source,
        period=manifest.period,
        filename=item.name,
        rows=manifest.rows,
        committed_at=run.now,
        committed_by=actor,
        report=report,
    )
    with metadata.transaction() as session:
        record_delivery(session, marker)
    progress(f"{item.name}: recorded")
    outcome.status, outcome.delivery, outcome.report = "ingested", delivery_id, report
    outcome.message = summary(item.name, report)
    return outcome


def _record_failure(zone, metadata: Store, outcome: Outcome, *, actor: str, sha256: str | None) -> None:
    """A failed delivery is recorded (by its sha256, when known) and audited; nothing else changes."""
    now = zone.clock()
    with metadata.transaction() as session:
        if sha256 is not None:
            row = session.query(Delivery).filter(Delivery.sha256 == sha256).one_or_none()
            if row is None:
                row = Delivery(sha256=sha256)
                session.add(row)
            row.source = outcome.source or ""
            row.period, row.filename, row.rows = outcome.period, outcome.file, 0
            row.status, row.report = DeliveryStatus.FAILED, {"error": outcome.message}
            row.ingested_at, row.ingested_by = now, actor
        audit.record(
            session,
            at=now,
            actor=actor,
            action="delivery.failed",
            object=redact(f"file:{outcome.file}"),
            details={"error": outcome.message, "sha256": audit.digest(sha256)},
        )


class _Run:
    """The staging and writing of one delivery on the ingest connection (tables `__tre_*`).

    `__tre_raw` holds the delivery as text; a row's line is `rowid + 2` (the header is line 1).
    """

    def __init__(self, con, zone: CentralZone, item: DeliveryFile, crypto: Crypto, delivery: int, *, actor, progress):
        self.con, self.zone, self.item, self.crypto = con, zone, item, crypto
        self.scan = None  # the file's FileScan, once read
        self.source, self.manifest = item.source, item.manifest
        self.delivery, self.actor, self.progress = delivery, actor, progress
        self.now = zone.clock()
        self.rejects_file = zone.rejects_dir / f"{delivery}-{Path(item.name).stem}.csv"
        self.identity_columns = [c.name for c in self.source.columns if c.role == "identity"]
        self.bad = 0  # rows rejected so far
        self.report: dict = {"new_identities": 0, "person_links": 0}
        self.opened: OpenData | None = None  # the data file, opened once
        self.stopped = False  # the byte scan stopped the load (more lines than the manifest's rows)

    # -- helpers --

    def sql(self, query: str, params=None):
        return self.con.execute(query, params or [])

    def scalar(self, query: str, params=None):
        return self.sql(query, params).fetchall()[0][0]

    def say(self, message: str) -> None:
        self.progress(f"{self.item.name}: {message}")

    @property
    def good_rows(self) -> str:
        """`__tre_raw r` without its rejected rows (no join at all while there are none)."""
        return "__tre_raw r" + (" ANTI JOIN __tre_bad b ON b.line = r.rowid + 2" if self.bad else "")

    def _mark_bad(self) -> None:
        self.sql("CREATE OR REPLACE TABLE __tre_bad AS SELECT DISTINCT line FROM __tre_fail")
        self.bad = self.scalar("SELECT count(*) FROM __tre_bad")

    def stop_load(self) -> None:
        """Called from the scanning thread: interrupt the load running on the connection."""
        self.stopped = True
        self.con.interrupt()

    def drop_staging(self) -> None:
        for (name,) in self.sql(
            "SELECT table_name FROM duckdb_tables() WHERE database_name = 'memory' AND NOT temporary "
            "AND starts_with(table_name, '__tre_')"
        ).fetchall():
            self.sql(f"DROP TABLE IF EXISTS {quote(name)}")
        for (name,) in self.sql(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal AND temporary AND starts_with(view_name, '__tre_')"
        ).fetchall():
            self.con.unregister(name)
        for name in ("__tre_csv_errors", "__tre_csv_scans"):
            self.sql(f"DROP TABLE IF EXISTS temp.{name}")

    def undo(self) -> None:
        """Remove what this delivery wrote before its commit marker (recovery does the same after a kill)."""
        with contextlib.suppress(duckdb.Error):  # no transaction was open
            self.sql("ROLLBACK")
        committed = self.scalar("SELECT count(*) FROM registers.__tre_deliveries WHERE id = $1", [self.delivery])
        if not committed:
            self.sql("DELETE FROM vault.identities WHERE delivery = $1", [self.delivery])
            self.sql("DELETE FROM vault.id_changes WHERE delivery = $1", [self.delivery])
            self.rejects_file.unlink(missing_ok=True)

    # -- the steps --

    def execute(self) -> dict:
        """Every step after `load`."""
        self.sql("CREATE OR REPLACE TABLE __tre_pmap AS SELECT pid, canonical_pid FROM registers.__tre_person_map")
        self.validate()
        self.identify()
        self.dedupe()
        self.say(f"validated: {self.bad} of {self.manifest.rows} rows rejected")
        if self.source.name == "dsf_idhistory":
            self.link_history()
        else:
            self.assign_pids()
        self.opt_out()
        self.findings()
        self.write_rejects()
        self.commit()
        return self.report

    def load(self) -> None:
        if self.manifest.format == "csv":
            header = read_header(self.item, self.opened.path)
            check_columns(self.item, header, line=1)
            self._load_csv(header)
        else:
            header = self._load_parquet()
        for c in self.source.columns:
            if c.name not in header:  # an optional column the reporter left out
                self.sql(f"ALTER TABLE __tre_raw ADD COLUMN {quote(c.name)} VARCHAR")
        rows = self.scalar("SELECT count(*) FROM __tre_raw")
        if rows != self.manifest.rows:
            raise located(
                self.item.name, f"has {rows} data rows; its manifest says {self.manifest.rows}: incomplete delivery"
            )
        self.say(f"read {rows} rows")

    def _load_csv(self, header: list[str]) -> None:
        options = """header = true, auto_detect = false, delim = ',', quote = '"', escape = '"',
                     strict_mode = true, encoding = $3, max_line_size = $4"""
        parameters = [self.opened.path, {name: "VARCHAR" for name in header}, self.item.encoding, MAX_LINE_BYTES]
        try:
            self.sql(f"CREATE TABLE __tre_raw AS SELECT * FROM read_csv($1, columns = $2, {options})", parameters)
            return
        except duckdb.Error:
            if self.stopped:
                raise located(self.item.name, "reading stopped: more lines than its manifest's rows") from None
            # DuckDB's message quotes the line: never shown. Read again to locate the error.
        try:
            self.sql(
                f"""CREATE OR REPLACE TEMP TABLE __tre_csv_probe AS SELECT * FROM read_csv($1, columns = $2, {options},
                    store_rejects = true, rejects_table = '__tre_csv_errors', rejects_scan = '__tre_csv_scans')""",
                parameters,
            )
            self.sql("DROP TABLE temp.__tre_csv_probe")
            error = first(
                self.sql("SELECT line, column_name, error_type::VARCHAR FROM __tre_csv_errors ORDER BY line LIMIT 1")
            )
        except duckdb.Error:
            error = None
        if error is None:
            raise located(self.item.name, "cannot be read as CSV")
        line, column, kind = error
        what = CSV_ERRORS.get(kind, "not well-formed CSV").format(
            n=len(header), encoding=self.item.encoding, max=MAX_LINE_BYTES
        )
        raise located(self.item.name, what, line=line, column=column if kind != "TOO MANY COLUMNS" else None)

    def _load_parquet(self) -> list[str]:
        """Load a Parquet delivery as text, after what its own metadata (the footer) says has
        been checked: the row count against the manifest's, the size a row may take, and that
        every column holds plain values (a list, struct or map column is no register column)."""
        path = self.opened.path
        try:
            described = self.sql("DESCRIBE SELECT * FROM read_parquet($1)", [path]).fetchall()
            rows, unpacked = self.sql(
                "SELECT (SELECT sum(num_rows) FROM parquet_file_metadata($1)), "
                "(SELECT coalesce(sum(total_uncompressed_size), 0) FROM parquet_metadata($1))",
                [path],
            ).fetchall()[0]
        except duckdb.Error:
            raise located(self.item.name, "not a readable Parquet file") from None
        if rows != self.manifest.rows:
            raise located(
                self.item.name,
                f"has {rows} data rows by its own metadata; its manifest says {self.manifest.rows}: "
                "the manifest is wrong or the file is not the one it describes",
            )
        if unpacked > (rows + 1) * MAX_LINE_BYTES:
            raise located(self.item.name, f"unpacks to {unpacked} bytes: more than {rows} rows of a register can hold")
        header = [row[0] for row in described]
        check_columns(self.item, header, line=None)
        nested = [name for name, kind, *_ in described if not _PLAIN_PARQUET.fullmatch(kind)]
        if nested:
            raise located(
                self.item.name,
                f"column(s) {', '.join(nested)} hold lists, structs, maps or bytes; a register column holds one "
                "plain value (text, number, date, time or true/false) per row",
            )
        types = {name: kind for name, kind, *_ in described}
        casts = ", ".join(f"{self._as_text(h, types[h])} AS {quote(h)}" for h in header)
        try:
            self.sql(f"CREATE TABLE __tre_raw AS SELECT {casts} FROM read_parquet($1)", [path])
        except duckdb.Error:
            raise located(self.item.name, "not a readable Parquet file (a column cannot be read as text)") from None
        return header

    def _as_text(self, name: str, kind: str) -> str:
        text = f"CAST({quote(name)} AS VARCHAR)"
        if name in self.identity_columns and _INTEGER_PARQUET.fullmatch(kind):
            # An ID number written as an integer lost its leading zero (day 1-9 of a month).
            return f"lpad({text}, 11, '0')"
        return text

    def _confirm_ids_in_fields(self) -> None:
        """`id_in_field` marks fields that may hold an ID number (a cheap test of their shape);
        keep the mark only where `tre.idnumbers` finds a valid one, in whatever form it is
        written (an opaque code may hold 11 digits by chance). Only marked rows are read."""
        for (column,) in self.sql("SELECT DISTINCT col FROM __tre_fail WHERE rule = 'id_in_field'").fetchall():
            marked = self.con.sql(
                f"""SELECT f.line, r.{quote(column)} AS value FROM __tre_fail f JOIN __tre_raw r ON r.rowid + 2 = f.line
                    WHERE f.rule = 'id_in_field' AND f.col = {literal(column)}"""
            ).fetchnumpy()
            holds = idnumbers.holds_id_numbers(marked["value"].tolist())
            self.con.register("__tre_confirmed", pa.table({"line": marked["line"][holds]}))
            self.sql(
                "DELETE FROM __tre_fail WHERE rule = 'id_in_field' AND col = $1 "
                "AND line NOT IN (SELECT line FROM __tre_confirmed)",
                [column],
            )
            self.con.unregister("__tre_confirmed")

    def validate(self) -> None:
        # A CSV file whose bytes hold no control character and whose line ends are exactly
        # the rows' needs no per-field search for them.
        clean = (
            self.manifest.format == "csv"
            and self.scan.control_bytes == 0
            and self.scan.has_one_record_per_line(self.manifest.rows)
        )
        bounds = period_bounds(self.manifest.period)
        period = (bounds[0].isoformat(), bounds[1].isoformat()) if bounds else None
        self.sql(validation_sql(self.source, today=self.now.date().isoformat(), control=not clean, period=period))
        # Rows outside the period are a finding, not a reject: taken out, kept for `findings`.
        self.sql(f"CREATE TABLE __tre_outside AS SELECT line FROM __tre_fail WHERE rule = '{OUTSIDE_PERIOD}'")
        self.sql(f"DELETE FROM __tre_fail WHERE rule = '{OUTSIDE_PERIOD}'")
        self._confirm_ids_in_fields()
        broken = first(
            self.sql(f"SELECT line, col FROM __tre_fail WHERE rule = '{EMBEDDED_NEWLINE}' ORDER BY line LIMIT 1")
        )
        if broken is not None:
            raise located(
                self.item.name,
                "a field spans several lines; a delivery has one record per line",
                line=broken[0],
                column=broken[1],
            )
        self._mark_bad()

    # -- identities --

    def identify(self) -> None:
        """Blind-index and look up every distinct ID number once; validate the new ones; reject bad ones.

        Makes `__tre_idinfo (id, rule, bh, bl, pid, kind, id_birth, id_sex)` (`bh`, `bl`: the blind
        index as two 64-bit integers): `pid` is the known
        person (canonical) or NULL, `rule` the ID rule the number breaks or NULL.
        """
        if not self.identity_columns:
            return
        union = " UNION ".join(f"SELECT {quote(c)} AS id FROM __tre_raw" for c in self.identity_columns)
        self.sql(f"CREATE TABLE __tre_idset AS SELECT DISTINCT id FROM ({union}) WHERE id IS NOT NULL AND id <> ''")
        shaped = "length(id) = 11 AND regexp_full_match(id, '[0-9]{11}')"
        self.sql(
            f"""CREATE TABLE __tre_idb AS SELECT s.id, c.bh, c.bl, {shaped} AS shaped
                FROM __tre_idset s LEFT JOIN {BLINDS} c USING (id)"""
        )
        ids = self.con.sql("SELECT id FROM __tre_idb WHERE shaped AND bh IS NULL").to_arrow_table().column(0)
        high, low = blind_parts(self.crypto.blind_many(fixed_width_bytes(ids, NUMBER_BYTES)))
        self.con.register("__tre_blind_view", pa.table({"id": ids, "bh": high, "bl": low}))
        self.sql(f"INSERT INTO {BLINDS} SELECT id, bh, bl FROM __tre_blind_view")
        self.sql(
            """CREATE TABLE __tre_known AS
               SELECT b.id, b.bh, b.bl, coalesce(m.canonical_pid, i.pid) AS pid, i.kind
               FROM (SELECT id, bh, bl FROM __tre_idb WHERE shaped AND bh IS NOT NULL
                     UNION ALL SELECT id, bh, bl FROM __tre_blind_view) b
               LEFT JOIN vault.identities i ON i.blind_hi = b.bh AND i.blind_lo = b.bl
               LEFT JOIN __tre_pmap m ON m.pid = i.pid"""
        )
        # Known numbers were valid when first stored; only new ones need the rules (the
        # population register's are always checked, for the birth date and sex findings).
        every = self.source.name == "dsf"
        checked = self.con.sql(
            f"SELECT id, bh, bl, pid, kind FROM __tre_known {'' if every else 'WHERE pid IS NULL'}"
        ).to_arrow_table()
        result = idnumbers.classify_ascii(fixed_width_bytes(checked.column("id"), NUMBER_BYTES))
        for name, values, meaning in (
            ("reason", result["reason"], idnumbers.REASONS),
            ("idkind", result["kind"], idnumbers.KINDS),
            ("id_sex", result["sex"], idnumbers.SEXES),
        ):
            checked = checked.append_column(name, decoded(values, meaning))
        checked = checked.append_column("id_birth", pa.array(result["birth_date"]))
        self.con.register("__tre_checked_view", checked)
        rules = " ".join(f"WHEN {literal(k)} THEN {literal(v)}" for k, v in ID_RULES.items())
        # Aligned rows, no join: the checked numbers, the known ones not checked, the misshapen.
        self.sql(
            f"""CREATE TABLE __tre_idinfo AS
                SELECT id, CASE WHEN pid IS NULL THEN CASE reason {rules} ELSE NULL END END AS rule,
                       bh, bl, pid, coalesce(kind, NULLIF(idkind, '')) AS kind, id_birth, NULLIF(id_sex, '') AS id_sex
                FROM __tre_checked_view
                UNION ALL
                SELECT id, NULL, bh, bl, pid, kind, NULL, NULL FROM __tre_known WHERE {"false" if every else "pid IS NOT NULL"}
                UNION ALL
                SELECT id, 'id_not_11_digits', NULL, NULL, NULL, NULL, NULL, NULL FROM __tre_idb WHERE NOT shaped"""
        )
        for column in self.identity_columns:
            self.sql(
                f"""INSERT INTO __tre_fail
                    SELECT r.rowid + 2, i.rule, {literal(column)} FROM __tre_raw r
                    JOIN (SELECT id, rule FROM __tre_idinfo WHERE rule IS NOT NULL) i ON i.id = r.{quote(column)}"""
            )
        self._mark_bad()

    def dedupe(self) -> None:
        """Later lines repeating a record key are duplicates; keys stored by earlier deliveries too."""
        keys = DEDUPE_KEYS.get(self.source.name) or ((self.source.key,) if self.source.key else ())
        if not keys:
            return
        columns = ", ".join(f"r.{quote(k)}" for k in keys)
        # An aggregation over the keys' 64-bit hash (a third faster than over the text), on
        # every row (no join with the rejected ones), finds the few hashes seen more than once;
        # the exact keys are then grouped among those rows that are not rejected: a key's first
        # line stays, its later lines are duplicates.
        self.sql(
            f"CREATE TABLE __tre_repeated AS SELECT hash({columns}) AS h FROM __tre_raw r GROUP BY h HAVING count(*) > 1"
        )
        if self.scalar("SELECT count(*) FROM __tre_repeated"):
            self.sql(
                f"""INSERT INTO __tre_fail
                    SELECT line, 'duplicate', {literal(keys[0])} FROM (
                        SELECT r.rowid + 2 AS line, row_number() OVER (PARTITION BY {columns} ORDER BY r.rowid) AS nth
                        FROM {self.good_rows} SEMI JOIN __tre_repeated d ON d.h = hash({columns}))
                    WHERE nth > 1"""
            )
            self._mark_bad()
        table = f"registers.{quote(self.source.name)}"
        if self.source.key and self.scalar(f"SELECT count(*) FROM (SELECT 1 FROM {table} LIMIT 1)"):
            # A record an earlier delivery stored, delivered again, is its newer version (an IPLOS
            # decision reported again with its end date, a corrected claim): stored beside the
            # earlier one, which extracts and reports then leave for it.
            key = quote(self.source.key)
            self.report["updated_records"] = self.scalar(
                f"SELECT count(*) FROM {self.good_rows} SEMI JOIN {table} s ON s.{key} = r.{key}"
            )

    def _linked(self) -> str:
        """SQL over `r` for: this row may be linked to a person."""
        if not self.source.consent_based:
            return "true"
        # § 4-2: a consent-based register's rows are linked only where the person consented.
        return "coalesce(TRY_CAST(r.consent AS BOOLEAN), false) AND NULLIF(r.consent_withdrawn_date, '') IS NULL"

    def assign_pids(self) -> None:
        """`__tre_pidmap (id, pid)`: known persons, and new ones (random pid, sealed number) for
        numbers of stored rows the vault does not know."""
        if self.source.name == "iplos_historisk":
            # Linked by the historic pseudonym only, through its key table (§ 6-1).
            self.sql(
                """CREATE TABLE __tre_pidmap AS
                   SELECT k.old_pseudonym AS id, coalesce(m.canonical_pid, k.pid) AS pid
                   FROM registers.iplos_historisk_nokkel k LEFT JOIN __tre_pmap m ON m.pid = k.pid"""
            )
            return
        column = quote(self.identity_columns[0])
        new = self.con.sql(
            f"""SELECT i.id, i.bh, i.bl, i.kind FROM __tre_idinfo i
                SEMI JOIN (SELECT r.{column} AS id FROM {self.good_rows} WHERE {self._linked()}) r USING (id)
                WHERE i.pid IS NULL AND i.rule IS NULL"""
        ).to_arrow_table()
        self._seal_new(new)
        self.sql(
            """CREATE TABLE __tre_pidmap AS
               SELECT id, pid FROM __tre_idinfo WHERE pid IS NOT NULL UNION ALL SELECT id, pid FROM __tre_new"""
        )

    def _seal_new(self, new: pa.Table, pids: bytes | None = None) -> None:
        """`__tre_new`: the numbers in `new` (id, bh, bl, kind) with pids (new random ones unless given), sealed."""
        n = new.num_rows
        pids = new_pids(n) if pids is None else pids
        sealed = self.crypto.seal_many(fixed_width_bytes(new.column("id"), NUMBER_BYTES), pids) if n else b""
        table = new.append_column("pid", uuid_array(pids)).append_column("sealed", fixed_binary(sealed, SEALED_BYTES))
        self.con.register("__tre_new_view", table)
        self.sql("CREATE TABLE __tre_new AS SELECT id, bh, bl, kind, pid, sealed FROM __tre_new_view")
        self.report["new_identities"] = n
        if n:
            self.say(f"{n} new identities sealed")

    def _reject_cycles(self) -> None:
        """ID changes that close a cycle with others of this delivery or the vault's (A replaced
        by B, B by A; or A by A) are rejects: no number of such a person would be current."""
        self.sql(
            f"""CREATE TABLE __tre_cedges AS
                SELECT r.rowid + 2 AS line, o.bh AS a_hi, o.bl AS a_lo, n.bh AS b_hi, n.bl AS b_lo
                FROM {self.good_rows} JOIN __tre_idinfo o ON o.id = r.old_id JOIN __tre_idinfo n ON n.id = r.new_id
                UNION ALL
                SELECT NULL, old_hi, old_lo, new_hi, new_lo FROM vault.id_changes"""
        )
        self.sql(
            """CREATE TABLE __tre_cnodes AS SELECT row_number() OVER () - 1 AS node, hi, lo FROM (
                   SELECT a_hi AS hi, a_lo AS lo FROM __tre_cedges UNION SELECT b_hi, b_lo FROM __tre_cedges)"""
        )
        edges = self.sql(
            """SELECT coalesce(e.line, -1) AS line, a.node AS a, b.node AS b FROM __tre_cedges e
               JOIN __tre_cnodes a ON a.hi = e.a_hi AND a.lo = e.a_lo
               JOIN __tre_cnodes b ON b.hi = e.b_hi AND b.lo = e.b_lo"""
        ).fetchnumpy()
        count = self.scalar("SELECT count(*) FROM __tre_cnodes")
        if not count:
            return
        a, b = edges["a"], edges["b"]
        labels = connected_components(count, a, b, strong=True)
        sizes = np.bincount(labels)
        on_cycle = (labels[a] == labels[b]) & ((sizes[labels[a]] > 1) | (a == b))
        cycle_lines = sorted({int(line) for line in edges["line"][on_cycle] if line >= 0})
        if cycle_lines:
            self.sql("INSERT INTO __tre_fail SELECT unnest($1::BIGINT[]), 'id_history_cycle', 'old_id'", [cycle_lines])
            self._mark_bad()

    def link_history(self) -> None:
        """The ID history: every number of a person gets one pid; persons found to be one are linked."""
        self._reject_cycles()
        self.sql(
            f"""CREATE TABLE __tre_hist AS
                SELECT r.rowid + 2 AS line, o.id AS old_id, o.bh AS old_hi, o.bl AS old_lo, o.pid::VARCHAR AS old_pid,
                       o.kind AS old_kind, n.id AS new_id, n.bh AS new_hi, n.bl AS new_lo, n.pid::VARCHAR AS new_pid,
                       n.kind AS new_kind,
                       TRY_CAST(r.change_date AS DATE) AS change_date, r.reason
                FROM {self.good_rows}
                JOIN __tre_idinfo o ON o.id = r.old_id JOIN __tre_idinfo n ON n.id = r.new_id"""
        )
        # Nodes: every number, and every person (pid) already known; edges: history rows and
        # number-to-known-person. Each connected component is one person.
        self.sql(
            """CREATE TABLE __tre_nodes AS
               SELECT row_number() OVER (ORDER BY what, name) - 1 AS node, what, name, bh, bl, idkind FROM (
                   SELECT DISTINCT 'id' AS what, id AS name, bh, bl, kind AS idkind FROM (
                       SELECT old_id AS id, old_hi AS bh, old_lo AS bl, old_kind AS kind FROM __tre_hist
                       UNION ALL SELECT new_id, new_hi, new_lo, new_kind FROM __tre_hist)
                   UNION ALL
                   SELECT DISTINCT 'pid', pid, NULL::UBIGINT, NULL::UBIGINT, NULL FROM (
                       SELECT old_pid AS pid FROM __tre_hist UNION ALL SELECT new_pid FROM __tre_hist)
                   WHERE pid IS NOT NULL)"""
        )
        edges = self.sql(
            """SELECT a.node AS a, b.node AS b FROM __tre_hist h
               JOIN __tre_nodes a ON a.what = 'id' AND a.name = h.old_id
               JOIN __tre_nodes b ON b.what = 'id' AND b.name = h.new_id
               UNION ALL
               SELECT a.node, b.node FROM __tre_idinfo i
               JOIN __tre_nodes a ON a.what = 'id' AND a.name = i.id
               JOIN __tre_nodes b ON b.what = 'pid' AND b.name = i.pid::VARCHAR"""
        ).fetchnumpy()
        count = self.scalar("SELECT count(*) FROM __tre_nodes")
        labels = connected_components(count, edges["a"], edges["b"])
        self.con.register("__tre_label_view", pa.table({"node": np.arange(count), "label": labels}))
        # A person already known keeps a pid (the smallest, when the history joins several).
        self.sql(
            """CREATE TABLE __tre_person AS
               SELECT l.label, min(n.name) FILTER (WHERE n.what = 'pid') AS pid
               FROM __tre_nodes n JOIN __tre_label_view l USING (node) GROUP BY l.label"""
        )
        fresh = self.sql("SELECT label FROM __tre_person WHERE pid IS NULL ORDER BY label").fetchnumpy()["label"]
        self.con.register("__tre_fresh_view", pa.table({"label": fresh, "pid": uuid_array(new_pids(len(fresh)))}))
        self.sql(
            """CREATE TABLE __tre_canon AS
               SELECT n.node, n.what, n.name, n.bh, n.bl, n.idkind, coalesce(p.pid::UUID, f.pid) AS canonical
               FROM __tre_nodes n JOIN __tre_label_view l USING (node) JOIN __tre_person p ON p.label = l.label
               LEFT JOIN __tre_fresh_view f ON f.label = l.label"""
        )
        new_ids = self.con.sql(
            """SELECT c.name AS id, c.bh, c.bl, c.idkind AS kind,
                      unhex(replace(c.canonical::VARCHAR, '-', '')) AS canonical FROM __tre_canon c
               JOIN __tre_idinfo i ON i.id = c.name WHERE c.what = 'id' AND i.pid IS NULL"""
        ).to_arrow_table()
        self._seal_new(
            new_ids.select(["id", "bh", "bl", "kind"]), fixed_width_bytes(new_ids.column("canonical"), PID_BYTES)
        )
        self.sql(
            "CREATE TABLE __tre_links AS SELECT name::UUID AS pid, canonical FROM __tre_canon "
            "WHERE what = 'pid' AND name::UUID <> canonical"
        )
        self.report["person_links"] = self.scalar("SELECT count(*) FROM __tre_links")

    def opt_out(self) -> None:
        """`__tre_optout (line)`: rows whose health fields are withheld (an active registration
        opt-out of the person at the event date)."""
        self.sql("CREATE TABLE __tre_optout (line BIGINT)")
        if not self.source.registration_opt_out:
            return
        event, column = quote(self.source.event_date), quote(self.identity_columns[0])
        self.sql(
            f"""INSERT INTO __tre_optout
                SELECT a.line FROM (
                    SELECT r.rowid + 2 AS line, p.pid, TRY_CAST(r.{event} AS TIMESTAMP) AS at
                    FROM {self.good_rows} JOIN __tre_pidmap p ON p.id = r.{column}) a
                ASOF JOIN (SELECT pid, effective_at, active FROM registers.reservation_history
                           WHERE kind = 'registration') h
                    ON a.pid = h.pid AND a.at >= h.effective_at
                WHERE h.active"""
        )

    def findings(self) -> None:
        """`__tre_found (line, pid, rule)`: stored rows to look into (for the quality report):
        population-register rows whose birth date or sex contradicts their ID number, and rows
        whose event falls outside the delivery's period (a late report, or a wrong date)."""
        self.sql("CREATE TABLE __tre_found (line BIGINT, pid UUID, rule VARCHAR)")
        self._outside_period()
        if self.source.name != "dsf":
            return
        self.sql(
            f"""CREATE TABLE __tre_contradict AS
                SELECT r.rowid + 2 AS line, i.id AS id,
                       coalesce(TRY_CAST(r.birth_date AS DATE) <> i.id_birth, false) AS birth,
                       coalesce(r.sex <> i.id_sex, false) AS sex
                FROM {self.good_rows} JOIN __tre_idinfo i ON i.id = r.fnr
                WHERE TRY_CAST(r.birth_date AS DATE) <> i.id_birth OR r.sex <> i.id_sex"""
        )
        for rule, column in (("birth_date_mismatch", "birth"), ("sex_mismatch", "sex")):
            self.sql(
                f"""INSERT INTO __tre_found SELECT c.line, p.pid, {literal(rule)}
                    FROM __tre_contradict c JOIN __tre_pidmap p USING (id) WHERE c.{column}"""
            )

    def _outside_period(self) -> None:
        """Stored rows whose event lies outside the delivery's period (marked by the rules)."""
        if not self.scalar("SELECT count(*) FROM __tre_outside"):
            return
        identity = self.identity_columns[0] if self.identity_columns else None
        pid = "p.pid" if identity else "NULL"
        joined = f"LEFT JOIN __tre_pidmap p ON p.id = r.{quote(identity)}" if identity else ""
        self.sql(
            f"""INSERT INTO __tre_found SELECT r.rowid + 2, {pid}, '{OUTSIDE_PERIOD}'
                FROM {self.good_rows} {joined} SEMI JOIN __tre_outside o ON o.line = r.rowid + 2"""
        )

    # -- writing --

    def write_rejects(self) -> None:
        """The rejects file: line, rule, column, and the record key and municipality when those
        fields are clean; never an ID number."""
        if not self.bad:
            return
        key = self.source.key

        def clean(column: str) -> str:
            if column not in self.source.column_names:
                return "NULL"
            return (
                f"CASE WHEN NOT EXISTS (SELECT 1 FROM __tre_fail g WHERE g.line = f.line AND g.col = {literal(column)}) "
                f"THEN NULLIF(r.{quote(column)}, '') END"
            )

        self.sql(
            f"""CREATE TABLE __tre_rejects AS
                SELECT {self.delivery} AS delivery, {literal(self.item.name)} AS file, f.line, f.rule,
                       f.col AS "column", {clean(key) if key else "NULL"} AS key,
                       {clean("municipality")} AS municipality
                FROM __tre_fail f JOIN __tre_raw r ON r.rowid + 2 = f.line"""
        )
        # The rules already reject a key that holds an ID number; this is the last word on what
        # leaves in the rejects file, whatever rule a row broke.
        keys = [k for (k,) in self.sql("SELECT DISTINCT key FROM __tre_rejects WHERE key IS NOT NULL").fetchall()]
        holding = [k for k, holds in zip(keys, idnumbers.holds_id_numbers(keys), strict=True) if holds]
        if holding:
            self.sql("UPDATE __tre_rejects SET key = NULL WHERE list_contains($1, key)", [holding])
        self.sql(
            f"""COPY (SELECT * FROM __tre_rejects ORDER BY line, "column")
                TO {literal(str(self.rejects_file))} (HEADER, DELIMITER ',')"""
        )
        self.rejects_file.chmod(0o600)

    def _rows_sql(self, names: list[str]) -> str:
        """The SELECT of the stored rows, in the store table's column order."""
        if self.source.name == "dsf_idhistory":
            values = {"pid": "c.canonical", "change_date": "h.change_date", "reason": "h.reason", LINE: "h.line"}
            values[DELIVERY] = str(self.delivery)
            return (
                f"SELECT {', '.join(values[n] for n in names)} FROM __tre_hist h "
                "JOIN __tre_canon c ON c.what = 'id' AND c.name = h.new_id"
            )
        key = "old_pseudonym" if self.source.name == "iplos_historisk" else self.identity_columns[0]
        withheld = "o.line IS NOT NULL" if self.report["registration_opt_out_rows"] else "false"
        values = {
            "pid": f"CASE WHEN {self._linked()} THEN p.pid END",
            DELIVERY: str(self.delivery),
            LINE: "r.rowid + 2",
        }
        for c in self.source.columns:
            if c.role == "identity":
                continue
            typed = stored_sql(c, f"r.{quote(c.name)}")
            if c.role == "health" and self.source.registration_opt_out:
                typed = f"CASE WHEN {withheld} THEN NULL ELSE {typed} END"
            values[c.name] = typed
        optout = "LEFT JOIN __tre_optout o ON o.line = r.rowid + 2" if withheld != "false" else ""
        return (
            f"SELECT {', '.join(values[n] for n in names)} FROM {self.good_rows} "
            f"LEFT JOIN __tre_pidmap p ON p.id = r.{quote(key)} {optout}"
        )

    def commit(self) -> None:
        d = self.delivery
        table = f"registers.{quote(self.source.name)}"
        rejects: dict[str, dict[str, int]] = {}
        for rule, column, n in self.sql(
            "SELECT rule, col, count(*) FROM __tre_fail GROUP BY ALL ORDER BY ALL"
        ).fetchall():
            rejects.setdefault(rule, {})[column] = n
        self.report.update(
            {
                "delivery": d,
                "source": self.source.name,
                "period": self.manifest.period,
                "file": self.item.name,
                "sha256": self.scan.sha256,
                "rows_delivered": self.manifest.rows,
                "rows_rejected": self.bad,
                "rejects": rejects,
                "registration_opt_out_rows": self.scalar("SELECT count(*) FROM __tre_optout"),
                "findings": dict(
                    self.sql("SELECT rule, count(*) FROM __tre_found GROUP BY rule ORDER BY rule").fetchall()
                ),
                "rejects_file": self.rejects_file.name if self.bad else None,
            }
        )

        self.sql("BEGIN")
        if self.identity_columns:
            self.sql(f"INSERT INTO vault.identities SELECT bh, bl, pid, kind, sealed, {d} FROM __tre_new")
        if self.source.name == "dsf_idhistory":
            self.sql(
                f"INSERT INTO vault.id_changes SELECT old_hi, old_lo, new_hi, new_lo, change_date, reason, {d} FROM __tre_hist"
            )
        self.sql("COMMIT")
        self.say("identities stored in the vault")

        names = [n for n, _ in stored_columns(self.source)]
        self.sql("BEGIN")
        self.sql(f"INSERT INTO {table} ({', '.join(quote(n) for n in names)}) {self._rows_sql(names)}")
        stored, unlinked = self.sql(
            f"SELECT count(*), count(*) - count(pid) FROM {table} WHERE {DELIVERY} = $1", [d]
        ).fetchall()[0]
        self.report.update({"rows_stored": stored, "not_linked": unlinked})
        if self.source.name == "dsf_idhistory":
            self.sql(f"INSERT INTO registers.__tre_person_links SELECT pid, canonical, {d} FROM __tre_links")
        self.sql(f"INSERT INTO registers.__tre_findings SELECT {d}, line, rule, pid FROM __tre_found")
        if self.source.consent_based:
            # A withdrawal is linked to the person, to honour it: none of their rows is used again.
            column = quote(self.identity_columns[0])
            self.sql(
                f"""INSERT INTO registers.__tre_consent_withdrawals
                    SELECT DISTINCT p.pid, {literal(self.source.name)},
                           TRY_CAST(NULLIF(r.consent_withdrawn_date, '') AS DATE), {d}
                    FROM {self.good_rows} JOIN __tre_pidmap p ON p.id = r.{column}
                    WHERE NULLIF(r.consent_withdrawn_date, '') IS NOT NULL"""
            )
        self.sql(
            "INSERT INTO registers.__tre_deliveries VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            [
                d,
                self.scan.sha256,
                self.source.name,
                self.manifest.period,
                self.item.name,
                self.manifest.rows,
                stored,
                self.bad,
                self.now,
                self.actor,
                json.dumps(self.report),
            ],
        )
        self.sql("COMMIT")
        self.say("committed")


# --- fixed-width buffers between DuckDB, Arrow and the crypto workers ------------------------


def fixed_width_bytes(column: pa.ChunkedArray | pa.Array, width: int) -> bytes:
    """The values of a text or binary Arrow column, each exactly `width` bytes, as one buffer."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.type != pa.binary():
        array = array.cast(pa.binary())
    if len(array) == 0:
        return b""
    if array.null_count:
        raise ValueError("fixed_width_bytes: the column has nulls")
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset : array.offset + len(array) + 1]
    if not np.all(np.diff(offsets) == width):
        raise ValueError(f"fixed_width_bytes: not every value is {width} bytes")
    return array.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]


def decoded(codes: np.ndarray, meaning: tuple[str, ...]) -> pa.Array:
    """Integer codes as the strings they index (made by Arrow, not one Python string each)."""
    return pa.DictionaryArray.from_arrays(pa.array(codes), pa.array(meaning)).dictionary_decode()


def uuid_array(buffer: bytes) -> pa.Array:
    """n × 16 bytes as an Arrow UUID column (DuckDB reads it as UUID, without parsing text)."""
    return pa.ExtensionArray.from_storage(pa.uuid(), fixed_binary(buffer, PID_BYTES))


def fixed_binary(buffer: bytes, width: int) -> pa.Array:
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(buffer) // width, [None, pa.py_buffer(buffer)])


def fixed_strings(buffer: bytes, width: int) -> pa.Array:
    n = len(buffer) // width
    offsets = np.arange(0, width * (n + 1), width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(buffer))


def connected_components(count: int, a, b, *, strong: bool = False) -> np.ndarray:
    """The component label of each of `count` nodes, given edges a[i]–b[i]; with `strong`, of the
    strongly connected components of the directed graph a[i] → b[i] (its cycles)."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as components

    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(count, count))
    if strong:
        return components(graph, directed=True, connection="strong")[1]
    return components(graph, directed=False)[1]


def period_bounds(period: str) -> tuple[dt.date, dt.date] | None:
    """The first and last day of a delivery's period ("2023", "2006-2016", "2023a"), or None."""
    found = re.match(r"(\d{4})(?:-(\d{4}))?(?!\d)", period)
    if not found:
        return None
    first, last = int(found.group(1)), int(found.group(2) or found.group(1))
    if not 1854 <= first <= last <= 2100:
        return None
    return dt.date(first, 1, 1), dt.date(last, 12, 31)
