"""The LP audit: what an attacker can learn about each hidden cell from what is published.

For every suppressed (or rounded) cell, minimise and maximise its value subject to every
published value, margins included, and non-negativity of the cells (`scipy.optimize.linprog`
with HiGHS). A published rounded value is known only to lie in its rounding interval. The
unknown cells are split into independent groups first (cells linked by a published margin),
so each linear programme is small.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable
from dataclasses import dataclass, field

import numpy as np
from scipy.optimize import linprog
from scipy.sparse import csr_matrix

from tre.output_check.suppression import Box, box_reach, build_box_moves, flip_signs, hypercube_corners
from tre.output_check.tables import interior_mask

EXACT = 1e-6  # an interval narrower than this is an exact recovery


def _slice(index: tuple[int, ...], shape: tuple[int, ...]) -> tuple:
    """The interior cells an extended cell sums: all categories on its Total axes."""
    return tuple(slice(0, n - 1) if i == n - 1 else i for i, n in zip(index, shape, strict=True))


def build_attacker_intervals(
    values: np.ndarray,
    hidden: np.ndarray,
    *,
    bounds: dict[tuple[int, ...], tuple[float, float]] | None = None,
    nonnegative: bool = True,
    targets: np.ndarray | None = None,
) -> dict[tuple[int, ...], tuple[float, float]]:
    """The interval an attacker can narrow each hidden cell to.

    `values` are the true extended values; `hidden` marks cells not published. `bounds`
    gives published cells that are known only within an interval (rounded values); every
    other cell not hidden is published exactly. `targets` (default: the hidden cells) are
    the cells whose interval is computed.
    """
    values = np.asarray(values, dtype=float)
    shape = values.shape
    bounds = bounds or {}
    inside = interior_mask(shape)
    inner_shape = tuple(n - 1 for n in shape)
    inner_values = values[tuple(slice(0, n) for n in inner_shape)]
    inner_hidden = hidden[tuple(slice(0, n) for n in inner_shape)].copy()
    for index in bounds:
        if inside[index]:
            inner_hidden[index] = True
    var_id = np.full(inner_shape, -1, dtype=np.int64)
    var_id[inner_hidden] = np.arange(int(inner_hidden.sum()))
    n_vars = int(inner_hidden.sum())
    known = np.where(inner_hidden, 0.0, inner_values)

    var_lower = np.full(n_vars, 0.0 if nonnegative else -np.inf)
    var_upper = np.full(n_vars, np.inf)
    for index, (lo, hi) in bounds.items():
        if inside[index]:
            var = var_id[index]
            var_lower[var] = max(var_lower[var], lo)
            var_upper[var] = min(var_upper[var], hi)

    # published margins become constraints on the unknown cells in their slice
    rows: list[tuple[np.ndarray, float, float]] = []
    for index in zip(*np.nonzero(~inside & ~hidden), strict=True):
        index = tuple(int(i) for i in index)
        region = _slice(index, shape)
        ids = var_id[region].ravel()
        ids = ids[ids >= 0]
        if ids.size == 0:
            continue
        const = known[region].sum()
        lo, hi = bounds.get(index, (values[index], values[index]))
        rows.append((ids, lo - const, hi - const))

    component = _components(n_vars, (ids for ids, _, _ in rows))
    out: dict[tuple[int, ...], tuple[float, float]] = {}
    targets = hidden if targets is None else targets
    targets = [tuple(int(i) for i in t) for t in zip(*np.nonzero(targets), strict=True)]
    problems = _Problems(rows, component, var_lower, var_upper)
    for target in targets:
        region = _slice(target, shape)
        ids = var_id[region].ravel()
        ids = ids[ids >= 0]
        const = known[region].sum()
        lo = hi = const
        for comp in np.unique(component[ids]) if ids.size else []:
            members = ids[component[ids] == comp]
            a, b = problems.range(comp, members)
            lo, hi = lo + a, hi + b
        out[target] = (lo, hi)
    return out


class _Problems:
    """One small linear programme per group of linked unknown cells."""

    def __init__(self, rows, component, lower, upper):
        self.component = component
        self.lower, self.upper = lower, upper
        self.members: dict[int, np.ndarray] = {}
        self._cache: dict[int, tuple] = {}
        self.rows: dict[int, list] = {}
        for comp in np.unique(component) if component.size else []:
            self.members[int(comp)] = np.flatnonzero(component == comp)
            self.rows[int(comp)] = []
        for ids, lo, hi in rows:
            self.rows[int(component[ids[0]])].append((ids, lo, hi))

    def range(self, comp: int, targets: np.ndarray) -> tuple[float, float]:
        members = self.members[int(comp)]
        a_eq, b_eq, a_ub, b_ub, bounds, position = self._matrices(int(comp))
        objective = np.zeros(len(members))
        np.add.at(objective, position[targets], 1.0)
        return objective_range(
            objective,
            lambda c: linprog(c, A_eq=a_eq, b_eq=b_eq, A_ub=a_ub, b_ub=b_ub, bounds=bounds, method="highs"),
            "LP audit",
        )

    def _matrices(self, comp: int):
        """The component's constraints as sparse matrices, built once and reused per target."""
        if comp in self._cache:
            return self._cache[comp]
        members = self.members[comp]
        position = np.full(len(self.component), -1, dtype=np.int64)
        position[members] = np.arange(len(members))
        eq, ub = ([], [], []), ([], [], [])
        b_eq, b_ub = [], []
        for ids, lo, hi in self.rows[comp]:
            cols = position[ids]
            if hi - lo <= 0:
                rows, data, cs = eq
                rows.extend([len(b_eq)] * len(cols))
                data.extend([1.0] * len(cols))
                cs.extend(cols.tolist())
                b_eq.append(lo)
            else:
                rows, data, cs = ub
                for sign, rhs in ((1.0, hi), (-1.0, -lo)):
                    rows.extend([len(b_ub)] * len(cols))
                    data.extend([sign] * len(cols))
                    cs.extend(cols.tolist())
                    b_ub.append(rhs)
        n = len(members)
        a_eq = csr_matrix((eq[1], (eq[0], eq[2])), shape=(len(b_eq), n)) if b_eq else None
        a_ub = csr_matrix((ub[1], (ub[0], ub[2])), shape=(len(b_ub), n)) if b_ub else None
        bounds = [
            (None if np.isinf(a) else a, None if np.isinf(b) else b)
            for a, b in zip(self.lower[members], self.upper[members], strict=True)
        ]
        self._cache[comp] = (a_eq, b_eq or None, a_ub, b_ub or None, bounds, position)
        return self._cache[comp]


