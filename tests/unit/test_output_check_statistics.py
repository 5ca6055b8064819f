"""Class 4: custom outputs are not counts. Statistics in a researcher's own file are
recognised by their columns and checked by rule; what no rule can clear goes to a person."""

import pandas as pd
import pytest

from tre.output_check import load_parameters
from tre.output_check.notebooks import build_file_report

P = load_parameters()


def _report(tmp_path, frame: pd.DataFrame):
    path = tmp_path / "stats.csv"
    frame.to_csv(path, index=False)
    report = build_file_report(path, P, frozenset())
    return report.status, " | ".join(f.message for f in report.findings), {str(f.check) for f in report.findings}


def test_percentiles_and_maxima_of_small_groups_fail(tmp_path):
    """The red team's case: whole numbers (ages) that read as counts of five or more passed."""
    frame = pd.DataFrame(
        {"kommune": ["0301", "1103", "4601"], "p25": [61, 58, 70], "median": [67, 63, 74], "max": [88, 91, 85]}
    )
    status, messages, checks = _report(tmp_path, frame)
    assert status == "fail" and "DisallowedStatisticCheck" in checks and "'max'" in messages
    with_n = frame.assign(n=[3, 5, 2])
    status, messages, _ = _report(tmp_path, with_n)
    assert status == "fail" and "'median'" in messages and "'p25'" in messages


def test_percentiles_of_large_groups_and_no_extremes_go_to_a_person(tmp_path):
    frame = pd.DataFrame({"kommune": ["0301", "1103"], "n": [400, 250], "p25": [41.5, 44.0], "median": [55.0, 57.5]})
    status, messages, _ = _report(tmp_path, frame)
    assert status == "review" and "dominates" in messages  # never "pass"


def test_a_mean_needs_its_n(tmp_path):
    status, messages, _ = _report(tmp_path, pd.DataFrame({"group": ["a", "b"], "mean_cost": [1520.5, 980.25]}))
    assert status == "review" and "without the size of its groups" in messages
    status, messages, _ = _report(tmp_path, pd.DataFrame({"group": ["a", "b"], "n": [40, 3], "mean": [1.5, 2.5]}))
    assert status == "fail" and "under the threshold" in messages


def test_shares_with_their_denominators(tmp_path):
    status, messages, _ = _report(tmp_path, pd.DataFrame({"group": ["a", "b"], "n": [200, 150], "share": [0.01, 0.5]}))
    assert status == "fail" and "share(s)" in messages  # 1 % of 200 is 2 persons
    status, _, _ = _report(tmp_path, pd.DataFrame({"group": ["a", "b"], "n": [200, 150], "pct": [25.0, 50.0]}))
    assert status == "review"
    status, messages, _ = _report(tmp_path, pd.DataFrame({"group": ["a", "b"], "andel": [0.4, 0.6]}))
    assert status == "review" and "without its denominator" in messages


def test_shares_of_a_whole_whose_rest_is_small(tmp_path):
    """Persons per service and their share of all: the shares give the whole, 203 - 200 = 3."""
    frame = pd.DataFrame(
        {"service": ["home care", "nursing home"], "persons": [150, 50], "share": [150 / 203, 50 / 203]}
    )
    status, messages, _ = _report(tmp_path, frame)
    assert status == "fail" and "rest of the group" in messages


@pytest.mark.parametrize(
    ("frame", "check"),
    [
        (pd.DataFrame({"id": range(8), "fitted": [1.2] * 8, "residual": [0.1] * 8}), "PersonLevelCheck"),
        (pd.DataFrame({"day": [1, 2, 3], "surv": [0.99, 0.97, 0.96], "n_event": [1, 2, 1], "at_risk": [300, 299, 297]}),
         "MinimumThresholdCheck"),
        (pd.DataFrame({"age": ["18-44", "45-66"], "min": [18, 45]}), "DisallowedStatisticCheck"),
        (pd.DataFrame({"kommune": ["0301", "1103"], "n": [1, 1]}), "MinimumThresholdCheck"),
    ],
)  # fmt: skip
def test_statistics_that_are_single_persons_fail(tmp_path, frame, check):
    status, _, checks = _report(tmp_path, frame)
    assert status == "fail" and check in checks


def test_what_no_rule_can_clear_goes_to_a_person(tmp_path):
    curve = pd.DataFrame({"day": [1, 2, 3], "km": [0.99, 0.97, 0.96]})
    model = pd.DataFrame({"term": ["age", "female"], "OR": [1.02, 0.8], "ci_lower": [1.0, 0.7]})
    edges = pd.DataFrame({"bin_start": [0, 10, 20], "bin_end": [10, 20, 30], "n": [40, 50, 60]})
    counts = pd.DataFrame({"kommune": ["0301", "1103"], "persons": [120, 80]})
    for frame in (curve, model, edges, counts):
        status, _, _ = _report(tmp_path, frame)
        assert status == "review", frame.columns.tolist()
