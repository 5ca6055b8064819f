"""§ 4-6 statistics on a small synthetic population whose every value is known by hand:
denominators on 1 January, persons counted once, events outside the population, weekly hours,
the latest version of a decision; and what the publication shows of them."""

from __future__ import annotations

import datetime as dt

import duckdb
import numpy as np
import pandas as pd
import pytest
from delivery_factory import Person, row, write_delivery
from stats_world import fresh_cli

from tre.db import Store
from tre.linkage.idnumbers import generate_synthetic
from tre.linkage.zone import CentralZone
from tre.registers import SOURCES
from tre.stats.compute import build_year
from tre.stats.indicators import load_catalogue

NOW = dt.datetime(2025, 3, 1, 12, tzinfo=dt.UTC)
SCORES = [c.name for c in SOURCES["iplos"].columns if c.name.startswith("f_")]


def persons(births: list[dt.date], sexes: list[str], seed: int, *, d_number: bool = False) -> list[Person]:
    numbers = generate_synthetic(
        np.random.default_rng(seed), np.array(births, dtype="datetime64[D]"), np.array(sexes), d_number=d_number
    )
    return [Person(str(n), b, s) for n, b, s in zip(numbers, births, sexes, strict=True)]


def decision(
    person: Person, key: str, municipality: str, service: str, start: str, end: str = "", hours: str = ""
) -> dict:
    return {
        "decision_id": key,
        "fnr": person.fnr,
        "municipality": municipality,
        "service": service,
        "start_date": start,
        "end_date": end,
        "hours_per_week": hours,
        **dict.fromkeys(SCORES, "2"),
    }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    base = tmp_path_factory.mktemp("stats")
    cli = fresh_cli(base)

    adults = persons([dt.date(1990, 1 + i % 12, 1 + i) for i in range(30)], ["M", "K"] * 15, seed=1)  # 18-44 in Bergen
    (d_person,) = persons([dt.date(1985, 5, 5)], ["K"], seed=2, d_number=True)
    (d_later,) = persons([dt.date(1985, 5, 5)], ["K"], seed=3)  # the FNR that replaced it
    (baby,) = persons([dt.date(2024, 3, 1)], ["M"], seed=4)
    (newcomer,) = persons([dt.date(1980, 2, 2)], ["K"], seed=5)
    old = persons([dt.date(1930 + i, 3, 3) for i in range(8)], ["K"] * 4 + ["M"] * 4, seed=6)  # 85-93 in Kinn
    oslo = persons([dt.date(1960 + i, 6, 6) for i in range(10)], ["M", "K"] * 5, seed=7)  # 45-64 in Oslo
    dsf = [row("dsf", p, municipality="4601") for p in adults]
    dsf += [row("dsf", d_later, municipality="4601"), row("dsf", baby, municipality="4601")]
    dsf += [row("dsf", newcomer, municipality="4601", immigration_date="2024-05-01")]
    dsf += [row("dsf", p, municipality="4602") for p in old]
    dsf += [row("dsf", p, municipality="0301") for p in oslo]
    dsf[-1]["emigration_date"] = "2024-06-01"  # left in June: still an inhabitant on 1 January
    history = [
        row("dsf_idhistory", None, old_id=d_person.fnr, new_id=d_later.fnr, change_date="2024-02-01", reason="d_to_fnr")
    ]
    kuhr = [
        row("kuhr", p, contact_time=f"2024-0{1 + k}-10 09:00:00", municipality="4601")
        for i, p in enumerate(adults)
        for k in range(i % 3 + 1)
    ]
    kuhr += [row("kuhr", d_person, contact_time=f"2024-01-1{k} 10:00:00", municipality="4601") for k in range(2)]
    kuhr += [row("kuhr", d_later, contact_time="2024-03-10 10:00:00", municipality="4601")]
    kuhr += [row("kuhr", baby, contact_time=f"2024-0{4 + k}-01 10:00:00", municipality="4601") for k in range(2)]
    kuhr += [row("kuhr", newcomer, contact_time="2024-06-01 10:00:00", municipality="4601")]
    kuhr += [
        row("kuhr", p, contact_time="2024-02-02 02:00:00", provider_type="legevakt", municipality="4601")
        for p in adults[:5]
    ]
    kuhr += [row("kuhr", adults[0], contact_time="2023-12-31 23:00:00", municipality="4601")]  # not 2024
    iplos_2023 = [decision(old[0], "D1", "4602", "hjemmesykepleie", "2023-06-01", hours="4")]
    iplos_2024 = [
        decision(old[0], "D1", "4602", "hjemmesykepleie", "2023-06-01", "2024-03-31", "4"),  # the same decision, ended
        decision(old[0], "D2", "4602", "praktisk_bistand", "2024-03-01", "", "2"),
        *(decision(p, f"E{i}", "4602", "hjemmesykepleie", "2022-01-01", "", "5") for i, p in enumerate(old[1:6])),
        decision(old[6], "N1", "4602", "sykehjem_langtid", "2020-01-01"),
    ]
    deliveries = base / "deliveries"
    write_delivery(deliveries, "dsf", dsf, period="2024")
    write_delivery(deliveries, "dsf_idhistory", history, period="2024")
    write_delivery(deliveries, "kuhr", kuhr, period="2024")
    write_delivery(deliveries, "iplos", iplos_2023, period="2023")
    write_delivery(deliveries, "iplos", iplos_2024, period="2024")
    cli.ok("ingest", str(deliveries), as_user="ada", clock=lambda: NOW)
    cli.people = {"adults": adults, "old": old, "oslo": oslo}
    cli.build = cli.ok("stats", "build", "--json", as_user="ada", clock=lambda: NOW).json()
    return cli


