"""The engine's parts: parameters, tables, checks, suppression and the LP audit."""

import numpy as np
import pandas as pd
import pytest

from tre.errors import ConfigError
from tre.output_check import (
    Check,
    TableError,
    build_attacker_intervals,
    build_cell_findings,
    build_primary_mask,
    build_secondary_mask,
    build_table,
    build_table_report,
    find_under_protected,
    load_parameters,
)
from tre.output_check.parameters import PARAMETERS_FILE
from tre.output_check.suppression import protection_values, required_widths

P = load_parameters()


def test_parameters_are_versioned_commented_and_overridable():
    text = PARAMETERS_FILE.read_text()
    assert 'version = "' in text
    for name in P.as_dict():
        if name != "version":
            # every parameter has a comment right above it
            lines = text.splitlines()
            at = next(i for i, line in enumerate(lines) if line.startswith(f"{name} ="))
            assert lines[at - 1].startswith("#"), name
    assert (P.threshold, P.nk_n, P.nk_k, P.p_ratio, P.min_dof) == (5, 2, 0.90, 0.10, 10)
    assert load_parameters(threshold=10).threshold == 10
    with pytest.raises(ConfigError, match="threshold must be at least 1"):
        load_parameters(threshold=0)
    with pytest.raises(ConfigError, match="unknown output-check parameter"):
        P.with_overrides(treshold=3)


def test_margins_are_computed_from_the_true_cells():
    records = pd.DataFrame({"a": ["x", "x", "y"], "b": ["u", "v", "u"], "n": [3, 4, 5]})
    table = build_table(records, ["a", "b"], count="n")
    assert table.categories == (("x", "y"), ("u", "v"))
    assert table.count.tolist() == [[3, 4, 7], [5, 0, 5], [8, 4, 12]]


def test_bad_tables_get_one_line_errors():
    records = pd.DataFrame({"a": ["x", "Total"], "n": ["3", "4"]})
    with pytest.raises(TableError, match="category 'Total'"):
        build_table(records, ["a"], count="n")
    with pytest.raises(TableError, match="not numbers"):
        build_table(pd.DataFrame({"a": ["x"], "n": ["three"]}), ["a"], count="n")
    with pytest.raises(TableError, match="at most 3 are supported"):
        build_table(pd.DataFrame({c: ["x"] for c in "abcd"} | {"n": [1]}), list("abcd"), count="n")
    with pytest.raises(TableError, match="no column 'm'"):
        build_table(pd.DataFrame({"a": ["x"], "n": [1]}), ["a"], count="m")


def test_dominance_rules_as_acro_computes_them():
    records = pd.DataFrame(
        {
            "cell": ["dominated"] * 3 + ["p_percent"] * 4 + ["spread"] * 6,
            "value": [1000, 20, 10] + [500, 450, 30, 10] + [100, 90, 80, 70, 60, 50],
        }
    )
    table = build_table(records, ["cell"], value="value")
    masks = build_cell_findings(table, P)
    # dominated: the top 2 are 1020/1030 >= 0.90; p_percent: top 2 are 950/990 >= 0.90, and the
    # rest (40) is under 10 % of the largest (500); spread: neither
    assert masks[Check.NK][:3].tolist() == [True, True, False]
    assert masks[Check.P_PERCENT][:3].tolist() == [True, True, False]
    assert Check.MINIMUM_THRESHOLD in masks  # 3 and 4 contributors are under 5


def test_negative_and_missing_contributions_need_a_person():
    records = pd.DataFrame({"cell": ["a"] * 6 + ["b"] * 6, "value": [5, -3, 4, 6, 7, 8, 1, 2, None, 4, 5, 6]})
    report = build_table_report(build_table(records, ["cell"], value="value"), P, method="suppress").as_dict()
    assert report["status"] == "review"
    by_cell = {c["key"]["cell"]: c["checks"] for c in report["cells"]}
    assert "NegativeValuesCheck" in by_cell["a"] and "MissingCheck" in by_cell["b"]


def test_aggregated_magnitude_cells_cannot_be_judged_for_dominance():
    records = pd.DataFrame({"cell": ["a", "b"], "n": [30, 40], "cost": [1000.0, 2000.0]})
    report = build_table_report(build_table(records, ["cell"], count="n", value="cost"), P).as_dict()
    assert report["status"] == "review"
    assert any("dominance" in f["message"] and f["status"] == "review" for f in report["findings"])


def test_minimum_and_maximum_are_disallowed_and_small_medians_too():
    records = pd.DataFrame({"g": ["a"] * 20 + ["b"] * 6, "v": list(range(20)) + list(range(6))})
    for statistic, flagged in (("max", [True, True]), ("median", [False, True]), ("mean", [False, False])):
        masks = build_cell_findings(build_table(records, ["g"], value="v", statistic=statistic), P)
        assert masks.get(Check.DISALLOWED_STATISTIC, np.zeros(3, bool))[:2].tolist() == flagged, statistic
    allowed = build_cell_findings(
        build_table(records, ["g"], value="v", statistic="max"), P.with_overrides(allow_min_max=True)
    )
    assert Check.DISALLOWED_STATISTIC not in allowed