def objective_range(objective: np.ndarray, solve, what: str) -> tuple[float, float]:
    """The smallest and largest value of `objective` @ x over the feasible x, by `solve(c)`
    (a linear programme minimising c @ x); an unbounded side is infinite."""
    result = []
    for sense in (1.0, -1.0):
        solved = solve(sense * objective)
        if solved.status == 3:  # unbounded
            result.append(-sense * np.inf)
        elif solved.status != 0:
            raise AssertionError(f"{what}: linear programme failed: {solved.message}")
        else:
            result.append(sense * solved.fun)
    return result[0], result[1]


def _components(n: int, groups: Iterable[np.ndarray]) -> np.ndarray:
    parent = np.arange(n)

    def find(x):
        while parent[x] != x:
            parent[x] = parent[parent[x]]
            x = parent[x]
        return x

    for ids in groups:
        root = find(int(ids[0]))
        for v in ids[1:]:
            other = find(int(v))
            if other != root:
                parent[other] = root
    return np.array([find(i) for i in range(n)], dtype=np.int64)


def find_under_protected(
    intervals: dict[tuple[int, ...], tuple[float, float]],
    widths: np.ndarray,
    primary: np.ndarray,
) -> list[tuple[int, ...]]:
    """Hidden cells the attacker narrows too far: primary cells below their width, any cell exactly."""
    bad = []
    for index, (lo, hi) in intervals.items():
        width = hi - lo
        if width < EXACT or (primary[index] and width < widths[index] - 1e-6):
            bad.append(index)
    return bad


@dataclass
class RoundingAudit:
    """What the rounding audit found: the cells an attacker narrows too far, and how it knows."""

    flagged: np.ndarray  # cells whose attainable whole numbers span less than they need
    checked: int = 0  # cells audited
    by_moves: int = 0  # ... shown safe by a feasible move of the table
    by_lp: int = 0  # ... that needed the linear programmes
    intervals: dict[tuple[int, ...], tuple[float, float]] = field(default_factory=dict)  # the LP's, when run