@pytest.fixture(scope="module")
def cubes(world):
    zone = CentralZone(world.settings)
    with zone.reading(Store(world.settings.db_url)) as con:
        return build_year(con, list(load_catalogue().indicators), 2024)


def at(cube, region: str, sex: str, age: str) -> tuple[int, ...]:
    return tuple(h.index(c) for h, c in zip(cube.hierarchies, (region, sex, age), strict=True))


def published(world, indicator: str) -> pd.DataFrame:
    return pd.read_csv(world.settings.stats_dir / "publication" / f"{indicator}.csv", dtype=str, keep_default_na=False)


def test_the_denominator_is_the_population_on_1_january(cubes):
    gp = cubes.cubes["fastlege"]
    # Bergen: 30 adults and the person with the D-number; the baby (born in March) and the
    # newcomer (moved in in May) are not inhabitants on 1 January
    assert gp.population[at(gp, "4601", "0", "alle")] == 31
    assert gp.population[at(gp, "4601", "0", "18-44")] == 31
    assert gp.population[at(gp, "0301", "0", "alle")] == 10  # the emigrant left in June
    assert gp.population[at(gp, "46", "0", "alle")] == 39 and gp.population[at(gp, "0", "0", "alle")] == 49
    assert cubes.population == 49


def test_persons_are_counted_once_and_events_by_the_year(world, cubes):
    gp, share = cubes.cubes["fastlege"], cubes.cubes["fastlege_andel"]
    contacts = sum(i % 3 + 1 for i in range(30)) + 3  # the D-number's two contacts and the FNR's one
    assert gp.value[at(gp, "4601", "0", "alle")] == contacts
    assert gp.units[at(gp, "4601", "0", "alle")] == 31 == share.units[at(share, "4601", "0", "alle")]
    assert share.value[at(share, "4601", "2", "18-44")] == 16  # 15 women and the D-number, once
    coverage = cubes.coverage["fastlege"]
    assert (coverage.events_outside, coverage.persons_outside) == (3, 2)  # the baby's two, the newcomer's one
    legevakt = cubes.cubes["legevakt"]
    assert legevakt.value[at(legevakt, "0", "0", "alle")] == 5


def test_weekly_hours_weight_each_decision_by_its_days_and_use_its_latest_version(cubes):
    hours = cubes.cubes["hjemmetjenester_timer"]
    # old[0]: D1 (4 h) ran 1 January - 31 March (its 2024 version ended it): 91 days; D2 (2 h)
    # from 1 March: 306 days; together 366 days of the leap year
    first = (4 * 91 + 2 * 306) / 366
    cell = at(hours, "4602", "0", "80+")
    assert hours.units[cell] == 6
    assert hours.value[cell] == pytest.approx(first + 5 * 5)
    assert list(hours.top[cell]) == [5.0, 5.0]
    recipients = cubes.cubes["hjemmetjenester"]
    assert recipients.value[at(recipients, "4602", "0", "80+")] == 6
    assert recipients.population[at(recipients, "4602", "0", "80+")] == 8
    home = cubes.cubes["sykehjem"]
    assert home.value[at(home, "0", "0", "80+")] == 1


