"""Properties of counting persons and of the release ledger, on random cohorts.

- No published cell stands for 1 to threshold-1 persons, however many records they have.
- Nothing hidden or small is recoverable from the ledger and a new output together: an
  attacker of the tests' own (an LP over every combination of attribute values, knowing what
  every published cell means) pins no group of 1 to threshold-1 persons that the earlier
  releases alone did not already pin.

`TRE_HYPOTHESIS_EXAMPLES=2000` runs each property on more cohorts than CI does.
"""

import itertools
import os

import numpy as np
import pandas as pd
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from ledger_scenarios import Project, attack, pinned_small, view

from tre.output_check import build_table, build_table_report, load_parameters

BOUNDED = settings(
    max_examples=int(os.environ.get("TRE_HYPOTHESIS_EXAMPLES", "20")),
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)


@st.composite
def record_tables(draw):
    persons = draw(st.integers(3, 40))
    records = draw(st.lists(st.tuples(st.integers(0, persons - 1), st.integers(0, 2), st.integers(0, 1)), min_size=1,
                            max_size=120))  # fmt: skip
    frame = pd.DataFrame(records, columns=["person", "a", "b"]).astype(str)
    return frame


@BOUNDED
@given(frame=record_tables(), threshold=st.integers(2, 6))
def test_no_published_cell_stands_for_fewer_persons_than_the_threshold(frame, threshold):
    params = load_parameters(threshold=threshold)
    table = build_table(frame, ["a", "b"], unit="person")
    report = build_table_report(table, params, method="suppress", audit=False).as_dict()
    for index, cell in zip(table.cells(), report["cells"], strict=True):
        persons = int(table.units[index])
        if cell["published"] is not None:
            assert not 0 < persons < threshold, cell


@st.composite
def cohorts(draw):
    n = draw(st.integers(20, 90))
    seed = draw(st.integers(0, 10_000))
    rng = np.random.default_rng(seed)
    excluded = draw(st.integers(1, 4))
    frame = pd.DataFrame(
        {
            "pseudonym": [f"H{seed}-{i}" for i in range(n)],
            "a": rng.choice(["a0", "a1", "a2"], n, p=[0.5, 0.3, 0.2]),
            "b": rng.choice(["b0", "b1", "b2"], n),
            "f": np.r_[np.ones(excluded, dtype=bool), np.zeros(n - excluded, dtype=bool)],
        }
    )
    return frame


TABLES = [["a"], ["b"], ["a", "b"]]
ROWS = [None, {"f": [False]}, {"f": [True]}]


@pytest.mark.slow
@BOUNDED
@given(
    people=cohorts(),
    first=st.sampled_from(list(itertools.product(range(3), range(2)))),
    second=st.sampled_from(list(itertools.product(range(3), range(3)))),
    rounded=st.booleans(),
)
def test_nothing_small_is_recovered_from_the_ledger_and_a_new_output(people, first, second, rounded):
    project = Project(people)
    project.release(project.make(TABLES[first[0]], rows=ROWS[first[1]], method="midpoint6" if rounded else "suppress"))
    new = project.make(TABLES[second[0]], rows=ROWS[second[1]])
    before = list(project.published)
    after = before + [view(new)]
    groups = [
        {name: [value] for name, value in zip(names, values, strict=True)}
        for names in (["a", "b", "f"], ["a", "f"], ["b", "f"], ["a", "b"], ["f"])
        for values in itertools.product(*[sorted(people[n].unique()) for n in names])
    ]
    for group in groups:
        size = np.all([people[k].isin(v) for k, v in group.items()], axis=0).sum()
        if not 0 < size < 5:
            continue
        if pinned_small(attack(people, ["a", "b", "f"], before, group), 5):
            continue  # the earlier release alone gives it (or rounding shows it small by design)
        interval = attack(people, ["a", "b", "f"], after, group)
        exact = np.floor(interval[1] + 1e-6) - np.ceil(interval[0] - 1e-6) < 1
        assert not (exact if rounded else pinned_small(interval, 5)), (group, interval)
