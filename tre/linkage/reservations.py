"""Reservation status (§ 2-2): who had which opt-out active at a given time.

Reservation messages are a register source (`reservasjon`): each activates or deactivates one
kind of reservation for one person from an effective time. Ingest stores them, with the
delivery that brought them, in the register store's `reservasjon` table, in the same
transaction as every other row of that delivery: the messages are processed automatically and
the history is complete (which message, activate or deactivate, effective and recorded time).
The view `reservation_history` presents it by canonical pid.

A person's status of kind K at time T is the action of their latest message of kind K with an
effective time at or before T (ties: the later delivery, then the later line): active when that
is `activate`. No message: not reserved.

Two kinds (`tre.enums.ReservationKind`): `registration` (§ 2-2 first paragraph, applied at
ingest to health-centre/school-health, maternity and dental rows) and `release_with_fnr`
(§ 2-2 second paragraph, for § 4-5 deliveries with ID numbers; not for central linkage).

A registration opt-out may arrive after the rows it covers (the person reserved themselves at
the health centre in March; the reservation message comes in a later delivery than March's
contacts). `blank_late_opt_outs` then blanks the health columns of every stored row of that
person dated from the opt-out's effective time (administrative columns stay), in the same
transaction as the delivery that brought the message (or the ID-history link that tied the
rows to the person). What was blanked is counted in the delivery's report and audited
(`reservation.late_opt_out`, counts only); every later extract and statistic reads the
blanked rows. Blanking cannot be undone: a later deactivation takes effect from its own
effective time.
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import duckdb

from tre.enums import ReservationKind
from tre.linkage.store import DELIVERY, LINE, quote, resolve_pids
from tre.registers import SOURCES


def active_reservations_sql(schema: str = "registers") -> str:
    """SQL selecting `pid` (canonical) of every person with an active reservation.

    Parameters: `$kind` (a ReservationKind value) and `$at` (a timestamp). Compose it, e.g.
    `... WHERE pid NOT IN (<this>)` for a § 4-5 extract.
    """
    return f"""SELECT pid FROM (
        SELECT pid, active, row_number() OVER (
            PARTITION BY pid ORDER BY effective_at DESC, delivery DESC, line DESC) AS latest
        FROM {quote(schema)}.reservation_history
        WHERE kind = $kind AND effective_at <= $at)
    WHERE latest = 1 AND active"""


def active_reservations(
    con: duckdb.DuckDBPyConnection, kind: ReservationKind | str, at: dt.datetime, *, schema: str = "registers"
) -> set[str]:
    """Canonical pids of everyone with an active reservation of `kind` at `at`."""
    kind = ReservationKind(kind)
    rows = con.execute(active_reservations_sql(schema), {"kind": kind.value, "at": _naive(at)}).fetchall()
    return {str(pid) for (pid,) in rows}


def is_reserved(
    con: duckdb.DuckDBPyConnection, kind: ReservationKind | str, pid: str, at: dt.datetime, *, schema: str = "registers"
) -> bool:
    """Whether the person `pid` (any of their pids) had an active reservation of `kind` at `at`."""
    person = resolve_pids(con, [pid], schema=schema)[pid]
    return person in active_reservations(con, kind, at, schema=schema)


def reservation_history(con: duckdb.DuckDBPyConnection, pid: str, *, schema: str = "registers") -> list[dict]:
    """Every reservation message of the person `pid`, oldest first (what a data subject may see)."""
    person = resolve_pids(con, [pid], schema=schema)[pid]
    rows = con.execute(
        f"""SELECT kind, active, effective_at, message_id, delivery, recorded_at
            FROM {quote(schema)}.reservation_history WHERE pid = TRY_CAST($1 AS UUID)
            ORDER BY effective_at, delivery, line""",
        [person],
    ).fetchall()
    keys = ("kind", "active", "effective_at", "message_id", "delivery", "recorded_at")
    return [dict(zip(keys, row, strict=True)) for row in rows]


def _naive(at: dt.datetime) -> dt.datetime:
    # Effective times in deliveries are Norwegian wall-clock times without a zone.
    return at.astimezone(ZoneInfo("Europe/Oslo")).replace(tzinfo=None) if at.tzinfo else at


def blank_late_opt_outs(con: duckdb.DuckDBPyConnection, *, schema: str = "registers") -> dict:
    """Blank the health columns of every stored row, of the sources under the registration
    opt-out, whose person had an active registration opt-out at the row's event date and that
    still holds a health value. Run inside the transaction of the delivery that changed the
    reservations (or the person links); the history is read from the store's tables, this
    delivery's uncommitted rows included. Returns `{"rows": {source: n}, "persons": n,
    "columns": {source: [names]}}` (empty when nothing was blanked): counts, never values."""
    s = quote(schema)
    con.execute(
        f"""CREATE OR REPLACE TEMP TABLE __tre_late_history AS
            SELECT coalesce(m.canonical_pid, r.pid) AS pid, r.effective_time AS effective_at,
                   r.action = 'activate' AS active
            FROM {s}.reservasjon r LEFT JOIN {s}.__tre_person_map m ON m.pid = r.pid
            WHERE r.kind = 'registration' AND r.pid IS NOT NULL"""
    )
    rows: dict[str, int] = {}
    columns: dict[str, list[str]] = {}
    con.execute("CREATE OR REPLACE TEMP TABLE __tre_late_persons (pid UUID)")
    for source in SOURCES.values():
        if not source.registration_opt_out:
            continue
        health = [c.name for c in source.columns if c.role == "health"]
        table = f"{s}.{quote(source.name)}"
        held = " OR ".join(f"t.{quote(h)} IS NOT NULL" for h in health)
        con.execute(
            f"""CREATE OR REPLACE TEMP TABLE __tre_late_rows AS
                SELECT a.d, a.l, a.pid FROM (
                    SELECT t.{DELIVERY} AS d, t.{LINE} AS l, coalesce(m.canonical_pid, t.pid) AS pid,
                           CAST(t.{quote(source.event_date)} AS TIMESTAMP) AS at
                    FROM {table} t LEFT JOIN {s}.__tre_person_map m ON m.pid = t.pid
                    WHERE t.pid IS NOT NULL AND ({held})
                      AND coalesce(m.canonical_pid, t.pid) IN (SELECT pid FROM __tre_late_history)) a
                ASOF JOIN __tre_late_history h ON a.pid = h.pid AND a.at >= h.effective_at
                WHERE h.active"""
        )
        count = con.execute("SELECT count(*) FROM __tre_late_rows").fetchall()[0][0]
        if not count:
            continue
        blank = ", ".join(f"{quote(h)} = NULL" for h in health)
        con.execute(
            f"""UPDATE {table} AS t SET {blank} FROM __tre_late_rows b
                WHERE t.{DELIVERY} = b.d AND t.{LINE} = b.l"""
        )
        con.execute("INSERT INTO __tre_late_persons SELECT DISTINCT pid FROM __tre_late_rows")
        rows[source.name], columns[source.name] = count, health
    persons = con.execute("SELECT count(DISTINCT pid) FROM __tre_late_persons").fetchall()[0][0]
    for table in ("__tre_late_history", "__tre_late_rows", "__tre_late_persons"):
        con.execute(f"DROP TABLE IF EXISTS {table}")
    return {"rows": rows, "persons": persons, "columns": columns} if rows else {}
