"""The published statistics of a small synthetic nation: nothing hidden can be worked out from
everything published (municipality ⊂ county ⊂ country, sex, age; earlier runs and years), and
the formats read back with the statistics banks' own readers."""

from __future__ import annotations

import json

import duckdb
import numpy as np
import pandas as pd
import pytest
from delivery_factory import row, write_delivery
from pyaxis import pyaxis
from pyjstat import pyjstat
from stats_world import NOW, PERSONS, make_world

from tre.db import Store
from tre.linkage.zone import CentralZone
from tre.output_check.linked import LinkedCube, build_linked_intervals
from tre.registers import municipalities
from tre.stats.compute import build_year
from tre.stats.formats import CSV_COLUMNS
from tre.stats.indicators import load_catalogue, regions
from tre.stats.protect import protection
from tre.synth.population import allocate_municipalities

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    return make_world(tmp_path_factory.mktemp("statsworld"))


def cells(world, run: int | None = None) -> pd.DataFrame:
    con = duckdb.connect(str(world.settings.stats_dir / "record.duckdb"), read_only=True)
    try:
        where = "" if run is None else f"WHERE run = {int(run)}"
        return con.execute(f"SELECT * FROM cells {where}").df()
    finally:
        con.close()


def publication(world, indicator: str) -> pd.DataFrame:
    return pd.read_csv(world.settings.stats_dir / "publication" / f"{indicator}.csv", dtype=str, keep_default_na=False)


def test_the_denominators_are_the_population_on_1_january(world):
    """In the first year every first resident of the synthetic population counts, in the
    municipality it was given in proportion to kommuner-2024.csv (at 5 550 203 persons exactly
    Statistics Norway's figures: benchmarks/stats.py checks every municipality)."""
    counts = np.bincount(allocate_municipalities(np.random.default_rng(0), PERSONS), minlength=357)
    pub = publication(world, "fastlege")
    first = pub[(pub["aar"] == "2023") & (pub["kjonn"] == "0") & (pub["alder"] == "alle")].set_index("region")
    assert int(first.loc["0", "befolkning"]) == PERSONS
    assert {m.number: int(first.loc[m.number, "befolkning"]) for m in municipalities()} == {
        m.number: int(c) for m, c in zip(municipalities(), counts, strict=True)
    }


def test_no_hidden_cell_can_be_worked_out_from_all_the_published_tables(world):
    """An attacker with every published value and every population (public) narrows no hidden
    cell to one value, and no small count below the protection width."""
    zone = CentralZone(world.settings)
    with zone.reading(Store(world.settings.db_url)) as con:
        data = build_year(con, list(load_catalogue().indicators), 2024)
    record = cells(world, run=1)
    for indicator in ("fastlege_andel", "hjemmetjenester", "sykehjem", "legevakt"):
        cube = data.cubes[indicator]
        mine = record[(record["indicator"] == indicator) & (record["year"] == 2024)]
        index = tuple(
            mine[c].map({code: i for i, code in enumerate(h.codes)}).to_numpy()
            for c, h in zip(("region", "sex", "age"), cube.hierarchies, strict=True)
        )
        hidden, small = np.zeros(cube.shape, bool), np.zeros(cube.shape, bool)
        hidden[index] = (mine["marker"] == ":").to_numpy()
        small[index] = mine["checks"].str.contains("MinimumThreshold").to_numpy()
        upper = cube.population if cube.indicator.counts_persons else None
        linked = LinkedCube(protection(cube), cube.hierarchies, upper)
        targets = [tuple(int(i) for i in c) for c in zip(*np.nonzero(hidden), strict=True)]
        assert targets, indicator
        for cell, (lo, hi) in build_linked_intervals(linked, hidden, targets).items():
            if linked.cap[cell] == 0:
                continue
            assert hi - lo > 1e-6, (indicator, cell)
            if small[cell]:
                assert hi - lo >= min(5, linked.cap[cell]) - 1e-6, (indicator, cell, lo, hi)


