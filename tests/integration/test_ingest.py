"""Ingest as an admin meets it: deliveries in, identities split off, rows by pid, the report."""

from __future__ import annotations

import json
import uuid

import duckdb
import pytest
from delivery_factory import people, row, write_delivery

from tre.config import load_settings


@pytest.fixture
def deliveries(tmp_path):
    return tmp_path / "deliveries"


def store_rows(tre_env, sql: str, params=None):
    path = load_settings(tre_env).central_dir / "registers.duckdb"
    with duckdb.connect(str(path), read_only=True) as con:
        return con.execute(sql, params or []).fetchall()


def ingest(cli, *paths, as_user="ada"):
    return cli("ingest", *map(str, paths), "--json", as_user=as_user)


def test_a_delivery_lands_by_pid_without_its_id_numbers(initialised, tre_env, deliveries):
    persons = people(20)
    write_delivery(deliveries, "dsf", [row("dsf", p) for p in persons])
    write_delivery(deliveries, "kuhr", [row("kuhr", p) for p in persons for _ in range(2)])
    result = ingest(initialised, deliveries)
    assert result.code == 0, result.err
    by_file = {o["file"]: o for o in result.json()}
    assert by_file["kuhr-2023.csv"]["report"]["rows_stored"] == 40

    columns = {c for (c,) in store_rows(tre_env, "SELECT column_name FROM duckdb_columns() WHERE table_name = 'kuhr'")}
    assert "fnr" not in columns and "pid" in columns
    pids = store_rows(tre_env, "SELECT DISTINCT pid FROM kuhr")
    assert len(pids) == 20 and all(isinstance(p, uuid.UUID) for (p,) in pids)
    # the same person has the same pid in every source
    joined = store_rows(tre_env, "SELECT count(DISTINCT k.pid) FROM kuhr k JOIN dsf d USING (pid)")
    assert joined == [(20,)]
    # pids are random, not derived from the number: a second installation gives others
    assert all(p.fnr not in str(pid).replace("-", "") for (pid,) in pids for p in persons)


def test_reingesting_the_same_delivery_is_a_no_op_that_says_so(initialised, tre_env, deliveries):
    write_delivery(deliveries, "dsf", [row("dsf", p) for p in people(5)])
    initialised.ok("ingest", str(deliveries), as_user="ada")
    again = initialised.ok("ingest", str(deliveries / "dsf-2023.csv"), as_user="ada")
    assert "already ingested as delivery 1" in again.out and "nothing to do" in again.out
    assert store_rows(tre_env, "SELECT count(*) FROM dsf") == [(5,)]
    log = initialised.ok("audit", "log", "--action", "delivery.ingest", "--json", as_user="ada").json()
    assert len(log) == 1 and log[0]["details"]["rows"] == 5


def test_only_admins_ingest_and_a_refusal_is_audited(initialised, deliveries):
    initialised.ok("user", "add", "rita", "--role", "researcher", as_user="ada")
    write_delivery(deliveries, "dsf", [row("dsf", p) for p in people(2)])
    refused = initialised("ingest", str(deliveries), as_user="rita")
    assert refused.code == 5 and "needs the admin role" in refused.err
    log = initialised.ok("audit", "log", "--action", "access.denied", "--json", as_user="ada").json()
    assert [e["object"] for e in log] == ["tre ingest"]


def test_d_number_and_fnr_of_one_person_share_a_pid(initialised, tre_env, deliveries):
    """Seen first as a D-number, later with an FNR: the ID history makes them one person."""
    [fnr_person] = people(1, seed=3)
    [d_person] = people(1, seed=4, d_number=True)
    early, late = deliveries / "early", deliveries / "late"
    write_delivery(early, "kuhr", [row("kuhr", d_person)], period="2022")
    write_delivery(early, "dsf", [row("dsf", fnr_person)])
    assert ingest(initialised, early).code == 0
    assert store_rows(tre_env, "SELECT count(DISTINCT pid) FROM (SELECT pid FROM kuhr UNION SELECT pid FROM dsf)") == [
        (2,)
    ]
    write_delivery(late, "dsf_idhistory", [row("dsf_idhistory", fnr_person, old_id=d_person.fnr)])
    write_delivery(late, "kuhr", [row("kuhr", fnr_person)])
    result = ingest(initialised, late).json()
    assert [o["report"].get("person_links") for o in result if o["source"] == "dsf_idhistory"] == [1]
    persons = store_rows(
        tre_env,
        """SELECT count(DISTINCT coalesce(m.canonical_pid, k.pid)) FROM kuhr k
           LEFT JOIN __tre_person_map m ON m.pid = k.pid""",
    )
    assert persons == [(1,)]
    report = initialised.ok("linkage", "report", "--json", as_user="ada").json()
    assert report["sources"]["kuhr"]["persons"] == 1 and report["sources"]["kuhr"]["link_rate"] == 1.0


