"""Ingest of register deliveries: validate, split identity from health data, store, atomically.

A delivery is a data file (`<source>-<period>.csv|parquet`) beside its manifest (see
`tre.registers.Manifest`). For each delivery, in one pass of SQL over the staged rows:

1. *Hard checks* (the delivery stops, nothing is stored, the message names file, line and
   column): manifest present and consistent (source, file, format, encoding, row count,
   sha256), a readable file in the declared encoding, a header with exactly the source's
   columns (optional ones may be absent), every line with the header's number of fields.
2. *Row rules* (the row goes to the rejects file with rule, column and line): see `RULES`.
3. *Identities*: every distinct ID number is validated once (`idnumbers.validate_array`),
   blind-indexed once, looked up in the vault, and, when new, given a random pid and sealed.
   Rows get their pid by a join in DuckDB; no Python loop runs per register row.
4. *Registration opt-out* (§ 2-2 first paragraph): for sources under it, health-role fields
   are stored as NULL when the person had an active registration opt-out at the event date
   (reservation messages of this and earlier deliveries count); administrative fields stay.
5. *Commit*, in the order `tre.linkage.zone` describes: vault, then register store (with the
   commit marker), then the metadata store. Re-ingesting a committed sha256 does nothing.
"""

from __future__ import annotations

import contextlib
import csv
import hashlib
import json
import re
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

from tre import audit
from tre.db import Store
from tre.enums import DeliveryStatus
from tre.errors import DeliveryError, Problems
from tre.linkage import idnumbers
from tre.linkage.store import DELIVERY, LINE, first, literal, quote, stored_columns
from tre.linkage.vault import (
    BLIND_BYTES,
    NUMBER_BYTES,
    PID_BYTES,
    SEALED_BYTES,
    Crypto,
    load_data_keys,
    new_pids,
)
from tre.linkage.zone import CentralZone, DeliveryMarker, record_delivery, redact
from tre.models import Delivery
from tre.registers import (
    CODE_LISTS,
    ICD10,
    ICPC2,
    SCHEMA_VERSION,
    SOURCES,
    Column,
    Manifest,
    Source,
    manifest_path,
    municipality_numbers,
)

Progress = Callable[[str], None]

# Row rules: the rejects file and the report name these.
RULES = {
    "control_character": "a control character (NUL, tab, ...) in the field",
    "too_long": "longer than the field limit",
    "missing": "a required field is empty",
    "bad_type": "not a value of the column's type (number, ISO date, timestamp, true/false)",
    "unknown_municipality": "not one of the 357 municipality numbers of 2024",
    "unknown_code": "not in the column's code list",
    "bad_icpc2": "not an ICPC-2 code (a chapter letter and two digits)",
    "bad_icd10": "not an ICD-10 code (a letter, two digits and up to two more, no dot)",
    "out_of_range": "below the column's minimum or above its maximum (dates: before 1854)",
    "future_date": "a date after the day of ingest",
    "formula": "starts with =, +, - or @ (a spreadsheet formula)",
    "id_in_field": "an 11-digit number in a field that is not an ID-number column",
    "id_not_11_digits": "the ID number is not 11 digits",
    "id_check_digits": "the ID number's check digits are wrong",
    "id_birth_date": "the ID number's date part is not a date",
    "duplicate": "the same record key as an earlier line of this delivery",
    "already_stored": "the same record key as a row of an earlier delivery",
}
ID_RULES = {"not 11 digits": "id_not_11_digits", "check digits": "id_check_digits", "birth date": "id_birth_date"}
MAX_FIELD = 200
MAX_LINE_BYTES = 1 << 20
EARLIEST_DATE = "1854-01-01"  # the oldest birth date an ID number can hold
FUTURE_ALLOWED = {("iplos", "end_date")}  # a service decision may end after the day of ingest
# Within one run: the population register and the messages first, so that the ID history and
# every opt-out are in place before the rows they concern; the historic key before its rows.
ORDER = {"dsf": 0, "dsf_idhistory": 1, "reservasjon": 2, "iplos_historisk_nokkel": 3, "iplos_historisk": 9}
DEDUPE_KEYS = {"dsf": ("fnr",), "ses": ("fnr", "year"), "dsf_idhistory": ("old_id", "new_id")}
ENCODINGS = {"utf-8": "utf-8", "utf8": "utf-8", "latin-1": "latin-1", "latin1": "latin-1", "iso-8859-1": "latin-1"}
BOM = b"\xef\xbb\xbf"


@dataclass(frozen=True)
class DeliveryFile:
    """A delivery found on disk, its manifest read and checked."""

    data: Path
    manifest: Manifest
    source: Source

    @property
    def name(self) -> str:
        return self.data.name


@dataclass
class Outcome:
    """What happened to one delivery: ingested, already ingested, or failed."""

    file: str
    status: str  # "ingested", "already_ingested" or "failed"
    source: str | None = None
    period: str | None = None
    delivery: int | None = None
    message: str = ""
    report: dict = field(default_factory=dict)

    def as_dict(self) -> dict:
        return {
            "file": self.file,
            "status": self.status,
            "source": self.source,
            "period": self.period,
            "delivery": self.delivery,
            "message": self.message,
            "report": self.report,
        }


def _fail(where: str, message: str, *, line: int | None = None, column: str | None = None) -> DeliveryError:
    """A hard failure, located: `kuhr-2023.csv line 57 column refund_nok: what is wrong`."""
    location = where + (f" line {line}" if line else "") + (f" column {column}" if column else "")
    return DeliveryError(redact(f"{location}: {message}"))


# --- finding deliveries and checking manifests ---------------------------------------------


