"""Properties that hold for every table: nothing small is published, nothing hidden is
recoverable, merging keeps every total."""

import numpy as np
import pandas as pd
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

from tre.output_check import (
    build_attacker_intervals,
    build_table,
    build_table_report,
    load_parameters,
)
from tre.output_check.rounding import rounding_interval
from tre.output_check.tables import interior_mask

BOUNDED = settings(max_examples=60, deadline=None, suppress_health_check=[HealthCheck.too_slow])

small_or_not = st.one_of(st.integers(0, 6), st.integers(0, 80))


@st.composite
def count_arrays(draw):
    shape = draw(st.lists(st.integers(1, 5), min_size=1, max_size=3).filter(lambda s: np.prod(s) <= 60))
    return draw(arrays(np.int64, tuple(shape), elements=small_or_not))


def _table(values: np.ndarray):
    dims = [f"d{a}" for a in range(values.ndim)]
    rows = [
        {**{d: f"{d}_{i}" for d, i in zip(dims, index, strict=True)}, "n": int(values[index])}
        for index in np.ndindex(values.shape)
    ]
    return build_table(pd.DataFrame(rows), dims, count="n")


def _hidden(table, report) -> np.ndarray:
    """The cells a report does not publish, as a mask over the extended table."""
    hidden = np.zeros(table.shape, dtype=bool)
    for index, cell in zip(table.cells(), report["cells"], strict=True):
        hidden[index] = cell["published"] is None
    return hidden


@BOUNDED
@given(values=count_arrays(), threshold=st.integers(2, 10), zeros=st.booleans())
def test_no_published_cell_is_under_the_threshold(values, threshold, zeros):
    params = load_parameters(threshold=threshold, zeros_are_disclosive=zeros)
    report = build_table_report(_table(values), params, method="suppress", audit=False).as_dict()
    assert report["status"] == "pass"
    for cell in report["cells"]:
        published = cell["published"]
        if published is not None:
            assert not 0 < published < threshold, cell
            assert not (zeros and published == 0), cell


@BOUNDED
@given(values=count_arrays(), threshold=st.integers(2, 10))
def test_the_lp_audit_never_recovers_a_hidden_cell(values, threshold):
    params = load_parameters(threshold=threshold)
    table = _table(values)
    report = build_table_report(table, params, method="suppress", audit=False).as_dict()
    hidden = _hidden(table, report)
    for index, (lo, hi) in build_attacker_intervals(table.count, hidden).items():
        assert lo - 1e-6 <= table.count[index] <= hi + 1e-6
        assert hi - lo >= params.protection_width - 1e-6, (index, lo, hi)


@BOUNDED
@given(values=count_arrays(), threshold=st.integers(2, 6))
def test_midpoint_rounding_never_gives_a_small_count_away_exactly(values, threshold):
    params = load_parameters(threshold=threshold)
    table = _table(values)
    report = build_table_report(table, params, method="midpoint6", audit=False).as_dict()
    hidden = _hidden(table, report)
    bounds = {
        index: rounding_interval(cell["published"], "midpoint6", params.midpoint_base)
        for index, cell in zip(table.cells(), report["cells"], strict=True)
        if cell["published"] is not None
    }
    small = (table.count > 0) & (table.count < threshold) & ~hidden
    found = build_attacker_intervals(table.count, hidden, bounds=bounds, targets=small | hidden)
    for index, (lo, hi) in found.items():
        assert hi - lo >= 1 - 1e-6, (index, lo, hi)


@BOUNDED
@given(values=count_arrays(), threshold=st.integers(2, 10))
def test_merging_keeps_every_total(values, threshold):
    params = load_parameters(threshold=threshold)
    table = _table(values)
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
