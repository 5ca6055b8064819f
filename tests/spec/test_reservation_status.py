"""Reservation status (§ 2-2): messages in, who is reserved when out.

A person's status of a kind at a time is their latest message of that kind effective at or
before it; a tie goes to the later delivery, then the later line. Every person here is
synthetic; `p1`... name them in the table.
"""

from __future__ import annotations

import datetime as dt

import pytest
from delivery_factory import people, row, write_delivery
from tables import parse_table

from tre.config import load_settings
from tre.db import Store
from tre.enums import Role
from tre.linkage.ingest import ingest
from tre.linkage.reservations import active_reservations, is_reserved, reservation_history
from tre.linkage.vault import lookup
from tre.linkage.zone import CentralZone
from tre.users import add_user

MESSAGES = """
delivery | person | kind             | action     | effective
1        | p1     | registration     | activate   | 2023-01-01 00:00
1        | p1     | registration     | deactivate | 2023-06-01 00:00
1        | p2     | release_with_fnr | activate   | 2023-03-01 12:00
2        | p2     | release_with_fnr | deactivate | 2023-03-01 12:00
1        | p3     | registration     | activate   | 2023-02-01 00:00
2        | p3     | release_with_fnr | activate   | 2023-02-01 00:00
"""

STATUS = """
person | kind             | at               | reserved
p1     | registration     | 2022-12-31 23:59 | no
p1     | registration     | 2023-01-01 00:00 | yes
p1     | registration     | 2023-05-31 23:59 | yes
p1     | registration     | 2023-06-01 00:00 | no
p1     | release_with_fnr | 2023-03-01 00:00 | no
p2     | release_with_fnr | 2023-02-28 00:00 | no
p2     | release_with_fnr | 2023-03-01 12:00 | no
p3     | registration     | 2024-01-01 00:00 | yes
p3     | release_with_fnr | 2024-01-01 00:00 | yes
p4     | registration     | 2024-01-01 00:00 | no
"""


@pytest.fixture(scope="module")
def reserved(tmp_path_factory):
    """The messages ingested, two deliveries; the persons' pids."""
    base = tmp_path_factory.mktemp("reservations")
    environ = {
        "TRE_HOME": str(base / "home"),
        "TRE_PROJECTS_DIR": str(base / "p"),
        "TRE_APPROVALS_DIR": str(base / "a"),
    }
    settings = load_settings(environ)
    store = Store(settings.db_url)
    settings.home.mkdir(mode=0o700)
    store.migrate()
    with store.transaction() as session:
        add_user(session, "ada", Role.ADMIN, actor="test", now=dt.datetime.now(dt.UTC))
        add_user(session, "carl", Role.CUSTODIAN, actor="ada", now=dt.datetime.now(dt.UTC))
    persons = dict(zip(("p1", "p2", "p3", "p4"), people(4, seed=71), strict=True))
    zone = CentralZone(settings, environ=environ)
    write_delivery(base / "dsf", "dsf", [row("dsf", p) for p in persons.values()])
    ingest(zone, store, [base / "dsf"], actor="ada")
    for number in ("1", "2"):
        rows = [
            row(
                "reservasjon",
                persons[m["person"]],
                kind=m["kind"],
                action=m["action"],
                effective_time=m["effective"] + ":00",
            )
            for m in parse_table(MESSAGES)
            if m["delivery"] == number
        ]
        write_delivery(base / number, "reservasjon", rows, period=f"2023-{number}")
        ingest(zone, store, [base / number], actor="ada")
    pids = {
        name: lookup(zone, store, actor="carl", fnr=person.fnr, reason="spec test of reservation status")
        for name, person in persons.items()
    }
    return zone, store, pids


@pytest.mark.parametrize("case", parse_table(STATUS), ids=lambda c: f"{c['person']}-{c['kind']}-{c['at']}")
def test_status(case, reserved):
    zone, store, pids = reserved
    at = dt.datetime.fromisoformat(case["at"])
    with zone.reading(store) as con:
        assert is_reserved(con, case["kind"], pids[case["person"]], at) == (case["reserved"] == "yes")
        assert (pids[case["person"]] in active_reservations(con, case["kind"], at)) == (case["reserved"] == "yes")


def test_the_history_is_complete(reserved):
    zone, store, pids = reserved
    with zone.reading(store) as con:
        history = reservation_history(con, pids["p2"])
    assert [(h["kind"], h["active"], h["delivery"]) for h in history] == [
        ("release_with_fnr", True, 2),
        ("release_with_fnr", False, 3),
    ]
    assert all(h["message_id"] and h["recorded_at"] for h in history)
