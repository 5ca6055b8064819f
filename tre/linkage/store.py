"""The register store: health and administrative rows keyed by person (`pid`), no ID numbers.

One DuckDB file in the central zone (`registers.duckdb`). Tables:

- one per source (`kuhr`, `dsf`, `npr` ...): `pid`, the source's non-identity columns with their
  declared types, and `__delivery`, `__line` (which delivery and which line each row came from).
  `dsf_idhistory` keeps `pid`, `change_date`, `reason`; `iplos_historisk_nokkel` maps the historic
  pseudonym to a `pid`; `reservasjon` is the reservation-status history (see `reservations`).
- `__tre_deliveries`: one row per committed delivery. Its row is written in the same
  transaction as the delivery's rows: it is the delivery's commit marker.
- `__tre_person_links`: person merges from the ID history (a pid found to be the same person as
  another); `__tre_person_map` resolves every merged pid to its canonical pid.
- `__tre_consent_withdrawals`: persons who withdrew their consent to a consent-based register
  (§ 4-2), with the date: their rows in that register are never used again, the rows before the
  withdrawal included.
- `__tre_findings`: row-level quality findings made at ingest (birth date or sex inconsistent
  with the ID number).

Every row carries the delivery that wrote it, and rows are never updated but for one rule:
a registration opt-out that arrives after the rows it covers blanks their health columns, in
the transaction of the delivery that brought it (`reservations.blank_late_opt_outs`). An
uncommitted delivery is removed by deleting its rows (see `tre.linkage.zone`).
"""

from __future__ import annotations

import hashlib

import duckdb

from tre.registers import SOURCES, Source

SCHEMA_VERSION = 1
DELIVERY, LINE = "__delivery", "__line"


def quote(name: str) -> str:
    """An SQL identifier, quoted: every table and column name goes through here."""
    return '"' + name.replace('"', '""') + '"'


def literal(value: str) -> str:
    """An SQL string literal, for values from the code (code lists), never from a delivery."""
    return "'" + value.replace("'", "''") + "'"


def stored_columns(source: Source) -> list[tuple[str, str]]:
    """(name, type) of a source's table in the store: pid, its non-identity columns, provenance."""
    columns = [("pid", "UUID")]
    columns += [(c.name, c.type) for c in source.columns if c.role != "identity"]
    return columns + [(DELIVERY, "INTEGER"), (LINE, "BIGINT")]


def schema_statements(schema: str) -> list[str]:
    """DDL of the store, idempotent, for the store attached as `schema`."""
    s = quote(schema)
    statements = [
        f"CREATE TABLE IF NOT EXISTS {s}.__tre_meta (key VARCHAR PRIMARY KEY, value VARCHAR)",
        f"""CREATE TABLE IF NOT EXISTS {s}.__tre_deliveries (
            id INTEGER PRIMARY KEY, sha256 VARCHAR NOT NULL UNIQUE, source VARCHAR NOT NULL,
            period VARCHAR, filename VARCHAR NOT NULL, rows_delivered BIGINT NOT NULL,
            rows_stored BIGINT NOT NULL, rows_rejected BIGINT NOT NULL,
            committed_at TIMESTAMPTZ NOT NULL, committed_by VARCHAR NOT NULL, report JSON NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {s}.__tre_person_links (
            pid UUID NOT NULL, canonical_pid UUID NOT NULL, {DELIVERY} INTEGER NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {s}.__tre_consent_withdrawals (
            pid UUID NOT NULL, source VARCHAR NOT NULL, withdrawn DATE, {DELIVERY} INTEGER NOT NULL)""",
        f"""CREATE TABLE IF NOT EXISTS {s}.__tre_findings (
            {DELIVERY} INTEGER NOT NULL, {LINE} BIGINT NOT NULL, rule VARCHAR NOT NULL, pid UUID)""",
    ]
    for source in SOURCES.values():
        columns = ", ".join(f"{quote(n)} {t}" for n, t in stored_columns(source))
        statements.append(f"CREATE TABLE IF NOT EXISTS {s}.{quote(source.name)} ({columns})")
    # Links always point at a pid that had no link when they were made, so the walk ends;
    # the depth bound is a guard, not a rule.
    statements.append(
        f"""CREATE OR REPLACE VIEW {s}.__tre_person_map AS
        WITH RECURSIVE walk(pid, canonical_pid, depth) AS (
            SELECT pid, canonical_pid, 1 FROM __tre_person_links
            UNION ALL
            SELECT w.pid, l.canonical_pid, w.depth + 1
            FROM walk w JOIN __tre_person_links l ON l.pid = w.canonical_pid
            WHERE w.depth < 64)
        SELECT pid, arg_max(canonical_pid, depth) AS canonical_pid FROM walk GROUP BY pid"""
    )
    statements.append(
        f"""CREATE OR REPLACE VIEW {s}.reservation_history AS
        SELECT coalesce(m.canonical_pid, r.pid) AS pid, r.kind, r.action = 'activate' AS active,
               r.effective_time AS effective_at, r.message_id, r.{DELIVERY} AS delivery, r.{LINE} AS line,
               d.committed_at AS recorded_at
        FROM reservasjon r
        LEFT JOIN __tre_person_map m ON m.pid = r.pid
        JOIN __tre_deliveries d ON d.id = r.{DELIVERY}"""
    )
    statements.append(
        f"INSERT INTO {s}.__tre_meta VALUES ('schema_version', '{SCHEMA_VERSION}') ON CONFLICT DO NOTHING"
    )
    return statements