def build_rounding_audit(
    values: np.ndarray,
    hidden: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    needs: np.ndarray,
    boxes: Iterable[Box] = (),
) -> RoundingAudit:
    """Which cells an attacker who sees rounded values narrows too far.

    `values` are the true extended counts; `hidden` the cells not published; `lower` and
    `upper` the whole numbers each published (rounded) cell may stand for. `needs` is, per
    cell, how many units its attainable range must span (0: not audited): 1 for a count
    that must not be recovered exactly, the protection width for a suppressed primary cell.

    The attacker knows every published interval, that hidden interior cells are >= 0 and
    that hidden margins are their cells' sums. A cell is safe when two whole-number tables
    that fit all of that give it values `needs` apart. The engine looks for such tables
    cheaply first: the true table moved along a box (+1/-1 on its corners keeps every line
    sum; `boxes` are the hypercubes secondary suppression chose, which normally settle every
    hidden cell), or one cell moved with all its margins; only cells no move settles go to
    the linear programmes of `build_attacker_intervals` (integer span of the LP interval).
    """
    values = np.asarray(values, dtype=float)
    shape = values.shape
    inside = interior_mask(shape)
    known_lo, known_hi = known_ranges(hidden, lower, upper)
    rise, fall = known_hi - values, values - known_lo
    flip = flip_signs(shape)
    targets = needs > 0
    reach = np.zeros(shape)
    for anchor, opposite in boxes:
        width = box_reach(anchor, opposite, rise, fall, flip)
        for corner in hypercube_corners(anchor, opposite):
            reach[corner] = max(reach[corner], width)
    reach = np.where(inside, np.maximum(reach, _own_move_reach(rise, fall)), reach)
    open_cells = targets & (reach < needs - 1e-9)
    for target in zip(*np.nonzero(open_cells), strict=True):
        target = tuple(int(i) for i in target)
        up, down, _ = build_box_moves(target, rise, fall, flip)
        # two feasible tables, one with the cell up.max() higher, one down.max() lower
        reach[target] = max(reach[target], up.max() + down.max())
    unsettled = targets & (reach < needs - 1e-9)
    audit = RoundingAudit(
        flagged=np.zeros(shape, dtype=bool),
        checked=int(targets.sum()),
        by_moves=int((targets & ~unsettled).sum()),
        by_lp=int(unsettled.sum()),
    )
    if not unsettled.any():
        return audit
    # a published cell whose interval is one number (a midpoint-rounded 0) is known exactly
    rounded = ~hidden & (upper > lower)
    bounds = {
        tuple(int(i) for i in index): (float(lower[index]), float(upper[index]))
        for index in zip(*np.nonzero(rounded), strict=True)
    }
    audit.intervals = build_attacker_intervals(values, hidden, bounds=bounds, targets=unsettled)
    for index, (lo, hi) in audit.intervals.items():
        span = np.floor(hi + EXACT) - np.ceil(lo - EXACT)  # the whole numbers the attacker cannot rule out
        audit.flagged[index] = span < needs[index] - 1e-9
    return audit


def known_ranges(hidden: np.ndarray, lower: np.ndarray, upper: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """What an attacker knows of each extended cell on its own: a published cell's rounding
    interval; a hidden cell >= 0 (or anything, for a margin: it is its cells' sum)."""
    inside = interior_mask(hidden.shape)
    return np.where(hidden, np.where(inside, 0.0, -np.inf), lower), np.where(hidden, np.inf, upper)


def _own_move_reach(rise: np.ndarray, fall: np.ndarray) -> np.ndarray:
    """Per interior cell, how far it can move with every margin it is part of (all at once)."""
    shape = rise.shape
    up = np.full(tuple(n - 1 for n in shape), np.inf)
    down = up.copy()
    for pattern in itertools.product((0, 1), repeat=len(shape)):
        index = tuple(slice(n - 1, n) if e else slice(0, n - 1) for e, n in zip(pattern, shape, strict=True))
        up = np.minimum(up, rise[index])
        down = np.minimum(down, fall[index])
    out = np.zeros(shape)
    out[tuple(slice(0, n - 1) for n in shape)] = up + down
    return out
