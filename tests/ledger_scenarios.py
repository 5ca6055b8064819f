"""Releases made the way tre.safe makes them, and an attacker over everything published.

`Project` makes outputs from a person-level cohort through `outputs.build_table_output` (the
function the kernel and the central check both run) with the project's ledger, and
"releases" them into the ledger as the review workflow does (`central.ledger_entry_of`).

`attack` is an attacker of its own, written apart from the engine: it knows the meaning of
every published cell (which attribute values and which filter define it), takes as unknowns
the counts (or sums) of every combination of attribute values, and solves linear programmes
for the groups it wants (scipy's HiGHS).
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass, field

import numpy as np
import pandas as pd
from scipy.optimize import linprog

from tre.output_check import load_parameters
from tre.output_check.central import ledger_entry_of
from tre.output_check.outputs import person_table_output
from tre.output_check.rounding import rounding_interval
from tre.output_check.tables import category_label

TOTAL = "Total"


@dataclass
class Published:
    """One published table as an attacker reads it."""

    dims: list[str]
    rows: dict | None  # the table's population: {attribute: allowed values}, None for everyone
    cells: dict  # key (tuple, "Total" for a margin) -> (low, high) or None when hidden
    value: str | None = None  # the summed column, None for counts


@dataclass
class Project:
    people: pd.DataFrame  # one row per person: pseudonym and attributes
    threshold: int = 5
    ledger: list = field(default_factory=list)
    published: list = field(default_factory=list)

    @property
    def params(self):
        return load_parameters(threshold=self.threshold)

    def make(self, dims, *, rows=None, value=None, statistic=None, method="suppress", structural_zeros=()):
        """An output of the persons `rows` ({attribute: allowed values}; everyone by default) by `dims`."""
        data = self.people[select(self.people, rows)]
        made = person_table_output(
            data, dims, self.params, value=value, statistic=statistic, method=method,
            structural_zeros=structural_zeros, ledger=self.ledger,
        )  # fmt: skip
        made.extra.update(dims=list(dims), rows=rows, value=value)
        return made

    def release(self, made, name=None):
        """Into the ledger (as the review workflow's release writes it) and the attacker's view."""
        name = name or f"REQ-{len(self.ledger) + 1}/t"
        entry = ledger_entry_of(made, self.params, name, name.split("/")[0], made.extra.get("value") or "")
        assert entry is not None
        self.ledger.append(entry)
        self.published.append(view(made))
        return entry


def view(made) -> Published:
    """What a reader sees of a table output: each cell's value or rounding interval."""
    data = made.report.as_dict()
    params = made.report.parameters
    method = data.get("method")
    base = params.midpoint_base if method == "midpoint6" else params.round_base
    dims = made.extra["dims"]
    cells = {}
    for cell in data["cells"]:
        if cell["status"] == "merged":
            continue
        key = tuple(cell["key"][d] for d in dims)
        value = cell["published"]
        if value is None:
            cells[key] = None
        elif cell["status"] == "rounded":
            cells[key] = rounding_interval(float(value), method, base)
        else:
            cells[key] = (float(value), float(value))
    return Published(dims, made.extra["rows"], cells, made.extra.get("value"))


def attack(people: pd.DataFrame, base: list[str], tables: list[Published], target: dict, derived=None):
    """The attacker's interval for the number of persons in `target` (or the sum of the tables'
    value there, for tables of sums).

    Unknowns: one per combination of the `base` attributes' values (the attacker knows every
    domain); `derived` attributes are functions of one base attribute (a county of its
    municipality, a diagnosis group of its code), which the attacker knows too. A table's
    filter and target must be functions of the attributes. Every published cell (a value or a
    rounding interval) is the sum of the combinations it covers; counts and sums are >= 0.
    """
    derived = derived or {}
    labels = pd.DataFrame({a: people[a].map(category_label) for a in [*base, *derived]})
    domains = [sorted(labels[a].unique()) for a in base]
    combos = pd.DataFrame(list(itertools.product(*domains)), columns=base)
    for name, source in derived.items():
        mapping = labels.drop_duplicates(source).set_index(source)[name]
        combos[name] = combos[source].map(mapping)

    def covered(where: dict | None) -> np.ndarray:
        """The combinations a filter ({attribute: allowed values}, None for everyone) covers."""
        inside = np.ones(len(combos), dtype=bool)
        for attribute, values in (where or {}).items():
            inside &= combos[attribute].isin([category_label(v) for v in values]).to_numpy()
        return inside

    rows, lower, upper = [], [], []
    for table in tables:
        inside = covered(table.rows)
        for key, bounds in table.cells.items():
            if bounds is None:
                continue
            cell = inside.copy()
            for dim, label in zip(table.dims, key, strict=True):
                if label != TOTAL:
                    cell &= (combos[dim] == label).to_numpy()
            rows.append(cell.astype(float))
            lower.append(bounds[0])
            upper.append(bounds[1])
    a = np.array(rows)
    objective = covered(target).astype(float)
    out = []
    for sense in (1, -1):
        result = linprog(
            sense * objective,
            A_ub=np.vstack([a, -a]),
            b_ub=np.r_[np.array(upper) + 1e-6, -np.array(lower) + 1e-6],
            bounds=(0, None),
            method="highs",
        )
        out.append(-np.inf * sense if result.status == 3 else sense * result.fun)
    return out[0], out[1]


def pinned_small(interval, threshold) -> bool:
    """The attacker knows the group holds 1 to threshold-1 persons."""
    low, high = np.ceil(interval[0] - 1e-6), np.floor(interval[1] + 1e-6)
    return low >= 1 and high <= threshold - 1


def cohort(n: int, seed: int = 0, **columns) -> pd.DataFrame:
    """n persons with pseudonyms and the given attribute columns (each a function of rng, n)."""
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"pseudonym": [f"P{seed:02d}{i:06d}" for i in range(n)]})
    for name, make in columns.items():
        frame[name] = make(rng, n)
    return frame


def select(people: pd.DataFrame, where: dict | None) -> np.ndarray:
    """The persons a filter {attribute: allowed values} selects."""
    mask = np.ones(len(people), dtype=bool)
    for attribute, values in (where or {}).items():
        mask &= people[attribute].isin(list(values)).to_numpy()
    return mask


def recovered(interval) -> bool:
    """The attacker knows the group's size exactly (and it is not empty)."""
    low, high = np.ceil(interval[0] - 1e-6), np.floor(interval[1] + 1e-6)
    return high - low < 1 and low >= 1