def test_exact_dates_need_larger_groups():
    records = pd.DataFrame({"day": ["2024-01-02", "2024-01-03", "2024-01-04"], "n": [6, 40, 0]})
    masks = build_cell_findings(build_table(records, ["day"], count="n"), P)
    assert masks[Check.EXACT_DATE].tolist() == [True, False, False, False]


def test_rates_check_numerator_and_denominator():
    records = pd.DataFrame({"kommune": ["0301", "1151", "4601"], "cases": [120, 7, 2], "pop": [700000, 3, 80000]})
    table = build_table(records, ["kommune"], count="cases", denominator="pop")
    report = build_table_report(table, P, method="suppress").as_dict()
    by = {c["key"]["kommune"]: c for c in report["cells"]}
    assert by["0301"]["published"] == pytest.approx(120 / 700000 * 1000, rel=1e-5)
    assert by["1151"]["published"] is None and "DenominatorCheck" in by["1151"]["checks"]
    assert by["4601"]["published"] is None and "MinimumThresholdCheck" in by["4601"]["checks"]
    assert by["Total"]["numerator"] == 129


def _naive_and_protected(values: np.ndarray):
    records = pd.DataFrame(
        [(f"r{i}", f"c{j}", int(values[i, j])) for i in range(values.shape[0]) for j in range(values.shape[1])],
        columns=["r", "c", "n"],
    )
    table = build_table(records, ["r", "c"], count="n")
    primary = build_primary_mask(build_cell_findings(table, P), table.shape)
    secondary = build_secondary_mask(protection_values(table), primary, required_widths(table, P))
    return table, primary, secondary


def test_the_lp_audit_recovers_a_cell_hidden_without_secondary_suppression():
    table, primary, secondary = _naive_and_protected(np.array([[2, 30, 40], [25, 33, 41], [22, 19, 50]]))
    naive = build_attacker_intervals(table.count, primary)
    assert naive[(0, 0)] == (2, 2)  # row total minus the published cells
    assert find_under_protected(naive, required_widths(table, P), primary) == [(0, 0)]
    protected = build_attacker_intervals(table.count, primary | secondary)
    assert find_under_protected(protected, required_widths(table, P), primary) == []
    lo, hi = protected[(0, 0)]
    assert lo <= 2 <= hi and hi - lo >= P.threshold


def test_three_dimensional_tables_are_protected():
    rng = np.random.default_rng(7)
    values = rng.negative_binomial(1, 0.15, size=(4, 3, 5))
    records = pd.DataFrame(
        [(f"a{i}", f"b{j}", f"c{k}", int(values[i, j, k])) for i, j, k in np.ndindex(values.shape)],
        columns=["a", "b", "c", "n"],
    )
    table = build_table(records, ["a", "b", "c"], count="n")
    primary = build_primary_mask(build_cell_findings(table, P), table.shape)
    assert primary.sum() > 5
    secondary = build_secondary_mask(protection_values(table), primary, required_widths(table, P))
    found = build_attacker_intervals(table.count, primary | secondary)
    assert find_under_protected(found, required_widths(table, P), primary) == []
    assert all(hi - lo >= P.threshold for lo, hi in found.values())


def test_report_carries_parameters_hashes_and_every_cell():
    records = pd.DataFrame({"a": ["x", "y", "z"], "n": [12, 2, 30]})
    report = build_table_report(
        build_table(records, ["a"], count="n"),
        P.with_overrides(threshold=3),
        method="suppress",
        inputs=[{"name": "t.csv", "sha256": "ab" * 32}],
    ).as_dict()
    assert report["parameters"]["threshold"] == 3 and report["parameters"]["version"] == P.version
    assert report["inputs"] == [{"name": "t.csv", "sha256": "ab" * 32}]
    assert [c["key"]["a"] for c in report["cells"]] == ["x", "y", "z", "Total"]
    small = report["cells"][1]
    assert (small["value"], small["published"], small["status"], small["checks"]) == (
        2,
        None,
        "primary",
        ["MinimumThresholdCheck"],
    )
    assert small["interval"][1] - small["interval"][0] >= 3


def test_output_checking_never_imports_the_central_zone():
    """`output_check` and the researchers' API run in a project zone: no `tre.linkage`, ever."""
    import ast
    from pathlib import Path

    package = Path(__file__).resolve().parents[2] / "tre"
    for path in [*sorted((package / "output_check").glob("*.py")), package / "safe.py"]:
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Import | ast.ImportFrom):
                names = [node.module or ""] if isinstance(node, ast.ImportFrom) else [a.name for a in node.names]
                assert not any(n == "tre.linkage" or n.startswith("tre.linkage.") for n in names), path.name