def canonical(pid_sql: str, map_alias: str) -> str:
    """SQL for the canonical pid of `pid_sql`, given `__tre_person_map` LEFT JOINed as `map_alias`."""
    return f"coalesce({map_alias}.canonical_pid, {pid_sql})"


def first(result: duckdb.DuckDBPyConnection) -> tuple | None:
    """The first row of a result, or None; reads the result to its end, as DuckDB wants."""
    rows = result.fetchall()
    return rows[0] if rows else None


def resolve_pids(
    con: duckdb.DuckDBPyConnection, pids: list[str], *, schema: str = "registers"
) -> dict[str, str | None]:
    """Each pid's canonical pid (itself unless the ID history merged it into another person);
    None for text that is not a pid."""
    if not pids:
        return {}
    rows = con.execute(
        f"""SELECT p, coalesce(m.canonical_pid, TRY_CAST(p AS UUID))::VARCHAR FROM unnest($1::VARCHAR[]) t(p)
            LEFT JOIN {quote(schema)}.__tre_person_map m ON m.pid = TRY_CAST(p AS UUID)""",
        [list(pids)],
    ).fetchall()
    return dict(rows)


def person_pids(con: duckdb.DuckDBPyConnection, pid: str, *, schema: str = "registers") -> list[str]:
    """Every pid that is the same person as `pid` (the canonical one first)."""
    main = resolve_pids(con, [pid], schema=schema)[pid]
    if main is None:
        return []
    others = con.execute(
        f"""SELECT pid::VARCHAR FROM {quote(schema)}.__tre_person_map
            WHERE canonical_pid = $1::UUID AND pid <> $1::UUID ORDER BY pid""",
        [main],
    ).fetchall()
    return [main] + [p for (p,) in others]


def table_digests(con: duckdb.DuckDBPyConnection, schema: str) -> dict[str, str]:
    """A content hash of every table in `schema`: order-independent, for before/after comparisons."""
    tables = con.execute(
        "SELECT table_name FROM duckdb_tables() WHERE database_name = $1 ORDER BY table_name", [schema]
    ).fetchall()
    digests = {}
    for (table,) in tables:
        count, total = con.execute(
            f"SELECT count(*), coalesce(sum(hash(t)::HUGEINT), 0) FROM {quote(schema)}.{quote(table)} t"
        ).fetchall()[0]
        digests[table] = hashlib.sha256(f"{count}:{total}".encode()).hexdigest()[:16]
    return digests
