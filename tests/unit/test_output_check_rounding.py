"""Rounding remedies and the rounding audit: what rounded values give away, and what the
engine does about it."""

from functools import partial

import numpy as np
from count_tables import build_count_table

from tre.output_check import assessments, build_attacker_intervals, build_table_report, load_parameters
from tre.output_check.intervals import build_rounding_audit
from tre.output_check.reports import render_html
from tre.output_check.rounding import build_rounded_protection, midpoint_round, rounding_bounds, rounding_interval


def _published(table, report) -> tuple[np.ndarray, dict]:
    hidden = np.zeros(table.shape, dtype=bool)
    bounds = {}
    for index, cell in zip(table.cells(), report["cells"], strict=True):
        if cell["published"] is None:
            hidden[index] = True
        else:
            bounds[index] = rounding_interval(cell["published"], "midpoint6", 6)
    return hidden, bounds


def test_midpoint_rounding_alone_gives_six_ones_away():
    counts = build_count_table(np.ones((2, 3), dtype=np.int64)).count
    shown = midpoint_round(counts, 6)
    assert set(shown.ravel()) == {3.0}  # every cell and margin, the grand total of 6 too
    bounds = {index: rounding_interval(shown[index], "midpoint6", 6) for index in np.ndindex(counts.shape)}
    inside = np.zeros(counts.shape, dtype=bool)
    inside[:2, :3] = True
    found = build_attacker_intervals(counts, np.zeros(counts.shape, dtype=bool), bounds=bounds, targets=inside)
    assert set(found.values()) == {(1.0, 1.0)}  # six cells >= 1 summing to <= 6: all exactly 1


def test_the_engine_suppresses_counts_recoverable_from_the_rounded_margins():
    params = load_parameters(threshold=2)
    table = build_count_table(np.ones((2, 3), dtype=np.int64))
    report = build_table_report(table, params, method="midpoint6", audit=False)
    data = report.as_dict()
    assert data["status"] == "protected"
    suppressed = [c for c in data["cells"] if c["published"] is None]
    assert len(suppressed) == 4 and {c["status"] for c in suppressed} == {"primary"}
    assert all(c["checks"] == ["MinimumThresholdCheck", "RoundingRecoveryCheck"] for c in suppressed)
    shown = [c for c in data["cells"] if c["published"] is not None]
    assert {(c["status"], c["published"]) for c in shown} == {("rounded", 3)}
    messages = {f["check"]: f for f in data["findings"]}
    assert "recoverable from the rounded margins" in messages["RoundingRecoveryCheck"]["message"]
    assert messages["RoundingRecoveryCheck"]["status"] == "protected"
    assert "2 shown midpoint-rounded, 4 suppressed and protected" in messages["MinimumThresholdCheck"]["message"]
    assert data["rounding_audit"]["suppressed"] == 4 and data["rounding_audit"]["unresolved"] == 0
    assert "recoverable from the rounded margins" in render_html(report, "diabetes by kommune")

    hidden, bounds = _published(table, data)
    small = (table.count == 1) & ~hidden
    found = build_attacker_intervals(table.count, hidden, bounds=bounds, targets=small | hidden)
    for index, (lo, hi) in found.items():
        assert hi - lo >= (params.protection_width if hidden[index] else 1), (index, lo, hi)


def test_a_table_the_rounds_cannot_fix_fails_rather_than_being_published(monkeypatch):
    # with no rounds left to suppress in, what the audit finds must fail the output
    monkeypatch.setattr(assessments, "build_rounded_protection", partial(build_rounded_protection, rounds=0))
    report = build_table_report(
        build_count_table(np.ones((2, 3), dtype=np.int64)),
        load_parameters(threshold=2),
        method="midpoint6",
        audit=False,
    ).as_dict()
    assert report["status"] == "fail"
    failing = [f for f in report["findings"] if f["status"] == "fail"]
    assert [f["check"] for f in failing] == ["RoundingRecoveryCheck"]
    assert failing[0]["message"].startswith("6 cell(s) can still be recovered from the rounded values")
    assert report["rounding_audit"]["unresolved"] == 6


def test_the_audits_shortcuts_never_call_a_cell_safe_that_the_lp_pins_down():
    # cells the audit settles by moving the table must keep two values for the full LP too
    rng = np.random.default_rng(11)
    for _ in range(30):
        shape = tuple(rng.integers(2, 5, size=rng.integers(1, 4)))
        counts = build_count_table(rng.integers(0, 4, size=shape)).count.astype(float)
        hidden = np.zeros(counts.shape, dtype=bool)
        shown = midpoint_round(counts, 6)
        lower, upper = rounding_bounds(shown, "midpoint6", 6)
        needs = ((counts > 0) & (counts < 5)).astype(float)
        audit = build_rounding_audit(counts, hidden, lower, upper, needs)
        bounds = {index: (lower[index], upper[index]) for index in np.ndindex(counts.shape)}
        found = build_attacker_intervals(counts, hidden, bounds=bounds, targets=needs > 0)
        for index, (lo, hi) in found.items():
            pinned = np.floor(hi + 1e-6) - np.ceil(lo - 1e-6) < 1
            assert audit.flagged[index] == pinned, (shape, index, lo, hi)


def test_base_rounding_hides_small_counts_and_its_audit_finds_nothing_to_add():
    params = load_parameters()
    values = np.array([[1, 1, 1], [1, 1, 1]])
    report = build_table_report(build_count_table(values), params, method="round", audit=False).as_dict()
    assert report["status"] == "protected"
    assert {c["status"] for c in report["cells"] if c["value"] == 1} == {"primary"}
    assert report["rounding_audit"]["suppressed"] == 0 and report["rounding_audit"]["run"]