def test_history_before_the_rows_gives_the_d_number_the_fnrs_pid(initialised, tre_env, deliveries):
    [fnr_person] = people(1, seed=5)
    [d_person] = people(1, seed=6, d_number=True)
    write_delivery(deliveries, "dsf", [row("dsf", fnr_person)])
    write_delivery(deliveries, "dsf_idhistory", [row("dsf_idhistory", fnr_person, old_id=d_person.fnr)])
    write_delivery(deliveries, "kuhr", [row("kuhr", d_person)])
    assert ingest(initialised, deliveries).code == 0
    assert store_rows(tre_env, "SELECT (SELECT pid FROM kuhr) = (SELECT pid FROM dsf)") == [(True,)]
    assert store_rows(tre_env, "SELECT count(*) FROM __tre_person_links") == [(0,)]


def test_registration_opt_out_withholds_health_fields_at_the_event_date(initialised, tre_env, deliveries):
    alice, bob = people(2, seed=8)
    write_delivery(
        deliveries,
        "reservasjon",
        [
            row("reservasjon", alice, effective_time="2023-03-01 00:00:00"),
            row("reservasjon", alice, action="deactivate", effective_time="2023-09-01 00:00:00"),
        ],
    )
    write_delivery(
        deliveries,
        "helsestasjon",
        [
            row("helsestasjon", alice, contact_date="2023-02-01", contact_id="before"),
            row("helsestasjon", alice, contact_date="2023-05-01", contact_id="during"),
            row("helsestasjon", alice, contact_date="2023-10-01", contact_id="after"),
            row("helsestasjon", bob, contact_date="2023-05-01", contact_id="other"),
        ],
    )
    # KUHR is not under the registration opt-out: its diagnosis stays
    write_delivery(deliveries, "kuhr", [row("kuhr", alice, contact_time="2023-05-01 09:00:00")])
    result = {o["source"]: o for o in ingest(initialised, deliveries).json()}
    assert result["helsestasjon"]["report"]["registration_opt_out_rows"] == 1
    assert "health fields withheld for 1 rows" in result["helsestasjon"]["message"]
    stored = dict(
        (key, rest)
        for key, *rest in store_rows(
            tre_env, "SELECT contact_id, reason, weight_kg, contact_date, provider_id, contact_type FROM helsestasjon"
        )
    )
    assert stored["during"][:2] == [None, None]  # health fields withheld
    assert stored["during"][2:] == [__import__("datetime").date(2023, 5, 1), "HS12", "konsultasjon"]  # admin kept
    assert stored["before"][:2] == ["A97", 12.5] and stored["after"][:2] == ["A97", 12.5]
    assert stored["other"][:2] == ["A97", 12.5]
    assert store_rows(tre_env, "SELECT icpc2 FROM kuhr") == [("R74",)]
    report = initialised.ok("linkage", "report", "--json", as_user="ada").json()
    assert report["sources"]["helsestasjon"]["registration_opt_out_rows"] == 1


def test_consent_based_rows_are_linked_only_with_consent(initialised, tre_env, deliveries):
    yes, no, withdrawn = people(3, seed=9)
    write_delivery(
        deliveries,
        "kvalitetsregister",
        [
            row("kvalitetsregister", yes),
            row("kvalitetsregister", no, consent="false"),
            row("kvalitetsregister", withdrawn, consent_withdrawn_date="2023-06-01"),
        ],
    )
    [outcome] = ingest(initialised, deliveries).json()
    assert outcome["report"]["rows_stored"] == 3 and outcome["report"]["not_linked"] == 2
    assert store_rows(tre_env, "SELECT count(pid) FROM kvalitetsregister") == [(1,)]
    # no identity was created for the persons who did not consent
    vault = load_settings(tre_env).central_dir / "vault.duckdb"
    with duckdb.connect(str(vault), read_only=True) as con:
        assert con.execute("SELECT count(*) FROM identities").fetchall() == [(1,)]


