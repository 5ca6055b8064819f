"""Primary and secondary cell suppression for 1-, 2- and 3-dimensional tables with margins.

Primary suppression hides every cell that fails a suppressible check. Secondary suppression
then hides more cells so that no primary cell can be recovered, or narrowed to an interval
narrower than its protection width, from everything still published (cells and margins).

Method: the hypercube method (Repsilber's GHMITER, as in tau-Argus), on the table extended
with its margins. Write every cell with an odd number of `Total` coordinates with a minus
sign; then every line of the extended table sums to zero, and adding +d/-d on the 2^N
corners of any N-dimensional box (alternating signs) keeps every published relation. If
all corners of such a box are suppressed, an attacker cannot tell the true table from the
one moved by d, for every d that keeps the interior cells non-negative, so the primary
cell's interval is at least as wide as that range of d. For each primary cell in turn we
choose, among all boxes with the cell as a corner, the cheapest one (fewest and smallest
newly suppressed cells; margins only when unavoidable) whose range reaches the protection
width. A box whose other corners are all margins always qualifies, so every primary cell
is protected. `intervals.build_attacker_intervals` is the independent LP audit.
"""

from __future__ import annotations

import itertools

import numpy as np

from tre.output_check.kinds import SUPPRESSIBLE, Check
from tre.output_check.parameters import Parameters
from tre.output_check.tables import Table, interior_mask


def build_primary_mask(findings: dict[Check, np.ndarray], shape: tuple[int, ...]) -> np.ndarray:
    """Cells that fail a check a suppression remedies."""
    mask = np.zeros(shape, dtype=bool)
    for check, cells in findings.items():
        if check in SUPPRESSIBLE:
            mask |= cells
    return mask


def protection_values(table: Table) -> np.ndarray:
    """The additive quantity the published relations hold for: counts, or sums of values."""
    if table.statistic in ("count", "rate") or table.total is None:
        return table.count.astype(float)
    return table.total.astype(float)


def required_widths(table: Table, params: Parameters) -> np.ndarray:
    """How wide the attacker's interval must be for each cell, in `protection_values` units."""
    if table.statistic in ("count", "rate") or table.total is None:
        return np.full(table.shape, float(params.protection_width))
    width = params.magnitude_protection * np.abs(table.total)
    return np.where(width > 0, width, 1.0)


def build_secondary_mask(values: np.ndarray, primary: np.ndarray, widths: np.ndarray) -> np.ndarray:
    """The cells to suppress besides `primary` so that every primary cell is protected.

    `values` are the true extended values (interior cells non-negative, margins their sums);
    `widths` the protection width each primary cell needs.
    """
    values = np.asarray(values, dtype=float)
    shape = values.shape
    suppressed = primary.copy()
    interior = interior_mask(shape)
    flip = _flip_signs(shape)
    margin_penalty = values[interior].sum() + 1.0
    cost = 1.0 + np.abs(values) + np.where(interior, 0.0, margin_penalty)
    anchors = sorted(zip(*np.nonzero(primary), strict=True), key=lambda p: (-widths[p], p))
    for anchor in anchors:
        anchor = tuple(int(i) for i in anchor)
        for corner in _best_hypercube(anchor, values, interior, flip, suppressed, cost, widths[anchor]):
            suppressed[corner] = True
    return suppressed & ~primary


def _flip_signs(shape) -> np.ndarray:
    totals = np.zeros(shape, dtype=np.int64)
    for axis, n in enumerate(shape):
        index = [slice(None)] * len(shape)
        index[axis] = n - 1
        totals[tuple(index)] += 1
    return np.where(totals % 2 == 1, -1, 1)


def _best_hypercube(anchor, values, interior, flip, suppressed, cost, width) -> list[tuple[int, ...]]:
    """The corners of the cheapest box through `anchor` whose range of moves reaches `width`."""
    shape = values.shape
    ndim = len(shape)
    valid = np.ones(shape, dtype=bool)
    for axis, n in enumerate(shape):
        ok = np.arange(n) != anchor[axis]
        valid &= ok.reshape([-1 if a == axis else 1 for a in range(ndim)])
    up = np.full(shape, np.inf)  # how far the anchor can rise
    down = np.full(shape, np.inf)  # how far it can fall
    extra = np.zeros(shape)
    anchor_flip = flip[anchor]
    for pattern in itertools.product((0, 1), repeat=ndim):
        index = np.ix_(
            *[np.arange(n) if e else np.array([anchor[a]]) for a, (e, n) in enumerate(zip(pattern, shape, strict=True))]
        )
        sign = (-1) ** sum(pattern) * flip[index] * anchor_flip
        inside = interior[index]
        v = values[index]
        up = np.minimum(up, np.where(inside & (sign < 0), v, np.inf))
        down = np.minimum(down, np.where(inside & (sign > 0), v, np.inf))
        if any(pattern):
            extra = extra + np.where(suppressed[index], 0.0, cost[index])
    reach = up + down
    feasible = valid & (reach >= width - 1e-9)
    if not feasible.any():  # cannot happen: a box of margins has unbounded reach
        raise AssertionError("no protecting hypercube")
    # cheapest first; among equals, the widest protection; then the first in index order
    score = np.where(feasible, extra, np.inf)
    best_cost = score.min()
    tied = np.flatnonzero((score == best_cost).ravel())
    choice = tied[np.argmax(np.minimum(reach.ravel()[tied], 1e300))]
    other = np.unravel_index(choice, shape)
    return [
        tuple(int(other[a]) if e else anchor[a] for a, e in enumerate(pattern))
        for pattern in itertools.product((0, 1), repeat=ndim)
    ]
