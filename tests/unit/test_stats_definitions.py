"""The indicator file is checked as a whole; the statistics' hierarchies and the hub service."""

from __future__ import annotations

import pytest

from tre.config import load_settings
from tre.errors import Problems
from tre.hub_config.plan import HubPlan
from tre.registers import municipalities
from tre.stats.indicators import load_catalogue, region_hierarchy

GOOD = """
version = "t1"
[ages.a]
root = { code = "alle", nb = "Alle", en = "All" }
bands = [{ code = "0-49", nb = "0-49", en = "0-49", min = 0, max = 49 }, { code = "50+", nb = "50+", en = "50+", min = 50, max = 150 }]
[[indicator]]
id = "x"
title_nb = "X"
title_en = "X"
description_nb = "X"
description_en = "X"
kind = "rate"
per = 1000
unit_nb = "per 1000"
unit_en = "per 1000"
ages = "a"
breakdowns = ["region", "sex", "age"]
sources = ["kuhr", "dsf"]
[indicator.numerator]
source = "kuhr"
where = { provider_type = ["fastlege"] }
"""


def write(tmp_path, text: str):
    path = tmp_path / "indicators.toml"
    path.write_text(text, encoding="utf-8")
    return path


def test_the_shipped_indicators_are_valid():
    catalogue = load_catalogue()
    ids = [i.id for i in catalogue.indicators]
    for wanted in (
        "fastlege",
        "legevakt",
        "fastlege_andel",
        "hjemmetjenester",
        "sykehjem",
        "hjemmetjenester_timer",
        "helsestasjon",
        "tannhelse",
    ):
        assert wanted in ids
    assert catalogue.get("hjemmetjenester").ages.hierarchy().codes == ("67+", "67-79", "80+", "80-89", "90+")


def test_a_valid_file_loads(tmp_path):
    assert [i.id for i in load_catalogue(write(tmp_path, GOOD)).indicators] == ["x"]


@pytest.mark.parametrize(
    "change, message",
    [
        (('kind = "rate"', 'kind = "median"'), "kind must be one of"),
        (("per = 1000", "per = 7"), "needs `per`"),
        (('source = "kuhr"', 'source = "reservasjon"'), "not a source of municipal statistics"),
        (('provider_type = ["fastlege"]', 'provider_type = ["sjaman"]'), "unknown provider_type code(s) sjaman"),
        (("max = 49 }", "max = 40 }"), "leave a gap or overlap"),
        (('ages = "a"', 'ages = "b"'), "unknown ages"),
        (('id = "x"', 'id = "X Y"'), "id must be lowercase"),
    ],
)
def test_every_problem_is_named(tmp_path, change, message):
    with pytest.raises(Problems, match="indicator file") as raised:
        load_catalogue(write(tmp_path, GOOD.replace(*change)))
    assert any(message in p for p in raised.value.problems), raised.value.problems


def test_problems_are_collected_and_raised_once(tmp_path):
    text = GOOD.replace('kind = "rate"', 'kind = "median"').replace('ages = "a"', 'ages = "b"')
    with pytest.raises(Problems) as raised:
        load_catalogue(write(tmp_path, text))
    assert len(raised.value.problems) == 2


def test_regions_nest_municipalities_in_counties_in_the_country():
    h = region_hierarchy()
    assert len(h.codes) == 1 + 15 + 357
    assert h.codes[h.parents[h.index("1151")]] == "11" and h.codes[h.parents[h.index("11")]] == "0"
    assert {h.codes[h.parents[h.index(m.number)]] for m in municipalities()} == set(h.codes[1:16])


def test_the_hub_runs_the_statistics_site_as_a_service(tmp_path):
    settings = load_settings({"TRE_HOME": str(tmp_path), "TRE_STATS_PORT": "8123"})
    settings.hub_dir.mkdir(parents=True)
    plan = HubPlan(settings, isolation=False, network=None)
    service = next(s for s in plan.services() if s["name"] == "tre-stats")
    assert service["url"] == "http://127.0.0.1:8123" and service["command"][-3:] == ["stats", "serve", "--hub"]
    assert "access:services!service=tre-stats" in plan.extra_user_scopes()
