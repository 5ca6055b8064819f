"""Ingest against the ground truth: `tre synth` says which rows it made dirty and how
(`dirt.json`); ingest and the linkage report must find exactly those, kind by kind."""

from __future__ import annotations

import csv
import json

import pytest

pytest.importorskip("tre.synth.generation")  # the synthetic registers (issue 2)

from tre.config import load_settings  # noqa: E402
from tre.synth import generate  # noqa: E402

REJECTED_AS = {
    "bad_check_digits": "id_check_digits",
    "duplicate": "duplicate",
    "unknown_municipality": "unknown_municipality",
}


@pytest.fixture(scope="module")
def synthetic(tmp_path_factory):
    folder = tmp_path_factory.mktemp("synth")
    generate(folder, persons=3000, years=1, seed=7, dirt_rate=0.003)
    return folder


def test_ingest_finds_exactly_the_deliberate_dirt(initialised, tre_env, synthetic):
    outcomes = {o["file"]: o for o in initialised.ok("ingest", str(synthetic), "--json", as_user="ada").json()}
    report = initialised.ok("linkage", "report", "--json", as_user="ada").json()["sources"]
    rejects_dir = load_settings(tre_env).central_dir / "rejects"
    truth = json.loads((synthetic / "dirt.json").read_text())["files"]
    checked = 0
    for file, kinds in truth.items():
        outcome = outcomes[file]
        assert outcome["status"] == "ingested", outcome["message"]
        rejected = {}
        if outcome["report"]["rejects_file"]:
            with open(rejects_dir / outcome["report"]["rejects_file"], newline="") as f:
                for row in csv.DictReader(f):
                    rejected.setdefault(row["rule"], set()).add(int(row["line"]))
        # every rejected row is deliberate dirt, and all of the dirt that is a reject is found
        expected = {REJECTED_AS[k]: {r + 2 for r in v["rows"]} for k, v in kinds.items() if k in REJECTED_AS}
        assert rejected == {rule: lines for rule, lines in expected.items() if lines}, file
        source = outcome["source"]
        if source == "kvalitetsregister":
            continue  # rows without consent are not linked, so findings about their persons cannot be made
        if "after_death" in kinds:
            assert report[source]["findings"].get("event_after_death", 0) == kinds["after_death"]["count"], file
        if "unknown_fnr" in kinds:
            unlinked = report[source]["rows_stored"] - report[source]["rows_linked"]
            assert unlinked == kinds["unknown_fnr"]["count"], file
        checked += sum(v["count"] for v in kinds.values())
    assert checked > 50  # the comparison is not empty
