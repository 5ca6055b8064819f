"""Differencing attacks: a new table against what a project has already released."""

import numpy as np
import pandas as pd

from tre.output_check import build_table, build_table_report, load_parameters
from tre.output_check.sources import read_released_tables, write_published_table

P = load_parameters()


def _people(seed=3, n=600) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "kommune": rng.choice(["0301", "1103", "4601", "5001"], n),
            "sex": rng.choice(["F", "M"], n),
            "age": rng.integers(0, 100, n),
        }
    )


def _counts(people: pd.DataFrame, dims) -> pd.DataFrame:
    return people.groupby(dims).size().rename("n").reset_index()


def _release(tmp_path, people, dims, name):
    """Protect and release a table the way the review workflow will: CSV + sidecar."""
    report = build_table_report(build_table(_counts(people, dims), dims, count="n"), P, method="suppress").as_dict()
    assert report["status"] in ("pass", "protected")
    write_published_table(report, name, "n", tmp_path / "released" / "REL-1", release="REL-1")
    released, skipped = read_released_tables(tmp_path / "released")
    assert skipped == []
    return released


def _check(people, dims, released, method=None):
    return build_table_report(
        build_table(_counts(people, dims), dims, count="n"), P, method=method, released=released
    ).as_dict()


def _differencing(report):
    return [f["message"] for f in report["findings"] if f["check"] == "DifferencingCheck"]


def test_the_same_table_again_is_fine(tmp_path):
    people = _people()
    released = _release(tmp_path, people, ["kommune", "sex"], "by-kommune-sex")
    assert _check(people, ["kommune", "sex"], released)["status"] == "pass"


def test_nested_subpopulation_fails_naming_the_release(tmp_path):
    people = _people()
    released = _release(tmp_path, people, ["kommune", "sex"], "by-kommune-sex")
    # the same table for everyone but three people in one municipality (e.g. "without the 1151 movers")
    leavers = people.index[(people.kommune == "5001") & (people.sex == "F")][:3]
    report = _check(people.drop(leavers), ["kommune", "sex"], released)
    messages = _differencing(report)
    assert report["status"] == "fail" and messages
    assert any("by-kommune-sex" in m and "kommune=5001, sex=F" in m for m in messages)


def test_one_extra_filter_fails(tmp_path):
    people = _people()
    released = _release(tmp_path, people, ["kommune"], "all-ages")
    ages = people.age.value_counts()
    rare = ages.index[(ages > 0) & (ages < P.threshold)][0]
    adults = people[people.age != rare]  # one extra filter that drops only a handful of people
    report = _check(adults, ["kommune"], released)
    assert report["status"] == "fail"
    assert any("all-ages" in m and "(all)" in m for m in _differencing(report))


def test_one_extra_category_fails_even_when_it_is_suppressed(tmp_path):
    people = _people()
    people["group"] = np.where(people.age < 30, "young", "old")
    released = _release(tmp_path, people, ["group"], "two-groups")
    with_unknown = pd.concat([people, people.head(2).assign(group="unknown")], ignore_index=True)
    # protected on its own, "unknown" (2) is suppressed with a partner; the totals give it away
    alone = build_table_report(
        build_table(_counts(with_unknown, ["group"]), ["group"], count="n"), P, method="suppress"
    )
    assert alone.status == "protected"
    report = _check(with_unknown, ["group"], released)
    assert report["status"] == "fail" and any("two-groups" in m for m in _differencing(report))


def test_totals_differing_by_a_small_group_fail(tmp_path):
    people = _people()
    released = _release(tmp_path, people, ["sex"], "by-sex")
    more = pd.concat([people, people.head(3)], ignore_index=True)  # three more people, another breakdown
    report = _check(more, ["kommune"], released)
    assert any("(all) differs from (all)" in m and "by-sex" in m for m in _differencing(report))


def test_unrelated_populations_are_not_flagged(tmp_path):
    people = _people(seed=3)
    released = _release(tmp_path, people, ["kommune", "sex"], "cohort-a")
    other = _people(seed=11)  # another population: differences go both ways, nothing is nested
    assert _differencing(_check(other, ["kommune", "sex"], released)) == []


def test_protect_hides_the_differencing_cell_and_protects_it(tmp_path):
    people = _people()
    released = _release(tmp_path, people, ["kommune", "sex"], "by-kommune-sex")
    leavers = people.index[(people.kommune == "5001") & (people.sex == "F")][:2]
    report = _check(people.drop(leavers), ["kommune", "sex"], released, method="suppress")
    assert report["status"] == "protected", report["summary"]
    cell = next(c for c in report["cells"] if c["key"] == {"kommune": "5001", "sex": "F"})
    assert cell["published"] is None and "DifferencingCheck" in cell["checks"]
