"""Class 2: releases are audited together, not in pairs.

Each test releases earlier outputs into the project's ledger as the review workflow does,
makes a new output through the same function the kernel and the central check run, and
attacks everything published with an attacker of its own (`ledger_scenarios.attack`, an
LP over every combination of attribute values, which knows what each cell means). Without
the ledger these attacks recover a small group; with it the new output is protected.
"""

import numpy as np
import pandas as pd
from ledger_scenarios import Project, attack, pinned_small, recovered, view

from tre.output_check.assessments import build_table_report


def _cohort(n=300, seed=0):
    rng = np.random.default_rng(seed)
    return pd.DataFrame(
        {
            "pseudonym": [f"P{seed:02d}{i:06d}" for i in range(n)],
            "band": rng.choice(["20-39", "40-59", "60-79", "80+"], n),
            "sex": rng.choice(["F", "M"], n),
            "kommune": rng.choice([f"K{i}" for i in range(6)], n),
            "cost": np.round(rng.gamma(2.0, 1000.0, n), 2),
        }
    )


def _differencing(made) -> list[dict]:
    return [c for c in made.report.as_dict()["cells"] if "DifferencingCheck" in c["checks"]]


def test_a_filter_on_a_dimension_the_new_table_dropped():
    """By age band and sex for everyone, then by age band for all but two excluded persons:
    an age band minus the excluded gives the excluded away."""
    people = _cohort()
    people["excluded"] = False
    people.loc[people.index[people.band == "40-59"][:2], "excluded"] = True
    project = Project(people)
    project.release(project.make(["band", "sex"]))
    kept = {"excluded": [False]}
    plain = Project(people)  # the same two outputs without a ledger: the attack works
    plain.published.append(project.published[0])
    plain.published.append(view(plain.make(["band"], rows=kept)))
    excluded = {"excluded": [True], "band": ["40-59"]}
    assert pinned_small(attack(people, ["band", "sex", "excluded"], plain.published, excluded), 5)

    new = project.make(["band"], rows=kept)
    assert new.report.status == "protected" and _differencing(new)
    project.published.append(view(new))
    for target in (excluded, {"excluded": [True]}):
        assert not pinned_small(attack(people, ["band", "sex", "excluded"], project.published, target), 5)


def test_overlapping_releases_with_different_secondary_patterns():
    """All municipalities, then one county's: each suppresses differently, together they
    would recover a small cell."""
    people = _cohort(400, seed=3)
    people.loc[people.index[(people.kommune == "K1") & (people.sex == "F")][3:], "sex"] = "M"  # K1 has 3 women
    people["county"] = people.kommune.map({"K0": "A", "K1": "A", "K2": "A", "K3": "B", "K4": "B", "K5": "B"})
    project = Project(people)
    project.release(project.make(["kommune", "sex"]))
    new = project.make(["kommune", "sex"], rows={"county": ["A"]})
    project.published.append(view(new))
    for kommune in ("K0", "K1", "K2"):
        for sex in ("F", "M"):
            target = {"kommune": [kommune], "sex": [sex]}
            if 0 < ((people.kommune == kommune) & (people.sex == sex)).sum() < 5:
                assert not pinned_small(
                    attack(people, ["kommune", "sex"], project.published, target, derived={"county": "kommune"}), 5
                )
    hidden = {k for k, v in project.published[1].cells.items() if v is None}
    assert ("K1", "F") in hidden


def test_regrouped_categories_a_group_and_its_codes():
    """A diagnosis group, then its codes: the group minus the codes shown gives the code hidden."""
    rng = np.random.default_rng(5)
    n = 300
    codes = rng.choice(["E10", "E11", "E13", "I20", "I21", "I25"], n, p=[0.2, 0.3, 0.0, 0.2, 0.2, 0.1])
    people = pd.DataFrame(
        {"pseudonym": [f"Q{i:05d}" for i in range(n)], "code": codes, "sex": rng.choice(["F", "M"], n)}
    )
    people.loc[people.index[:3], "code"] = "E13"  # a rare code: 3 persons
    people["group"] = people.code.str[0]
    project = Project(people)
    project.release(project.make(["group", "sex"]))
    new = project.make(["code", "sex"])
    project.published.append(view(new))
    rare = {"code": ["E13"]}
    assert not pinned_small(attack(people, ["code", "sex"], project.published, rare, derived={"group": "code"}), 5)


def _one_person_per_band(people):
    """Kommune K9 gets five persons, one in each of five age bands."""
    extra = pd.DataFrame(
        {
            "pseudonym": [f"Z{i}" for i in range(5)],
            "band": ["20-39", "40-59", "60-79", "80+", "0-19"],
            "sex": ["F", "M", "F", "M", "F"],
            "kommune": "K9",
            "cost": 100.0,
        }
    )
    return pd.concat([people, extra], ignore_index=True)


def test_midpoint_rounding_then_exact_totals():
    """Five persons each alone in a cell shown rounded (3: 1 to 6), then their exact total of
    5: each cell is exactly 1."""
    people = _one_person_per_band(_cohort(300, seed=7))
    project = Project(people)
    project.release(project.make(["kommune", "band"], method="midpoint6"))
    plain = Project(people)
    plain.published = [project.published[0], view(plain.make(["kommune"]))]
    cell = {"kommune": ["K9"], "band": ["40-59"]}
    assert recovered(attack(people, ["kommune", "band"], plain.published, cell))
    new = project.make(["kommune"])
    assert _differencing(new) and new.report.status == "protected"
    project.published.append(view(new))
    assert not recovered(attack(people, ["kommune", "band"], project.published, cell))