def find_deliveries(paths: Iterable[Path], *, source: str | None = None) -> list[DeliveryFile | Outcome]:
    """Each delivery the paths name (data files, manifests, or folders of them), in ingest order.

    A delivery whose manifest is missing or wrong comes back as a failed `Outcome`.
    """
    manifests: list[Path] = []
    for path in map(Path, paths):
        if path.is_dir():
            found = sorted(path.glob("*.manifest.json"))
            if not found:
                raise DeliveryError(f"{path}: no delivery manifests (*.manifest.json) in this folder")
            manifests += found
        elif path.name.endswith(".manifest.json"):
            manifests.append(path)
        elif path.exists():
            manifests.append(manifest_path(path))
        else:
            raise DeliveryError(f"{path}: no such file or folder")
    if source is not None and source not in SOURCES:
        raise DeliveryError(f"--source {source}: unknown source; known: {', '.join(SOURCES)}")
    found: list[DeliveryFile | Outcome] = []
    for path in dict.fromkeys(manifests):
        try:
            found.append(read_delivery(path, source=source))
        except DeliveryError as e:
            found.append(Outcome(file=path.name.replace(".manifest.json", ""), status="failed", message=str(e)))

    def order(item):
        if isinstance(item, Outcome):
            return (-1, item.file)
        return (ORDER.get(item.source.name, 5), item.manifest.period, item.name)

    return sorted(found, key=order)


def read_delivery(manifest_file: Path, *, source: str | None = None) -> DeliveryFile:
    """Read and check a manifest; raise DeliveryError naming the file and what is wrong."""
    where = manifest_file.name
    if not manifest_file.is_file():
        raise _fail(where, "no manifest: every delivery comes with <source>-<period>.manifest.json beside it")
    try:
        manifest = Manifest.read(manifest_file)
    except json.JSONDecodeError as e:
        raise _fail(where, "not valid JSON", line=e.lineno) from None
    except (ValueError, TypeError, UnicodeDecodeError) as e:
        raise _fail(where, f"not a delivery manifest ({e})") from None
    problems = []
    if manifest.source not in SOURCES:
        problems.append(f"unknown source {manifest.source!r}")
    if source is not None and manifest.source != source:
        problems.append(f"this is a {manifest.source} delivery, not {source} (--source)")
    expected_stem = f"{manifest.source}-{manifest.period}"
    data = manifest_file.with_name(manifest.file)
    if Path(manifest.file).name != manifest.file:
        problems.append("file must be a file name beside the manifest")
    elif not manifest.file.startswith(expected_stem + "."):
        problems.append(f"file {manifest.file!r} is not named {expected_stem}.<format> (source and period)")
    if manifest_file.name != f"{expected_stem}.manifest.json":
        problems.append(
            f"the manifest of a {manifest.source} delivery for {manifest.period} is {expected_stem}.manifest.json"
        )
    if manifest.format not in ("csv", "parquet") or not manifest.file.endswith("." + manifest.format):
        problems.append(f"format {manifest.format!r} must be csv or parquet and match the file's extension")
    if manifest.format == "csv" and manifest.encoding.lower() not in ENCODINGS:
        problems.append(f"encoding {manifest.encoding!r} must be utf-8 or latin-1")
    if manifest.schema_version != SCHEMA_VERSION:
        problems.append(f"schema_version {manifest.schema_version} is not {SCHEMA_VERSION}")
    if not isinstance(manifest.rows, int) or manifest.rows < 0:
        problems.append("rows must be a whole number ≥ 0")
    if not re.fullmatch(r"[0-9a-f]{64}", str(manifest.sha256)):
        problems.append("sha256 must be 64 lowercase hex digits")
    if problems:
        raise Problems(where, [redact(p) for p in problems]) if len(problems) > 1 else _fail(where, problems[0])
    if not data.is_file():
        raise _fail(where, f"names {manifest.file}, which is not there")
    return DeliveryFile(data=data, manifest=manifest, source=SOURCES[manifest.source])


def file_sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        while chunk := f.read(1 << 22):
            digest.update(chunk)
    return digest.hexdigest()


# --- the run ------------------------------------------------------------------------------


def ingest(
    zone: CentralZone,
    metadata: Store,
    paths: Iterable[Path],
    *,
    actor: str,
    source: str | None = None,
    progress: Progress = lambda message: None,
) -> list[Outcome]:
    """Ingest every delivery the paths name; each one lands whole or not at all."""
    found = find_deliveries(paths, source=source)
    outcomes: list[Outcome] = []
    with zone.writing(metadata) as con:
        crypto: Crypto | None = None
        try:
            for item in found:
                if isinstance(item, Outcome):
                    _record_failure(zone, metadata, item, actor=actor, sha256=None)
                    outcomes.append(item)
                    continue
                if crypto is None:
                    keys = load_data_keys(con, zone.settings, zone.environ, create=True, now=zone.clock())
                    crypto = Crypto(keys, workers=zone.settings.ingest_workers)
                outcomes.append(_ingest_one(con, zone, metadata, item, crypto, actor=actor, progress=progress))
        finally:
            if crypto is not None:
                crypto.close()
    return outcomes


