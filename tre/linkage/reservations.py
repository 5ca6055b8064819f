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
"""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo

import duckdb

from tre.enums import ReservationKind
from tre.linkage.store import quote, resolve_pids


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
