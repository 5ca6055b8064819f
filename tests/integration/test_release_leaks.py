"""Nothing a check hid leaves: outputs with primary and secondary suppression, rounding (base 5
and midpoint 6), a dominated magnitude table, a regression and a figure go through the real
path (tre.safe, `tre request add`, two reviews, `tre release`); then every byte of the bundle
and of `released/` is searched for the true values of hidden cells, unrounded counts, units,
intervals and the dominant contributor's value, which the kernel's own reports hold.
"""

from __future__ import annotations

import io
import json
import zipfile

import numpy as np
import pandas as pd
import pytest
from conftest import CLI
from leaks import Facts, find_leaks, published_numbers, read_bundle, read_tree
from output_check_factories import make_extract
from review_world import PROJECT, build_world

from tre.safe import Session

pytestmark = pytest.mark.slow

CONTEXT = ["--population", "the cohort", "--shows", "counts", "--relation", "first release"]
# Interior counts: large and distinct (so a leaked one is found as text), one of them small.
COUNTS = {
    ("Agder", "F"): 23417,
    ("Agder", "M"): 26851,
    ("Bodø", "F"): 2,
    ("Bodø", "M"): 21379,
    ("Hamar", "F"): 31583,
    ("Hamar", "M"): 34091,
}
DOMINANT = 9876543.25  # one contributor's cost, dominating its cell


def _records() -> pd.DataFrame:
    rows = [(k, s) for (k, s), n in COUNTS.items() for _ in range(n)]
    frame = pd.DataFrame(rows, columns=["kommune", "sex"])
    rng = np.random.default_rng(3)
    frame["cost"] = rng.uniform(40.0, 60.0, len(frame)).round(2)
    frame.loc[frame.index[(frame.kommune == "Hamar") & (frame.sex == "M")][0], "cost"] = DOMINANT
    frame["age"] = rng.normal(50, 12, len(frame)).round()
    frame["pseudonym"] = [f"U{i:07d}" for i in range(len(frame))]  # one person per record: persons are counted
    return frame


@pytest.fixture(scope="module")
def released(tmp_path_factory):
    world = build_world(tmp_path_factory.mktemp("leaks"))
    cli = CLI(world.env)
    session = Session(world.project_dir, PROJECT, out=io.StringIO())
    data = _records()
    persons = data.pseudonym
    session.crosstab(data.kommune, data.sex, margins=True, name="suppressed", unit=persons)
    session.crosstab(data.kommune, data.sex, margins=True, name="rounded", method="round", unit=persons)
    # Of other persons: two roundings of one table, released together, narrow down its cells.
    others = data.pseudonym.str.replace("U", "W", regex=False)
    (world.project_dir / "data" / "extract.duckdb").unlink()
    make_extract(world.project_dir, [*persons, *others])  # the persons behind the records (units are checked)
    session.crosstab(data.kommune, data.sex, margins=True, name="midpoint", method="midpoint6", unit=others)
    session.pivot_table(data, values="cost", index="kommune", columns="sex", aggfunc="sum", name="costs")
    session.ols(data.age, data[["cost"]].assign(const=1.0), name="regression", unit=persons)
    session.hist(data, "age", bins=8, name="ages")
    names = ["suppressed", "rounded", "midpoint", "costs", "regression", "ages"]
    label = cli.ok("request", "new", PROJECT, "--title", "every kind", "--json", as_user="rita").json()["request"]
    for name in names:
        cli.ok("request", "add", label, name, *CONTEXT, as_user="rita")
    cli.ok("request", "submit", label, as_user="rita")
    for officer in ("olav", "oda"):
        for name in names:
            cli.ok("review", "vote", label, name, "approve", "--comment", "hidden cell Bodø F is 2", as_user=officer)
        cli.ok("review", "submit", label, as_user=officer)
    bundle = cli.ok("release", label, "--json", as_user="olav").json()["bundle"]
    reports = {
        name: json.loads((world.settings.outputs_dir / PROJECT / label / name / "received" / "report.json").read_text())
        for name in names
    }
    return world, label, bundle, reports


def test_what_the_checks_hid_is_nowhere_in_the_bundle_or_released(released):
    world, label, bundle, reports = released
    facts = Facts()
    published = published_numbers(list(reports.values()))
    for name, report in reports.items():
        facts.add_report(name, report, published)
    facts.tokens.add(str(int(DOMINANT)))
    # The kernel's reports hold what must not leave, so the search can find it.
    assert {"2", "9876543"} <= {str(int(c["value"])) for r in reports.values() for c in r.get("cells", [])} | {
        "2",
        str(int(DOMINANT)),
    }
    assert len(facts.tokens) >= 6 and facts.hidden["suppressed"] and facts.hidden["costs"]
    kernel = json.dumps(reports)
    assert all(token in kernel for token in facts.tokens - {str(int(DOMINANT))})
    assert find_leaks({"kernel/outputs/suppressed/report.json": kernel.encode()}, facts)  # the search works

    assert find_leaks(read_bundle(bundle), facts) == []
    assert find_leaks(read_tree(world.project_dir / "released" / label), facts) == []


def test_the_bundle_carries_each_output_its_published_files_and_a_redacted_record(released):
    world, label, bundle, reports = released
    with zipfile.ZipFile(bundle) as z:
        names = set(z.namelist())
        manifest = json.loads(z.read(f"{label}/manifest.json"))
        records = {o["name"]: json.loads(z.read(f"{label}/{o['check_record']}")) for o in manifest["outputs"]}
    assert not {n for n in names if n.endswith((".html", "meta.json", "report.json"))}
    suppressed = records["suppressed"]
    hidden = [c for c in suppressed["cells"] if c["published"] is None]
    bodo_f = next(c for c in hidden if c["key"] == {"kommune": "Bodø", "sex": "F"})
    assert bodo_f == {"key": {"kommune": "Bodø", "sex": "F"}, "published": None, "status": "hidden"}
    # which hidden cell was too small and which hides it is a fact about their values: never published
    assert len(hidden) >= 4 and {c["status"] for c in hidden} == {"hidden"}
    assert all(set(c) == {"key", "published", "status"} for r in records.values() for c in r.get("cells", []))
    assert {c["status"] for c in records["midpoint"]["cells"]} <= {"rounded", "hidden"}
    assert suppressed["summary"].startswith(f"protected: {len(hidden)} of") and "not published" in suppressed["summary"]
    assert {"check": "MinimumThresholdCheck", "status": "protected"}.items() <= suppressed["checks"][0].items()
    assert records["rounded"]["method"] == "round" and records["midpoint"]["method"] == "midpoint6"
    assert "NKCheck" in {c["check"] for c in records["costs"]["checks"]}
    assert records["regression"]["kind"] == "regression" and "cells" not in records["regression"]
    statuses = {o["name"]: o["check_status"] for o in manifest["outputs"]}
    assert statuses["suppressed"] == "protected" and statuses["regression"] == "pass"
    # every file of the bundle is hashed, the records too
    assert {f["path"] for f in manifest["files"]} == {n.split("/", 1)[1] for n in names} - {"manifest.json"}