def _ingest_one(con, zone, metadata, item: DeliveryFile, crypto: Crypto, *, actor, progress) -> Outcome:
    manifest = item.manifest
    outcome = Outcome(file=item.name, status="failed", source=manifest.source, period=manifest.period)
    sha = file_sha256(item.data)
    if sha != manifest.sha256:
        outcome.message = redact(
            f"{item.name}: its sha256 does not match the manifest's: the file is incomplete or was changed after "
            "the manifest was written; ask the reporter to deliver it again"
        )
        _record_failure(zone, metadata, outcome, actor=actor, sha256=sha)
        return outcome
    done = first(con.execute("SELECT id, committed_at FROM registers.__tre_deliveries WHERE sha256 = $1", [sha]))
    if done is not None:
        outcome.status, outcome.delivery = "already_ingested", done[0]
        outcome.message = (
            f"{item.name}: already ingested as delivery {done[0]} on {done[1]:%Y-%m-%d %H:%M}: nothing to do"
        )
        return outcome
    delivery_id = con.execute("SELECT coalesce(max(id), 0) + 1 FROM registers.__tre_deliveries").fetchall()[0][0]
    run = _Run(con, zone, item, crypto, delivery_id, sha, actor=actor, progress=progress)
    try:
        report = run.execute()
    except DeliveryError as e:
        run.undo()
        outcome.message = str(e)
        _record_failure(zone, metadata, outcome, actor=actor, sha256=sha)
        return outcome
    except BaseException:
        run.undo()
        raise
    finally:
        run.drop_staging()
    marker = DeliveryMarker(
        id=delivery_id,
        sha256=sha,
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


# --- one delivery -------------------------------------------------------------------------


class _Run:
    """The staging and writing of one delivery on the ingest connection (tables `__tre_*`)."""

    def __init__(
        self, con, zone: CentralZone, item: DeliveryFile, crypto: Crypto, delivery: int, sha256: str, *, actor, progress
    ):
        self.con, self.zone, self.item, self.crypto = con, zone, item, crypto
        self.source, self.manifest = item.source, item.manifest
        self.delivery, self.sha256, self.actor, self.progress = delivery, sha256, actor, progress
        self.now = zone.clock()
        self.rejects_file = zone.rejects_dir / f"{delivery}-{Path(item.name).stem}.csv"
        self.identity_columns = [c.name for c in self.source.columns if c.role == "identity"]
        self.report: dict = {}

    # -- helpers --

    def sql(self, query: str, params=None):
        return self.con.execute(query, params or [])

    def scalar(self, query: str, params=None):
        return self.sql(query, params).fetchall()[0][0]

    def say(self, message: str) -> None:
        self.progress(f"{self.item.name}: {message}")

    def drop_staging(self) -> None:
        for (name,) in self.sql(
            "SELECT table_name FROM duckdb_tables() WHERE database_name IN ('memory', 'temp') AND table_name LIKE '\\_\\_tre\\_%' ESCAPE '\\'"
        ).fetchall():
            self.sql(f"DROP TABLE IF EXISTS {quote(name)}")
        for (name,) in self.sql(
            "SELECT view_name FROM duckdb_views() WHERE NOT internal AND database_name IN ('memory', 'temp') "
            "AND view_name LIKE '\\_\\_tre\\_%' ESCAPE '\\'"
        ).fetchall():
            self.con.unregister(name)

    def undo(self) -> None:
        """Remove what this delivery wrote before its commit marker (recovery does the same after a kill)."""
        with contextlib.suppress(duckdb.Error):
            self.sql("ROLLBACK")
        committed = self.scalar("SELECT count(*) FROM registers.__tre_deliveries WHERE id = $1", [self.delivery])
        if not committed:
            self.sql("DELETE FROM vault.identities WHERE delivery = $1", [self.delivery])
            self.sql("DELETE FROM vault.id_changes WHERE delivery = $1", [self.delivery])
            self.rejects_file.unlink(missing_ok=True)

    # -- the steps --

    def execute(self) -> dict:
        self.load()
        self.validate()
        self.identify()
        self.dedupe()
        bad = self.scalar("SELECT count(*) FROM __tre_bad")
        self.say(f"validated: {bad} of {self.manifest.rows} rows rejected")
        if self.source.name == "dsf_idhistory":
            self.link_history()
        else:
            self.assign_pids()
        self.opt_out()
        self.write_rejects()
        self.commit()
        return self.report

    def load(self) -> None:
        if self.manifest.format == "csv":
            header = self._csv_header()
            self._check_columns(header, line=1)
            self._load_csv(header)
        else:
            header = self._load_parquet()
        for c in self.source.columns:
            if c.name not in header:  # an optional column the reporter left out
                self.sql(f"ALTER TABLE __tre_raw ADD COLUMN {quote(c.name)} VARCHAR")
        rows = self.scalar("SELECT count(*) FROM __tre_raw")
        if rows != self.manifest.rows:
            raise _fail(
                self.item.name, f"has {rows} data rows; its manifest says {self.manifest.rows}: incomplete delivery"
            )
        self.say(f"read {rows} rows")

    def _csv_header(self) -> list[str]:
        with open(self.item.data, "rb") as f:
            first = f.readline(MAX_LINE_BYTES)
        if not first:
            raise _fail(self.item.name, "the file is empty; a delivery starts with a header line", line=1)
        first = first.removeprefix(BOM).rstrip(b"\r\n")
        try:
            text = first.decode(self.encoding)
        except UnicodeDecodeError:
            raise _fail(
                self.item.name, f"not valid {self.encoding}; declare the file's encoding in the manifest", line=1
            ) from None
        return [name.strip() for name in next(csv.reader([text]))]

    @property
    def encoding(self) -> str:
        return ENCODINGS[self.manifest.encoding.lower()]

    def _check_columns(self, header: list[str], *, line: int) -> None:
        known = self.source.column_names
        repeated = sorted({h for h in header if header.count(h) > 1})
        unknown = [h for h in header if h not in known]
        missing = [c.name for c in self.source.columns if c.required and c.name not in header]
        problems = []
        if repeated:
            problems.append(f"column(s) {', '.join(repeated)} appear more than once")
        if unknown:
            hint = "; the file is not comma-separated" if any(";" in h or "\t" in h for h in unknown) else ""
            problems.append(f"unknown column(s) {', '.join(repr(u[:40]) for u in unknown)}{hint}")
        if missing:
            problems.append(f"missing required column(s) {', '.join(missing)}")
        if not problems:
            return
        other = [s.name for s in SOURCES.values() if s.name != self.source.name and set(header) <= set(s.column_names)]
        if other:
            problems.append(f"these are the columns of {other[0]}: is this a {other[0]} delivery?")
        raise _fail(
            self.item.name, f"{'; '.join(problems)} (a {self.source.name} delivery has: {', '.join(known)})", line=line
        )

    def _load_csv(self, header: list[str]) -> None:
        columns = {name: "VARCHAR" for name in header}
        try:
            self.sql(
                """CREATE TABLE __tre_raw AS SELECT * FROM read_csv($1, columns = $2, header = true,
                   auto_detect = false, delim = ',', quote = '"', escape = '"', strict_mode = true,
                   encoding = $3, max_line_size = $4, store_rejects = true,
                   rejects_table = '__tre_csv_errors', rejects_scan = '__tre_csv_scans')""",
                [str(self.item.data), columns, self.encoding, MAX_LINE_BYTES],
            )
        except duckdb.Error as e:
            raise _fail(self.item.name, f"cannot be read as CSV ({e.__class__.__name__})") from None
        error = first(
            self.sql("SELECT line, column_name, error_type::VARCHAR FROM __tre_csv_errors ORDER BY line LIMIT 1")
        )
        if error is not None:
            line, column, kind = error
            what = {
                "MISSING COLUMNS": f"fewer fields than the header's {len(header)}: a truncated or broken line",
                "TOO MANY COLUMNS": f"more fields than the header's {len(header)}",
                "INVALID ENCODING": f"not valid {self.encoding}; declare the file's encoding in the manifest",
                "UNQUOTED VALUE": "a quote inside an unquoted field",
                "LINE SIZE OVER MAXIMUM": f"longer than {MAX_LINE_BYTES} bytes",
            }.get(kind, "not well-formed CSV")
            column = column if kind != "TOO MANY COLUMNS" else None
            raise _fail(self.item.name, what, line=line, column=column)

    def _load_parquet(self) -> list[str]:
        try:
            described = self.sql("DESCRIBE SELECT * FROM read_parquet($1)", [str(self.item.data)]).fetchall()
        except duckdb.Error:
            raise _fail(self.item.name, "not a readable Parquet file") from None
        header = [row[0] for row in described]
        self._check_columns(header, line=0)
        casts = ", ".join(f"CAST({quote(h)} AS VARCHAR) AS {quote(h)}" for h in header)
        try:
            self.sql(f"CREATE TABLE __tre_raw AS SELECT {casts} FROM read_parquet($1)", [str(self.item.data)])
        except duckdb.Error:
            raise _fail(self.item.name, "not a readable Parquet file (a column cannot be read as text)") from None
        return header

    # -- row rules --

    def _rule_sql(self, c: Column) -> str:
        """A CASE giving the first rule column `c` breaks, or NULL."""
        raw = quote(c.name)
        v = f"NULLIF(trim({raw}), '')"
        today = literal(self.now.date().isoformat())
        cases = [
            (f"strpos({raw}, chr(10)) > 0 OR strpos({raw}, chr(13)) > 0", "embedded_newline"),
            (rf"regexp_matches({raw}, '[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]')", "control_character"),
            (f"length({raw}) > {MAX_FIELD}", "too_long"),
            (f"{v} IS NULL", "missing" if c.required else None),
        ]
        if c.role != "identity":
            if c.type == "INTEGER":
                cases.append((f"NOT regexp_full_match({v}, '[+-]?[0-9]{{1,9}}')", "bad_type"))
            elif c.type == "DOUBLE":
                cases.append((f"NOT coalesce(isfinite(TRY_CAST({v} AS DOUBLE)), false)", "bad_type"))
            elif c.type != "VARCHAR":
                cases.append((f"TRY_CAST({v} AS {c.type}) IS NULL", "bad_type"))
            cases += self._code_cases(c, v)
            if c.type in ("INTEGER", "DOUBLE"):
                number = f"TRY_CAST({v} AS DOUBLE)"
                if c.minimum is not None:
                    cases.append((f"{number} < {c.minimum!r}", "out_of_range"))
                if c.maximum is not None:
                    cases.append((f"{number} > {c.maximum!r}", "out_of_range"))
            if c.type in ("DATE", "TIMESTAMP"):
                day = f"TRY_CAST({v} AS {c.type})::DATE"
                cases.append((f"{day} < DATE {literal(EARLIEST_DATE)}", "out_of_range"))
                if (self.source.name, c.name) not in FUTURE_ALLOWED:
                    cases.append((f"{day} > DATE {today}", "future_date"))
            if c.type == "VARCHAR" and c.codes is None:
                cases.append((f"regexp_matches({v}, '^[=+\\-@]')", "formula"))
                cases.append((f"regexp_matches({v}, '(^|[^0-9])[0-9]{{11}}([^0-9]|$)')", "id_in_field"))
        whens = " ".join(
            f"WHEN {condition} THEN {literal(rule + ':' + c.name) if rule else 'NULL'}" for condition, rule in cases
        )
        return f"CASE {whens} END"

    @staticmethod
    def _code_cases(c: Column, v: str) -> list[tuple[str, str]]:
        if c.codes is None:
            return []
        if c.codes == "municipality":
            values = ", ".join(literal(m) for m in sorted(municipality_numbers()))
            return [(f"{v} NOT IN ({values})", "unknown_municipality")]
        if c.codes in ("icpc2", "icd10"):
            pattern = (ICPC2 if c.codes == "icpc2" else ICD10).pattern
            return [(f"NOT regexp_full_match({v}, {literal(pattern)})", f"bad_{c.codes}")]
        values = ", ".join(literal(code) for code in CODE_LISTS[c.codes])
        return [(f"{v} NOT IN ({values})", "unknown_code")]

    def validate(self) -> None:
        checks = ", ".join(self._rule_sql(c) for c in self.source.columns)
        self.sql(
            f"""CREATE TABLE __tre_fail AS
                SELECT line, split_part(f, ':', 1) AS rule, split_part(f, ':', 2) AS col
                FROM (SELECT line, unnest(string_split(fs, ',')) AS f
                      FROM (SELECT rowid + 2 AS line, concat_ws(',', {checks}) AS fs FROM __tre_raw)
                      WHERE fs <> '')"""
        )
        broken = first(
            self.sql("SELECT line, col FROM __tre_fail WHERE rule = 'embedded_newline' ORDER BY line LIMIT 1")
        )
        if broken is not None:
            raise _fail(
                self.item.name,
                "a field spans several lines; a delivery has one record per line",
                line=broken[0],
                column=broken[1],
            )

    def _mark_bad(self) -> None:
        self.sql("CREATE OR REPLACE TABLE __tre_bad AS SELECT DISTINCT line FROM __tre_fail")

    # -- identities --

    def identify(self) -> None:
        """Validate, blind-index and look up every distinct ID number once; reject bad ones."""
        if not self.identity_columns:
            self._mark_bad()
            return
        union = " UNION ".join(
            f"SELECT NULLIF(trim({quote(c)}), '') AS id FROM __tre_raw" for c in self.identity_columns
        )
        self.sql(
            f"CREATE TABLE __tre_idset AS SELECT DISTINCT id FROM ({union}) WHERE id IS NOT NULL AND length(id) <= {MAX_FIELD}"
        )
        shaped = self.con.sql("SELECT id FROM __tre_idset WHERE regexp_full_match(id, '[0-9]{11}')").to_arrow_table()
        ids = shaped.column(0)
        blinds = self.crypto.blind_many(fixed_width_bytes(ids, NUMBER_BYTES))
        self.con.register("__tre_blind_view", pa.table({"id": ids, "blind": fixed_binary(blinds, BLIND_BYTES)}))
        self.sql(
            """CREATE TABLE __tre_known AS
               SELECT b.id, b.blind, coalesce(m.canonical_pid, i.pid) AS pid, i.kind
               FROM __tre_blind_view b
               LEFT JOIN vault.identities i ON i.blind = b.blind
               LEFT JOIN registers.__tre_person_map m ON m.pid = i.pid"""
        )
        # Known numbers were valid when first stored; only new ones need the rules (the
        # population register's are always checked, for the birth date and sex findings).
        every = self.source.name == "dsf"
        unknown = self.sql(f"SELECT id FROM __tre_known {'' if every else 'WHERE pid IS NULL'}").fetchnumpy()["id"]
        result = idnumbers.validate_array(np.asarray(unknown, dtype=object))
        self.con.register(
            "__tre_valid_view",
            pa.table(
                {
                    "id": pa.array(unknown, pa.string()),
                    "reason": result["reason"],
                    "kind": result["kind"],
                    "id_birth": pa.array(result["birth_date"]),
                    "id_sex": result["sex"],
                }
            ),
        )
        reasons = " ".join(f"WHEN {literal(k)} THEN {literal(v)}" for k, v in ID_RULES.items())
        self.sql(
            f"""CREATE TABLE __tre_idinfo AS
                SELECT s.id,
                       CASE WHEN k.id IS NULL THEN 'id_not_11_digits' WHEN k.pid IS NOT NULL THEN NULL
                            ELSE CASE v.reason {reasons} ELSE NULL END END AS rule,
                       k.blind, k.pid, coalesce(k.kind, NULLIF(v.kind, '')) AS kind, v.id_birth,
                       NULLIF(v.id_sex, '') AS id_sex
                FROM __tre_idset s LEFT JOIN __tre_known k ON k.id = s.id LEFT JOIN __tre_valid_view v ON v.id = s.id"""
        )
        for column in self.identity_columns:
            self.sql(
                f"""INSERT INTO __tre_fail
                    SELECT r.rowid + 2, i.rule, {literal(column)} FROM __tre_raw r
                    JOIN __tre_idinfo i ON i.id = NULLIF(trim(r.{quote(column)}), '')
                    WHERE i.rule IS NOT NULL"""
            )
        self._mark_bad()

    def dedupe(self) -> None:
        """Later lines repeating a record key are duplicates; keys stored by earlier deliveries too."""
        keys = DEDUPE_KEYS.get(self.source.name) or ((self.source.key,) if self.source.key else ())
        if not keys:
            return
        self._dedupe_within(keys)
        if self.source.key:
            key = quote(self.source.key)
            self.sql(
                f"""INSERT INTO __tre_fail
                    SELECT r.rowid + 2, 'already_stored', {literal(self.source.key)}
                    FROM __tre_raw r ANTI JOIN __tre_bad b ON b.line = r.rowid + 2
                    SEMI JOIN registers.{quote(self.source.name)} s ON s.{key} = NULLIF(trim(r.{key}), '')"""
            )
        self._mark_bad()

    def _dedupe_within(self, keys: tuple[str, ...]) -> None:
        trimmed = ", ".join(f"NULLIF(trim({quote(k)}), '') AS k{i}" for i, k in enumerate(keys))
        names = ", ".join(f"k{i}" for i in range(len(keys)))
        self.sql(
            f"""CREATE TABLE __tre_keys AS
                SELECT r.rowid + 2 AS line, {trimmed} FROM __tre_raw r ANTI JOIN __tre_bad b ON b.line = r.rowid + 2"""
        )
        self.sql(
            f"""INSERT INTO __tre_fail
                SELECT line, 'duplicate', {literal(keys[0])} FROM (
                    SELECT line, row_number() OVER (PARTITION BY {names} ORDER BY line) AS n
                    FROM __tre_keys SEMI JOIN (SELECT {names} FROM __tre_keys GROUP BY ALL HAVING count(*) > 1) d
                        USING ({names}))
                WHERE n > 1"""
        )
        self._mark_bad()

    def assign_pids(self) -> None:
        """Each accepted row's pid: the known person, or a new one (random pid, sealed number)."""
        self.sql(
            f"""CREATE TABLE __tre_rows AS
                SELECT r.rowid + 2 AS line, i.pid AS known_pid, i.id, i.blind, i.kind
                FROM __tre_raw r ANTI JOIN __tre_bad b ON b.line = r.rowid + 2
                {self._identity_join()}"""
        )
        linked = self._linked_condition()
        new = self.con.sql(
            f"""SELECT DISTINCT id, blind, kind FROM __tre_rows
                WHERE id IS NOT NULL AND known_pid IS NULL AND {linked} ORDER BY id"""
        ).to_arrow_table()
        self._seal_new(new)
        self.sql(
            f"""CREATE TABLE __tre_pids AS
                SELECT w.line, CASE WHEN {linked} THEN coalesce(w.known_pid, n.pid) END AS pid
                FROM __tre_rows w LEFT JOIN __tre_new n ON n.id = w.id"""
        )
        self.report["person_links"] = 0

    def _identity_join(self) -> str:
        if self.identity_columns:
            column = quote(self.identity_columns[0])
            return f"LEFT JOIN __tre_idinfo i ON i.id = NULLIF(trim(r.{column}), '')"
        if self.source.name == "iplos_historisk":
            # Linked by the historic pseudonym only, through its key table (§ 6-1).
            return """LEFT JOIN (SELECT k.old_pseudonym, coalesce(m.canonical_pid, k.pid) AS pid, NULL AS id,
                                        NULL::BLOB AS blind, NULL AS kind
                                 FROM registers.iplos_historisk_nokkel k
                                 LEFT JOIN registers.__tre_person_map m ON m.pid = k.pid) i
                      ON i.old_pseudonym = NULLIF(trim(r.old_pseudonym), '')"""
        return "LEFT JOIN (SELECT NULL AS pid, NULL AS id, NULL::BLOB AS blind, NULL AS kind) i ON false"

    def _linked_condition(self) -> str:
        """SQL (over `__tre_raw r` joined by line) for: this row may be linked to a person."""
        if not self.source.consent_based:
            return "true"
        # § 4-2: a consent-based register's rows are linked only where the person consented.
        return """line IN (SELECT rowid + 2 FROM __tre_raw
                           WHERE TRY_CAST(trim(consent) AS BOOLEAN) AND NULLIF(trim(consent_withdrawn_date), '') IS NULL)"""

    def _seal_new(self, new: pa.Table, pids: bytes | None = None) -> None:
        """Give the numbers in `new` (id, blind, kind) pids (new random ones unless given) and seal them."""
        n = new.num_rows
        pids = new_pids(n) if pids is None else pids
        sealed = self.crypto.seal_many(fixed_width_bytes(new.column("id"), NUMBER_BYTES), pids) if n else b""
        table = new.append_column("pid", fixed_strings(pids, PID_BYTES)).append_column(
            "sealed", fixed_binary(sealed, SEALED_BYTES)
        )
        self.con.register("__tre_new_view", table)
        self.sql("CREATE TABLE __tre_new AS SELECT * FROM __tre_new_view")
        self.report["new_identities"] = n
        if n:
            self.say(f"{n} new identities sealed")

    def link_history(self) -> None:
        """The ID history: every number of a person gets one pid; persons found to be one are linked."""
        self.sql(
            """CREATE TABLE __tre_hist AS
               SELECT r.rowid + 2 AS line, o.id AS old_id, o.blind AS old_blind, o.pid AS old_pid, o.kind AS old_kind,
                      n.id AS new_id, n.blind AS new_blind, n.pid AS new_pid, n.kind AS new_kind,
                      TRY_CAST(trim(r.change_date) AS DATE) AS change_date, trim(r.reason) AS reason
               FROM __tre_raw r ANTI JOIN __tre_bad b ON b.line = r.rowid + 2
               JOIN __tre_idinfo o ON o.id = NULLIF(trim(r.old_id), '')
               JOIN __tre_idinfo n ON n.id = NULLIF(trim(r.new_id), '')"""
        )
        # Nodes: every number, and every person (pid) already known; edges: history rows and
        # number-to-known-person. Each connected component is one person.
        self.sql(
            """CREATE TABLE __tre_nodes AS
               SELECT row_number() OVER (ORDER BY kind_, name) - 1 AS node, kind_, name, blind, idkind FROM (
                   SELECT DISTINCT 'id' AS kind_, id AS name, blind, kind AS idkind FROM (
                       SELECT old_id AS id, old_blind AS blind, old_kind AS kind FROM __tre_hist
                       UNION ALL SELECT new_id, new_blind, new_kind FROM __tre_hist)
                   UNION ALL
                   SELECT DISTINCT 'pid', pid, NULL::BLOB, NULL FROM (
                       SELECT old_pid AS pid FROM __tre_hist UNION ALL SELECT new_pid FROM __tre_hist) WHERE pid IS NOT NULL)"""
        )
        edges = self.sql(
            """SELECT a.node AS a, b.node AS b FROM __tre_hist h
               JOIN __tre_nodes a ON a.kind_ = 'id' AND a.name = h.old_id JOIN __tre_nodes b ON b.kind_ = 'id' AND b.name = h.new_id
               UNION ALL
               SELECT a.node, b.node FROM __tre_idinfo i
               JOIN __tre_nodes a ON a.kind_ = 'id' AND a.name = i.id JOIN __tre_nodes b ON b.kind_ = 'pid' AND b.name = i.pid"""
        ).fetchnumpy()
        count = self.scalar("SELECT count(*) FROM __tre_nodes")
        labels = connected_components(count, edges["a"], edges["b"])
        self.con.register("__tre_label_view", pa.table({"node": np.arange(count), "label": labels}))
        self.sql(
            """CREATE TABLE __tre_person AS
               SELECT l.label, min(n.name) FILTER (WHERE n.kind_ = 'pid') AS pid
               FROM __tre_nodes n JOIN __tre_label_view l USING (node) GROUP BY l.label"""
        )
        fresh = self.scalar("SELECT count(*) FROM __tre_person WHERE pid IS NULL")
        self.con.register(
            "__tre_fresh_view",
            pa.table(
                {
                    "label": self.sql("SELECT label FROM __tre_person WHERE pid IS NULL ORDER BY label").fetchnumpy()[
                        "label"
                    ],
                    "pid": fixed_strings(new_pids(fresh), PID_BYTES),
                }
            ),
        )
        self.sql(
            """CREATE TABLE __tre_canon AS
               SELECT n.node, n.kind_, n.name, n.blind, n.idkind, coalesce(p.pid, f.pid) AS canonical
               FROM __tre_nodes n JOIN __tre_label_view l USING (node) JOIN __tre_person p ON p.label = l.label
               LEFT JOIN __tre_fresh_view f ON f.label = l.label"""
        )
        new_ids = self.con.sql(
            """SELECT c.name AS id, c.blind, c.idkind AS kind, c.canonical FROM __tre_canon c
               JOIN __tre_idinfo i ON i.id = c.name WHERE c.kind_ = 'id' AND i.pid IS NULL ORDER BY c.name"""
        ).to_arrow_table()
        self._seal_new(
            new_ids.select(["id", "blind", "kind"]), fixed_width_bytes(new_ids.column("canonical"), PID_BYTES)
        )
        self.sql(
            "CREATE TABLE __tre_links AS SELECT name AS pid, canonical FROM __tre_canon WHERE kind_ = 'pid' AND name <> canonical"
        )
        self.report["person_links"] = self.scalar("SELECT count(*) FROM __tre_links")
        self.sql(
            """CREATE TABLE __tre_pids AS
               SELECT h.line, c.canonical AS pid FROM __tre_hist h JOIN __tre_canon c ON c.kind_ = 'id' AND c.name = h.new_id"""
        )

    def opt_out(self) -> None:
        """Lines whose health fields are withheld: an active registration opt-out at the event date."""
        self.sql("CREATE TABLE __tre_optout (line BIGINT)")
        if not self.source.registration_opt_out:
            return
        event = quote(self.source.event_date)
        self.sql(
            f"""INSERT INTO __tre_optout
                SELECT a.line FROM (
                    SELECT p.line, p.pid, TRY_CAST(trim(r.{event}) AS TIMESTAMP) AS at
                    FROM __tre_pids p JOIN __tre_raw r ON r.rowid + 2 = p.line WHERE p.pid IS NOT NULL) a
                ASOF JOIN (SELECT pid, effective_at, active FROM registers.reservation_history
                           WHERE kind = 'registration') h
                    ON a.pid = h.pid AND a.at >= h.effective_at
                WHERE h.active"""
        )

    # -- writing --

    def write_rejects(self) -> None:
        """The rejects file: line, rule, column, the record key and municipality when clean; never an ID number."""
        rejected = self.scalar("SELECT count(*) FROM __tre_fail")
        if not rejected:
            return
        key = self.source.key
        key_sql = (
            f"CASE WHEN NOT EXISTS (SELECT 1 FROM __tre_fail g WHERE g.line = f.line AND g.col = {literal(key)}) "
            f"THEN NULLIF(trim(r.{quote(key)}), '') END"
            if key
            else "NULL"
        )
        municipality_sql = (
            "CASE WHEN NOT EXISTS (SELECT 1 FROM __tre_fail g WHERE g.line = f.line AND g.col = 'municipality') "
            "THEN NULLIF(trim(r.municipality), '') END"
            if "municipality" in self.source.column_names
            else "NULL"
        )
        self.sql(
            f"""COPY (SELECT {self.delivery} AS delivery, {literal(self.item.name)} AS file, f.line, f.rule,
                             f.col AS "column", {key_sql} AS key, {municipality_sql} AS municipality
                      FROM __tre_fail f JOIN __tre_raw r ON r.rowid + 2 = f.line ORDER BY f.line, f.col)
                TO {literal(str(self.rejects_file))} (HEADER, DELIMITER ',')"""
        )
        self.rejects_file.chmod(0o600)

    def _typed(self, c: Column, opted_out: str) -> str:
        value = f"NULLIF(trim(r.{quote(c.name)}), '')"
        typed = value if c.type == "VARCHAR" else f"CAST({value} AS {c.type})"
        if c.role == "health" and self.source.registration_opt_out:
            return f"CASE WHEN {opted_out} THEN NULL ELSE {typed} END"
        return typed

    def commit(self) -> None:
        d = self.delivery
        opted_out = "o.line IS NOT NULL"
        names = [n for n, _ in stored_columns(self.source)]
        values = {"pid": "p.pid", DELIVERY: str(d), LINE: "p.line"}
        values.update({c.name: self._typed(c, opted_out) for c in self.source.columns if c.role != "identity"})
        if self.source.name == "dsf_idhistory":
            values["change_date"], values["reason"] = "h.change_date", "h.reason"
        select = ", ".join(values[n] for n in names)
        counts = self.sql(
            """SELECT count(*), count(DISTINCT pid), count(*) FILTER (WHERE pid IS NULL),
                      (SELECT count(*) FROM __tre_optout), (SELECT count(DISTINCT line) FROM __tre_fail)
               FROM __tre_pids"""
        ).fetchall()[0]
        rejects: dict[str, dict[str, int]] = {}
        for rule, column, n in self.sql(
            "SELECT rule, col, count(*) FROM __tre_fail GROUP BY ALL ORDER BY ALL"
        ).fetchall():
            rejects.setdefault(rule, {})[column] = n
        findings = self._findings_sql()
        self.report.update(
            {
                "delivery": d,
                "source": self.source.name,
                "period": self.manifest.period,
                "file": self.item.name,
                "sha256": self.sha256,
                "rows_delivered": self.manifest.rows,
                "rows_stored": counts[0],
                "rows_rejected": counts[4],
                "rejects": rejects,
                "persons": counts[1],
                "not_linked": counts[2],
                "registration_opt_out_rows": counts[3],
                "rejects_file": self.rejects_file.name if counts[4] else None,
            }
        )
        self.report["findings"] = (
            {
                rule: n
                for rule, n in self.sql(
                    f"SELECT rule, count(*) FROM ({findings}) GROUP BY rule ORDER BY rule"
                ).fetchall()
            }
            if findings
            else {}
        )

        self.sql("BEGIN")
        self.sql(f"INSERT INTO vault.identities SELECT blind, pid, kind, sealed, {d} FROM __tre_new")
        if self.source.name == "dsf_idhistory":
            self.sql(
                f"INSERT INTO vault.id_changes SELECT old_blind, new_blind, change_date, reason, {d} FROM __tre_hist"
            )
        self.sql("COMMIT")
        self.say("identities stored in the vault")

        self.sql("BEGIN")
        history = "JOIN __tre_hist h ON h.line = p.line" if self.source.name == "dsf_idhistory" else ""
        self.sql(
            f"""INSERT INTO registers.{quote(self.source.name)} ({", ".join(quote(n) for n in names)})
                SELECT {select} FROM __tre_pids p JOIN __tre_raw r ON r.rowid + 2 = p.line
                LEFT JOIN __tre_optout o ON o.line = p.line {history}"""
        )
        if self.source.name == "dsf_idhistory":
            self.sql(f"INSERT INTO registers.__tre_person_links SELECT pid, canonical, {d} FROM __tre_links")
        if findings:
            self.sql(f"INSERT INTO registers.__tre_findings SELECT {d}, line, rule, pid FROM ({findings})")
        self.sql(
            "INSERT INTO registers.__tre_deliveries VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11)",
            [
                d,
                self.sha256,
                self.source.name,
                self.manifest.period,
                self.item.name,
                self.manifest.rows,
                counts[0],
                counts[4],
                self.now,
                self.actor,
                json.dumps(self.report),
            ],
        )
        self.sql("COMMIT")
        self.say("committed")

    def _findings_sql(self) -> str | None:
        """Rows of the population register whose birth date or sex contradicts their ID number."""
        if self.source.name != "dsf":
            return None
        return """SELECT p.line, p.pid, 'birth_date_mismatch' AS rule FROM __tre_pids p
                  JOIN __tre_raw r ON r.rowid + 2 = p.line JOIN __tre_idinfo i ON i.id = NULLIF(trim(r.fnr), '')
                  WHERE i.id_birth IS NOT NULL AND TRY_CAST(trim(r.birth_date) AS DATE) <> i.id_birth
                  UNION ALL
                  SELECT p.line, p.pid, 'sex_mismatch' FROM __tre_pids p
                  JOIN __tre_raw r ON r.rowid + 2 = p.line JOIN __tre_idinfo i ON i.id = NULLIF(trim(r.fnr), '')
                  WHERE i.id_sex IS NOT NULL AND trim(r.sex) <> i.id_sex"""


# --- fixed-width buffers between DuckDB, Arrow and the crypto workers ------------------------


def fixed_width_bytes(column: pa.ChunkedArray | pa.Array, width: int) -> bytes:
    """The strings of an Arrow column, each exactly `width` bytes, as one buffer."""
    array = column.combine_chunks() if isinstance(column, pa.ChunkedArray) else column
    if array.type != pa.string():
        array = array.cast(pa.string())
    if len(array) == 0:
        return b""
    if array.null_count:
        raise ValueError("fixed_width_bytes: the column has nulls")
    offsets = np.frombuffer(array.buffers()[1], dtype=np.int32)[array.offset : array.offset + len(array) + 1]
    if not np.all(np.diff(offsets) == width):
        raise ValueError(f"fixed_width_bytes: not every value is {width} bytes")
    return array.buffers()[2].to_pybytes()[offsets[0] : offsets[-1]]


def fixed_binary(buffer: bytes, width: int) -> pa.Array:
    return pa.FixedSizeBinaryArray.from_buffers(pa.binary(width), len(buffer) // width, [None, pa.py_buffer(buffer)])


def fixed_strings(buffer: bytes, width: int) -> pa.Array:
    n = len(buffer) // width
    offsets = np.arange(0, width * (n + 1), width, dtype=np.int32)
    return pa.StringArray.from_buffers(n, pa.py_buffer(offsets.tobytes()), pa.py_buffer(buffer))


def connected_components(count: int, a, b) -> np.ndarray:
    """The component label of each of `count` nodes, given edges a[i]–b[i]."""
    from scipy.sparse import coo_matrix
    from scipy.sparse.csgraph import connected_components as components

    a, b = np.asarray(a, dtype=np.int64), np.asarray(b, dtype=np.int64)
    graph = coo_matrix((np.ones(len(a), dtype=np.int8), (a, b)), shape=(count, count))
    return components(graph, directed=False)[1]
