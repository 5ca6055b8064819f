"""Secondary suppression across linked tables (municipality ⊂ county ⊂ country, sex, nested age
bands): nothing hidden can be worked out from everything published together."""

import os

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from tre.output_check.linked import (
    Hierarchy,
    LinkedCube,
    aggregate,
    build_linked_intervals,
    check_sums,
    protect_linked,
)
from tre.output_check.tables import TableError

BOUNDED = settings(
    max_examples=int(os.environ.get("TRE_HYPOTHESIS_EXAMPLES", "40")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)

SEX = Hierarchy.build("sex", [("0", None), ("1", "0"), ("2", "0")])
AGES = Hierarchy.build("age", [("67+", None), ("67-79", "67+"), ("80+", "67+"), ("80-89", "80+"), ("90+", "80+")])


def regions(counties: list[int]) -> Hierarchy:
    """A country of counties with the given numbers of municipalities each."""
    pairs = [("0", None)]
    for c, n in enumerate(counties):
        pairs.append((f"c{c}", "0"))
        pairs += [(f"m{c}-{m}", f"c{c}") for m in range(n)]
    return Hierarchy.build("region", pairs)


def leaves_only(values: np.ndarray, hierarchies) -> np.ndarray:
    mask = np.ones(values.shape, dtype=bool)
    for axis, h in enumerate(hierarchies):
        leaf = np.array([not h.children[i] for i in range(len(h.codes))])
        mask &= leaf.reshape([-1 if a == axis else 1 for a in range(values.ndim)])
    return aggregate(np.where(mask, values, 0), hierarchies)


@st.composite
def cubes(draw):
    counties = draw(st.lists(st.integers(1, 4), min_size=1, max_size=3))
    nested = draw(st.booleans())
    hierarchies = [regions(counties), SEX] + ([AGES] if nested else [])
    shape = tuple(len(h.codes) for h in hierarchies)
    raw = draw(st.lists(st.integers(0, 14), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    values = leaves_only(np.array(raw, dtype=float).reshape(shape), hierarchies)
    slack = draw(st.lists(st.integers(0, 30), min_size=int(np.prod(shape)), max_size=int(np.prod(shape))))
    population = leaves_only(values + np.array(slack, dtype=float).reshape(shape), hierarchies)
    return hierarchies, values, population


@BOUNDED
@given(case=cubes(), threshold=st.integers(3, 6), bounded=st.booleans())
def test_no_hidden_cell_can_be_narrowed_from_all_tables_together(case, threshold, bounded):
    hierarchies, values, population = case
    upper = population if bounded else None
    primary = (values > 0) & (values < threshold)
    widths = np.full(values.shape, float(threshold))
    result = protect_linked(values, primary, widths, hierarchies, upper=upper)
    assert (result.hidden >= primary).all()
    published = ~result.hidden
    assert not ((values > 0) & (values < threshold) & published).any()
    # an independent look: every hidden cell's interval from everything published, linked
    cube = LinkedCube(values, hierarchies, upper)
    cells = [tuple(int(i) for i in c) for c in zip(*np.nonzero(result.hidden), strict=True)]
    for cell, (lo, hi) in build_linked_intervals(cube, result.hidden, cells).items():
        assert lo - 1e-6 <= values[cell] <= hi + 1e-6
        possible = min(threshold, cube.cap[cell])
        if primary[cell]:
            assert hi - lo >= possible - 1e-6, (cell, lo, hi)
        elif cube.cap[cell] > 0:
            assert hi - lo > 1e-6, (cell, lo, hi)


def test_a_municipality_cannot_be_had_as_its_county_minus_the_rest():
    hierarchies = [regions([3]), SEX]
    # rows: the country, the county, its three municipalities; columns: both sexes, men, women
    values = leaves_only(np.array([[0, 0, 0], [0, 0, 0], [0, 20, 30], [0, 2, 9], [0, 15, 12]], float), hierarchies)
    primary = (values > 0) & (values < 5)
    result = protect_linked(values, primary, np.full(values.shape, 5.0), hierarchies)
    small = (hierarchies[0].index("m0-1"), SEX.index("1"))
    assert result.hidden[small]
    # its sibling in the same column or its own margin is hidden too, so the county row minus
    # the published rest does not give it
    column = result.hidden[[hierarchies[0].index("m0-0"), hierarchies[0].index("m0-2")], SEX.index("1")]
    assert column.any() and result.hidden[hierarchies[0].index("m0-1")].sum() >= 2
    assert result.audit.under_protected == []


def test_a_county_with_one_municipality_hides_both_or_neither():
    hierarchies = [regions([1, 3]), SEX]
    rng = np.random.default_rng(3)
    values = rng.integers(6, 40, size=(7, 3)).astype(float)
    values[hierarchies[0].index("m0-0")] = [0, 3, 20]
    values = leaves_only(values, hierarchies)
    primary = (values > 0) & (values < 5)
    result = protect_linked(values, primary, np.full(values.shape, 5.0), hierarchies)
    region = hierarchies[0]
    assert (result.hidden[region.index("c0")] == result.hidden[region.index("m0-0")]).all()


def test_cells_are_checked_to_add_up():
    hierarchies = [regions([2]), SEX]
    values = leaves_only(np.ones((4, 3)), hierarchies)
    values[0, 0] += 1
    with pytest.raises(TableError, match="not the sum of its children"):
        check_sums(values, hierarchies)


def test_a_hierarchy_is_a_tree():
    with pytest.raises(TableError, match="exactly one root"):
        Hierarchy.build("x", [("a", None), ("b", None)])
    with pytest.raises(TableError, match="unknown parent"):
        Hierarchy.build("x", [("a", None), ("b", "z")])
    with pytest.raises(TableError, match="own ancestor"):
        Hierarchy.build("x", [("r", None), ("a", "b"), ("b", "a")])
