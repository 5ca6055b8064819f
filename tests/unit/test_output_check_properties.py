"""Properties that hold for every table: nothing small is published, nothing hidden is
recoverable, merging keeps every total.

`TRE_HYPOTHESIS_EXAMPLES=2000` runs each property on more tables than CI does.
"""

import os

import numpy as np
from count_tables import build_count_table, report_mask
from hypothesis import HealthCheck, example, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tre.output_check import build_attacker_intervals, build_table_report, load_parameters
from tre.output_check.rounding import rounding_interval
from tre.output_check.tables import interior_mask

BOUNDED = settings(
    max_examples=int(os.environ.get("TRE_HYPOTHESIS_EXAMPLES", "60")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

small_or_not = st.one_of(st.integers(0, 6), st.integers(0, 80))


@st.composite
def count_arrays(draw):
    shape = draw(st.lists(st.integers(1, 5), min_size=1, max_size=3).filter(lambda s: np.prod(s) <= 60))
    return draw(arrays(np.int64, tuple(shape), elements=small_or_not))


@BOUNDED
@given(values=count_arrays(), threshold=st.integers(2, 10), zeros=st.booleans())
def test_no_published_cell_is_under_the_threshold(values, threshold, zeros):
    params = load_parameters(threshold=threshold, zeros_are_disclosive=zeros)
    report = build_table_report(build_count_table(values), params, method="suppress", audit=False).as_dict()
    hidden = any(c["published"] is None for c in report["cells"])
    assert report["status"] == ("protected" if hidden else "pass")
    for cell in report["cells"]:
        published = cell["published"]
        if published is not None:
            assert not 0 < published < threshold, cell
            assert not (zeros and published == 0), cell


@BOUNDED
@given(values=count_arrays(), threshold=st.integers(2, 10))
def test_the_lp_audit_never_recovers_a_hidden_cell(values, threshold):
    params = load_parameters(threshold=threshold)
    table = build_count_table(values)
    report = build_table_report(table, params, method="suppress", audit=False).as_dict()
    hidden = report_mask(table, report)
    for index, (lo, hi) in build_attacker_intervals(table.count, hidden).items():
        assert lo - 1e-6 <= table.count[index] <= hi + 1e-6
        assert hi - lo >= params.protection_width - 1e-6, (index, lo, hi)


def _check_rounded(values: np.ndarray, threshold: int, method: str):
    """Protect `values` with a rounding `method` and attack what is published: the LP over
    every published value's rounding interval (hidden cells free, counts >= 0), on every
    small count still shown and every hidden cell. Each must keep two possible values; a
    hidden primary cell its protection width."""
    params = load_parameters(threshold=threshold)
    table = build_count_table(values)
    report = build_table_report(table, params, method=method, audit=False).as_dict()
    assert report["status"] == "protected"  # every value is shown rounded
    base = params.midpoint_base if method == "midpoint6" else params.round_base
    bounds = {
        index: rounding_interval(cell["published"], method, base)
        for index, cell in zip(table.cells(), report["cells"], strict=True)
        if cell["published"] is not None
    }
    hidden, primary = report_mask(table, report), report_mask(table, report, "primary")
    small = (table.count > 0) & (table.count < threshold) & ~hidden
    for index, (lo, hi) in build_attacker_intervals(table.count, hidden, bounds=bounds, targets=small | hidden).items():
        assert lo - 1e-6 <= table.count[index] <= hi + 1e-6
        assert hi - lo >= 1 - 1e-6, (index, lo, hi)
        if hidden[index] and primary[index]:
            assert hi - lo >= params.protection_width - 1e-6, (index, lo, hi)
    return table, report, hidden


@BOUNDED
@given(values=count_arrays(), threshold=st.integers(2, 10))
@example(values=np.ones((2, 3), dtype=np.int64), threshold=2)  # six 1s under a grand total shown as 3
def test_midpoint_rounding_never_gives_a_small_count_away_exactly(values, threshold):
    _check_rounded(values, threshold, "midpoint6")


@BOUNDED
@given(values=count_arrays(), threshold=st.integers(2, 10))
def test_base_rounding_shows_no_small_count_and_keeps_hidden_cells_protected(values, threshold):
    table, report, hidden = _check_rounded(values, threshold, "round")
    assert not ((table.count > 0) & (table.count < threshold) & ~hidden).any()  # suppressed before rounding
    assert report["rounding_audit"]["suppressed"] == 0  # hypercube protection survives rounding


@BOUNDED
@given(values=count_arrays(), threshold=st.integers(2, 10))
def test_merging_keeps_every_total(values, threshold):
    params = load_parameters(threshold=threshold)
    table = build_count_table(values)
    report = build_table_report(table, params, method="merge", merge_dimensions=["d0"], audit=False).as_dict()
    true_totals = {
        tuple(c["key"].values()): c["value"]
        for c in report["cells"]
        if c["status"] != "merged" and c["key"]["d0"] == "Total"
    }
    expected = {
        tuple(table.key(i).values()): int(table.count[i]) for i in table.cells() if table.key(i)["d0"] == "Total"
    }
    assert true_totals == expected  # merging along d0 moves units between d0's categories only
    merged_away = sum(
        c["value"] for c in report["cells"] if c["status"] == "merged" and all(v != "Total" for v in c["key"].values())
    )
    other = [
        c
        for c in report["cells"]
        if c["key"]["d0"] == params.other_label and "Total" not in list(c["key"].values())[1:]
    ]
    if merged_away:
        assert sum(c["value"] for c in other) == merged_away
    inside = interior_mask(table.shape)
    assert sum(
        c["value"] for c in report["cells"] if c["status"] != "merged" and "Total" not in c["key"].values()
    ) == int(table.count[inside].sum())