def test_exact_totals_then_midpoint_rounding():
    """The same in the other order: the rounded table comes second and is the one protected."""
    people = _one_person_per_band(_cohort(300, seed=7))
    project = Project(people)
    project.release(project.make(["kommune"]))
    new = project.make(["kommune", "band"], method="midpoint6")
    assert _differencing(new) and new.report.status == "protected"
    project.published.append(view(new))
    cell = {"kommune": ["K9"], "band": ["40-59"]}
    assert not recovered(attack(people, ["kommune", "band"], project.published, cell))


def test_sums_are_differenced_like_counts():
    """Total cost by municipality for everyone, then for all but one person: the difference is
    that person's cost."""
    people = _cohort(300, seed=11)
    people["left_out"] = False
    people.loc[people.index[people.kommune == "K2"][0], "left_out"] = True
    project = Project(people)
    project.release(project.make(["kommune"], value="cost"))
    target = {"left_out": [True]}
    plain = Project(people)
    plain.published = [project.published[0], view(plain.make(["kommune"], rows={"left_out": [False]}, value="cost"))]
    low, high = attack(people, ["kommune", "left_out"], plain.published, target)
    assert high - low < 1  # the person's cost, to the cent
    new = project.make(["kommune"], rows={"left_out": [False]}, value="cost")
    assert _differencing(new)
    project.published.append(view(new))
    low, high = attack(people, ["kommune", "left_out"], project.published, target)
    assert high - low >= 0.1 * people.cost[people.left_out].sum()


def test_three_releases_together_not_in_pairs():
    """Everyone by municipality, then those treated with A, then those treated with B: no pair
    gives anything away, all three give away the few treated with neither."""
    people = _cohort(400, seed=13)
    rng = np.random.default_rng(0)
    people["treatment"] = rng.choice(["A", "B"], len(people))
    people.loc[people.index[people.kommune == "K4"][:2], "treatment"] = "none"
    project = Project(people)
    project.release(project.make(["kommune"]))
    project.release(project.make(["kommune"], rows={"treatment": ["A"]}))
    neither = {"treatment": ["none"], "kommune": ["K4"]}
    plain = Project(people)
    plain.published = project.published + [view(plain.make(["kommune"], rows={"treatment": ["B"]}))]
    assert pinned_small(attack(people, ["kommune", "treatment"], plain.published, neither), 5)
    # no single earlier release does it: each pair leaves the group open
    for earlier in project.published:
        pair = [earlier, plain.published[-1]]
        assert not pinned_small(attack(people, ["kommune", "treatment"], pair, neither), 5)
    new = project.make(["kommune"], rows={"treatment": ["B"]})
    assert _differencing(new)
    assert new.report.details["ledger"]["audited_together"] == 2
    project.published.append(view(new))
    assert not pinned_small(attack(people, ["kommune", "treatment"], project.published, neither), 5)


# --- safe but tricky: nothing to suppress -----------------------------------------------------


def test_the_same_table_released_again_passes():
    people = _cohort()
    project = Project(people)
    first = project.make(["band", "sex"])
    project.release(first)
    again = project.make(["band", "sex"])
    assert again.report.status == first.report.status and not _differencing(again)


def test_an_unrelated_table_of_the_same_persons_passes():
    people = _cohort(500, seed=17)
    project = Project(people)
    project.release(project.make(["band", "sex"]))
    other = project.make(["kommune"])
    assert other.report.status == "pass" and not _differencing(other)
    assert other.report.details["relations"][0]["relation"] == "same persons"


def test_a_subpopulation_that_differs_by_many_passes():
    people = _cohort(600, seed=19)
    project = Project(people)
    project.release(project.make(["band"]))
    women = project.make(["band"], rows={"sex": ["F"]})
    assert women.report.status == "pass" and not _differencing(women)


def test_a_disjoint_population_is_not_compared():
    people = _cohort(400, seed=23)
    project = Project(people)
    project.release(project.make(["band"], rows={"sex": ["F"]}))
    men = project.make(["band"], rows={"sex": ["M"]})
    assert men.report.status == "pass" and men.report.details["relations"] == []


def test_the_audit_is_deterministic_and_names_what_it_found():
    people = _cohort()
    people["excluded"] = False
    people.loc[people.index[people.band == "40-59"][:2], "excluded"] = True
    project = Project(people)
    project.release(project.make(["band", "sex"]))
    first = project.make(["band"], rows={"excluded": [False]}).report.as_dict()["cells"]
    second = project.make(["band"], rows={"excluded": [False]}).report.as_dict()["cells"]
    assert first == second
    table = project.make(["band"], rows={"excluded": [False]}).extra["table"]
    checked = build_table_report(table, project.params, ledger=project.ledger)  # checked as it is, no remedy
    assert checked.status == "fail"
    messages = [f.message for f in checked.findings if f.check == "DifferencingCheck"]
    assert messages and all("REQ-1/t" in m for m in messages)
    assert not any(p in " ".join(messages) for p in people.pseudonym)