def test_a_municipality_is_never_its_county_minus_the_rest(world):
    counties = {r.code: [m.code for m in regions() if m.parent == r.code] for r in regions() if r.level == "fylke"}
    for indicator in load_catalogue().indicators:
        frame = publication(world, indicator.id)
        hidden = frame.set_index(["aar", "kjonn", "alder", "region"])["prikk"] == ":"
        for (year, sex, age), group in hidden.groupby(level=[0, 1, 2]):
            shown = group.droplevel([0, 1, 2])
            for county, members in counties.items():
                alone = [m for m in members if shown.get(m, False)]
                if not shown.get(county, False):
                    assert len(alone) != 1, (indicator.id, year, sex, age, county, alone)
            assert sum(shown.get(c, False) for c in counties) != 1 or shown.get("0", False), (
                indicator.id,
                year,
                sex,
                age,
            )


def test_building_again_keeps_everything_hidden_that_was_hidden(world):
    """A second run on the same data (and so a later one for the same years) hides at least
    what the first hid: the two together publish nothing the first one hid."""
    second = world.ok("stats", "build", "--year", "2024", "--json", as_user="ada", clock=lambda: NOW).json()
    assert second["run"] == 2 and second["years"] == [2024]
    first, again = cells(world, 1), cells(world, 2)
    first = first[first["year"] == 2024]
    key = ["indicator", "year", "region", "sex", "age"]
    both = first.merge(again, on=key, suffixes=("_1", "_2"))
    assert len(both) == len(first) == len(again)
    assert not ((both["marker_1"] == ":") & (both["marker_2"] != ":")).any()
    published = (both["marker_1"] == "") & (both["marker_2"] == "")
    assert (both.loc[published, "shown_1"] == both.loc[published, "shown_2"]).all()
    carried = again[again["checks"].str.contains("EarlierPublication")]
    assert len(carried) == (first["marker"] == ":").sum()
    # the publication: 2024 from run 2, 2023 still from run 1
    manifest = json.loads((world.settings.stats_dir / "publication" / "publisering.json").read_text(encoding="utf-8"))
    assert manifest["run"] == 2 and all(i["years"] == [2023, 2024] for i in manifest["indicators"])


def test_a_small_revision_is_not_published(world):
    """Two late emergency-clinic contacts: no value published before and after differs by
    fewer than the protection width, so subtracting the runs reveals no small group."""
    dsf = pd.read_csv(world.deliveries / "dsf-2024.csv", dtype=str, keep_default_na=False)
    adults = dsf[
        (dsf["municipality"] == "0301")
        & (dsf["birth_date"] < "1990-01-01")
        & (dsf["death_date"] == "")
        & (dsf["emigration_date"] == "")
        & (dsf["immigration_date"] == "")
    ].head(2)
    late = [
        row(
            "kuhr",
            None,
            fnr=fnr,
            contact_time="2024-11-11 11:11:00",
            provider_type="legevakt",
            municipality="0301",
            claim_id=f"LATE{i}",
        )
        for i, fnr in enumerate(adults["fnr"])
    ]
    folder = world.settings.home / "late"
    write_delivery(folder, "kuhr", late, period="2024")
    world.ok("ingest", str(folder), as_user="ada", clock=lambda: NOW)
    third = world.ok("stats", "build", "--year", "2024", "--json", as_user="ada", clock=lambda: NOW).json()
    revised = next(t for t in third["tables"] if t["indicator"] == "legevakt")
    assert revised["checks"].get("DifferencingCheck", 0) >= 1
    before, after = cells(world, 2), cells(world, third["run"])
    key = ["indicator", "year", "region", "sex", "age"]
    both = before[before["year"] == 2024].merge(after, on=key, suffixes=("_b", "_a"))
    shown = (both["marker_b"] == "") & (both["marker_a"] == "")
    change = (both["protected_a"] - both["protected_b"]).abs()[shown]
    assert not ((change > 0) & (change < 5)).any()
    country = both[
        (both["indicator"] == "legevakt") & (both["region"] == "0") & (both["sex"] == "0") & (both["age"] == "alle")
    ]
    assert country["marker_a"].iloc[0] == ":"  # the country's total moved by 2 too: hidden, not published
    # the publication keeps 2023 from the run that built it
    pub = publication(world, "legevakt")
    assert sorted(pub["aar"].unique()) == ["2023", "2024"]