def test_what_is_published_and_what_is_hidden(world):
    gp = published(world, "fastlege").set_index(["region", "kjonn", "alder"])
    contacts = sum(i % 3 + 1 for i in range(30)) + 3
    bergen = gp.loc[("4601", "0", "alle")]
    assert bergen["prikk"] == "" and float(bergen["verdi"]) == pytest.approx(round(contacts / 31 * 1000, 1))
    assert bergen["befolkning"] == "31"
    # Oslo's ten had no GP contact: a zero is published (NPR's practice) ...
    assert gp.loc[("0301", "0", "45-66")]["verdi"] == "0.0" and gp.loc[("0301", "1", "45-66")]["verdi"] == "0.0"
    # ... but Kinn's four men and four women over 80 are too few to show, and so is their sum
    assert {gp.loc[("4602", s, "80+")]["aarsak"] for s in "12"} == {"liten_befolkning"}
    assert gp.loc[("4602", "0", "80+")]["prikk"] == ":"
    # everyone in Bergen had a GP contact: the share would tell it of each of them
    share = published(world, "fastlege_andel").set_index(["region", "kjonn", "alder"])
    assert share.loc[("4601", "0", "alle")]["prikk"] == ":" and share.loc[("4601", "0", "alle")]["verdi"] == ""
    # six of Kinn's eight over 80 receive home care: the two without are a small group
    care = published(world, "hjemmetjenester").set_index(["region", "kjonn", "alder"])
    assert care.loc[("4602", "0", "80+")]["prikk"] == ":"
    # and Oslo's county, which is Oslo, hides exactly what Oslo hides
    for frame in (gp, share, care):
        for (region, sex, age), r in frame.iterrows():
            if region == "0301":
                assert frame.loc[("03", sex, age)]["prikk"] == r["prikk"]


def test_the_record_holds_no_value_of_a_hidden_cell(world):
    con = duckdb.connect(str(world.settings.stats_dir / "record.duckdb"), read_only=True)
    try:
        leaked = con.execute(
            "SELECT count(*) FROM cells WHERE marker = ':' AND (protected IS NOT NULL OR shown IS NOT NULL OR units IS NOT NULL)"
        ).fetchall()[0][0]
        reasons = con.execute("SELECT count(*) FROM cells WHERE marker = ':' AND checks = ''").fetchall()[0][0]
    finally:
        con.close()
    assert leaked == 0 and reasons == 0


def test_the_person_level_working_set_is_gone_once_the_statistics_are_made(world, monkeypatch):
    """§ 4-6 second paragraph: the build's person-level tables are dropped before anything is
    published, with an audit event, and no spill file of theirs is left in the central zone;
    a table the computation forgot is dropped all the same (and counted)."""
    from tre.stats import build

    def events(action):
        return sorted(
            world.ok("audit", "log", "--action", action, "--json", as_user="ada").json(), key=lambda e: e["seq"]
        )

    log = events("stats.forget_persons")
    assert log and log[0]["details"] == {"years": [2024], "tables_left_by_compute": 0}
    assert log[0]["seq"] < events("stats.publish")[0]["seq"]
    assert not [p for p in (world.settings.central_dir / "tmp").rglob("*") if p.is_file()]
    computed = build.build_year

    def forgets_a_table(con, indicators, year):
        data = computed(con, indicators, year)
        con.execute("CREATE TEMP TABLE __forgotten AS SELECT pid FROM registers.dsf")
        return data

    monkeypatch.setattr(build, "build_year", forgets_a_table)
    world.ok("stats", "build", as_user="ada", clock=lambda: NOW)
    assert events("stats.forget_persons")[-1]["details"]["tables_left_by_compute"] == 1


def test_a_year_without_a_population_register_is_refused_in_one_line(world):
    result = world("stats", "build", "--year", "2019", as_user="ada")
    assert result.code == 1 and "no population register for 2019" in result.err and "\n" not in result.err.strip()
    refused = world("stats", "build", as_user="nobody")
    assert refused.code == 5


def test_feedback_counts_each_reporting_municipalitys_rows(world):
    from tre.stats.feedback import build_feedback

    zone = CentralZone(world.settings)
    with zone.reading(Store(world.settings.db_url)) as con:
        documents = build_feedback(con, zone.rejects_dir, now=NOW)
    assert set(documents) == {"4602"}  # only IPLOS here comes from the municipalities
    latest, earlier = documents["4602"]["deliveries"]
    assert (latest["period"], earlier["period"]) == ("2024", "2023")
    assert latest["rows_stored"] == 8 and latest["persons"] == 7 and latest["rows_rejected"] == 0
    assert latest["not_in_population_register"] == 0 and latest["registered_elsewhere"] == 0
    assert latest["previous_period"] == {"period": "2023", "rows": 1, "persons": 1}
    assert latest["completeness"] == 8.0 and earlier["completeness"] is None


def test_feedback_never_shows_an_id_number_shaped_key():
    from tre.stats.feedback import _key

    assert _key("IV000123") == "IV000123" and _key(None) is None
    assert "12345678901" not in _key("K-12345678901")