def test_historic_iplos_is_linked_through_its_pseudonym_key(initialised, tre_env, deliveries):
    persons = people(3, seed=10)
    write_delivery(
        deliveries,
        "iplos_historisk_nokkel",
        [row("iplos_historisk_nokkel", p, old_pseudonym=f"OLD{i}") for i, p in enumerate(persons)],
    )
    write_delivery(
        deliveries,
        "iplos_historisk",
        [row("iplos_historisk", old_pseudonym="OLD0"), row("iplos_historisk", old_pseudonym="NOBODY")],
    )
    write_delivery(deliveries, "dsf", [row("dsf", p) for p in persons])
    result = {o["source"]: o for o in ingest(initialised, deliveries).json()}
    assert result["iplos_historisk"]["report"]["not_linked"] == 1
    assert store_rows(
        tre_env,
        "SELECT h.pid = k.pid FROM iplos_historisk h JOIN iplos_historisk_nokkel k USING (old_pseudonym)",
    ) == [(True,)]


def test_parquet_and_latin1_deliveries(initialised, tre_env, deliveries):
    persons = people(4, seed=11)
    write_delivery(deliveries, "npr", [row("npr", p) for p in persons], fmt="parquet")
    write_delivery(
        deliveries, "kuhr", [row("kuhr", p, provider_id="Tønsberg legesenter ÆØÅ") for p in persons], encoding="latin-1"
    )
    result = ingest(initialised, deliveries)
    assert result.code == 0, result.err
    assert store_rows(tre_env, "SELECT count(*), min(admission_date)::VARCHAR FROM npr") == [(4, "2023-04-01")]
    assert store_rows(tre_env, "SELECT DISTINCT provider_id FROM kuhr") == [("Tønsberg legesenter ÆØÅ",)]


def test_quality_report_findings_against_the_population_register(initialised, tre_env, deliveries, tmp_path):
    dead, emigrated, returned, fine, wrong_birth, wrong_sex = people(6, seed=12)
    other_sex = "K" if wrong_sex.sex == "M" else "M"
    write_delivery(
        deliveries,
        "dsf",
        [
            row("dsf", dead, death_date="2023-02-01"),
            row("dsf", emigrated, emigration_date="2023-01-15"),
            row("dsf", returned, emigration_date="2022-01-01", immigration_date="2022-06-01"),
            row("dsf", fine, municipality="1151"),
            row("dsf", wrong_birth, birth_date="1901-01-01"),
            row("dsf", wrong_sex, sex=other_sex),
        ],
    )
    write_delivery(
        deliveries,
        "kuhr",
        [
            row("kuhr", dead, contact_time="2023-03-01 10:00:00", claim_id="AFTERDEATH", municipality="1151"),
            row("kuhr", dead, contact_time="2023-01-01 10:00:00"),
            row("kuhr", emigrated, contact_time="2023-03-01 10:00:00"),
            row("kuhr", returned, contact_time="2023-03-01 10:00:00"),
            row("kuhr", fine, municipality="9999"),
            row("kuhr", people(1, seed=99)[0]),  # not in the population register
        ],
    )
    assert ingest(initialised, deliveries).code == 0
    report = initialised.ok(
        "linkage", "report", "--json", "--by-municipality", str(tmp_path / "kommuner"), as_user="ada"
    ).json()
    kuhr = report["sources"]["kuhr"]
    assert kuhr["findings"] == {"event_after_death": 1, "event_after_emigration": 1, "unknown_municipality": 1}
    assert kuhr["rows_stored"] == 5 and kuhr["rows_linked"] == 4 and kuhr["link_rate"] == 0.8
    assert report["sources"]["dsf"]["findings"] == {"birth_date_mismatch": 1, "sex_mismatch": 1}
    utsira = json.loads((tmp_path / "kommuner" / "1151.json").read_text())
    assert utsira["name"] == "Utsira"
    assert utsira["rows_to_check"] == [
        {"source": "kuhr", "file": "kuhr-2023.csv", "line": 2, "key": "AFTERDEATH", "rule": "event_after_death"}
    ]
    oslo = json.loads((tmp_path / "kommuner" / "0301.json").read_text())
    assert oslo["sources"]["dsf"]["findings"] == {"birth_date_mismatch": 1, "sex_mismatch": 1}
    assert (tmp_path / "kommuner" / "1151.json").stat().st_mode & 0o077 == 0
    text = initialised.ok("linkage", "report", as_user="ada").out
    assert "kuhr findings: event_after_death 1, event_after_emigration 1, unknown_municipality 1" in text


def test_report_before_any_ingest(initialised):
    result = initialised.ok("linkage", "report", as_user="ada")
    assert "no deliveries ingested yet" in result.out