def test_json_stat_reads_back_with_pyjstat(world):
    for indicator in ("fastlege", "hjemmetjenester_timer"):
        text = (world.settings.stats_dir / "publication" / f"{indicator}.json").read_text(encoding="utf-8")
        document = json.loads(text)
        assert document["version"] == "2.0" and document["class"] == "dataset"
        frame = pyjstat.Dataset.read(text).write("dataframe", naming="id")
        values = frame[frame["statistikkvariabel"] == "verdi"].set_index(["region", "kjonn", "alder", "tid"])["value"]
        csv = publication(world, indicator).set_index(["region", "kjonn", "alder", "aar"])
        assert len(values) == len(csv)
        for key, r in csv.iterrows():
            got = values.loc[key]
            if r["prikk"]:
                assert pd.isna(got)
            else:
                assert got == pytest.approx(float(r["verdi"]))
        hidden = [i for i, s in document["status"].items() if s == ":"]
        assert hidden and all(document["value"][int(i)] is None for i in hidden)
        assert {document["extension"]["reason"][i] for i in hidden} <= {"konfidensiell", "liten_befolkning"}


def test_pc_axis_reads_back_with_pyaxis(world):
    parsed = pyaxis.parse(str(world.settings.stats_dir / "publication" / "sykehjem.px"), encoding="utf-8")
    data = parsed["DATA"]
    assert list(data.columns) == ["region", "kjønn", "alder", "år", "DATA"]
    assert parsed["METADATA"]["MATRIX"] == ["sykehjem"]
    csv = publication(world, "sykehjem")
    assert len(data) == len(csv)
    names = {r.code: r.name for r in regions()}
    merged = data.assign(region_code=data["region"].map({v: k for k, v in names.items()}))
    oslo = merged[(merged["region_code"] == "0301") & (merged["kjønn"] == "Begge kjønn") & (merged["år"] == "2024")]
    expected = csv[
        (csv["region"] == "0301") & (csv["kjonn"] == "0") & (csv["aar"] == "2024") & (csv["alder"] == "80+")
    ].iloc[0]
    got = oslo[oslo["alder"] == "80 år og over"]["DATA"].iloc[0]
    assert pd.isna(pd.to_numeric(got, errors="coerce")) if expected["prikk"] else float(got) == float(expected["verdi"])
    hidden = (csv["prikk"] == ":").sum()
    assert hidden and pd.to_numeric(data["DATA"], errors="coerce").isna().sum() == hidden + (csv["prikk"] == ".").sum()


def test_every_csv_column_and_marker_is_in_the_data_dictionary(world):
    directory = world.settings.stats_dir / "publication"
    dictionary = pd.read_csv(directory / "ordbok.csv", dtype=str, keep_default_na=False)
    assert list(publication(world, "fastlege").columns) == [c for c, *_ in CSV_COLUMNS]
    assert set(dictionary["kolonne"]) >= {c for c, *_ in CSV_COLUMNS}
    assert {"aarsak=konfidensiell", "aarsak=liten_befolkning", "aarsak=ingen"} <= set(dictionary["kolonne"])
    manifest = json.loads((directory / "publisering.json").read_text(encoding="utf-8"))
    import hashlib

    for name, digest in manifest["files"].items():
        assert hashlib.sha256((directory / name).read_bytes()).hexdigest() == digest
