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
newly suppressed cells, weighed by their values; margins only when unavoidable, the grand
total only when nothing else will do) whose range reaches the protection width. A box whose other corners are all margins always qualifies, so every primary cell
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


Box = tuple[tuple[int, ...], tuple[int, ...]]  # a hypercube: its anchor and the opposite corner


def build_secondary_mask(
    values: np.ndarray,
    primary: np.ndarray,
    widths: np.ndarray,
    *,
    suppressed: np.ndarray | None = None,
    fixed: np.ndarray | None = None,
) -> np.ndarray:
    """The cells to suppress besides `primary` so that every primary cell is protected.

    `values` are the true extended values (interior cells non-negative, margins their sums);
    `widths` the protection width each primary cell needs; `suppressed` cells already hidden
    (free to use as corners); `fixed` cells whose value everyone knows (structural zeros):
    hiding them protects nothing, so they are never chosen.
    """
    boxes = build_hypercubes(values, primary, widths, suppressed=suppressed, fixed=fixed)
    return build_corner_mask(values.shape, boxes) & ~primary


def build_hypercubes(
    values: np.ndarray,
    primary: np.ndarray,
    widths: np.ndarray,
    *,
    suppressed: np.ndarray | None = None,
    fixed: np.ndarray | None = None,
) -> list[Box]:
    """One protecting box per primary cell (largest width first), each chosen given the others."""
    values = np.asarray(values, dtype=float)
    shape = values.shape
    hidden = primary.copy() if suppressed is None else primary | suppressed
    interior = interior_mask(shape)
    flip = flip_signs(shape)
    margin_penalty = values[interior].sum() + 1.0
    cost = 1.0 + np.abs(values) + np.where(interior, 0.0, margin_penalty)
    # the grand total last of all: dearer than any box of other cells (a box has 2^N corners)
    cost[tuple(n - 1 for n in shape)] += 2 ** len(shape) * (margin_penalty + np.abs(values).max())
    rise = np.full(shape, np.inf)  # a suppressed cell can rise without limit ...
    fall = np.where(interior, values, np.inf)  # ... and an interior one fall to zero
    if fixed is not None:  # ... but not a cell whose value everyone knows
        rise = np.where(fixed, 0.0, rise)
        fall = np.where(fixed, 0.0, fall)
    boxes = []
    anchors = sorted(zip(*np.nonzero(primary), strict=True), key=lambda p: (-widths[p], p))
    for anchor in anchors:
        anchor = tuple(int(i) for i in anchor)
        opposite = _best_hypercube(anchor, rise, fall, flip, hidden, cost, widths[anchor])
        for corner in hypercube_corners(anchor, opposite):
            hidden[corner] = True
        boxes.append((anchor, opposite))
    return boxes


def build_corner_mask(shape: tuple[int, ...], boxes: list[Box]) -> np.ndarray:
    """Every corner of every box."""
    mask = np.zeros(shape, dtype=bool)
    for anchor, opposite in boxes:
        for corner in hypercube_corners(anchor, opposite):
            mask[corner] = True
    return mask


def hypercube_corners(anchor: tuple[int, ...], opposite: tuple[int, ...]) -> list[tuple[int, ...]]:
    """The 2^N corners of the box spanned by two opposite corners, the anchor first."""
    return [
        tuple(opposite[a] if e else anchor[a] for a, e in enumerate(pattern))
        for pattern in itertools.product((0, 1), repeat=len(anchor))
    ]


def flip_signs(shape) -> np.ndarray:
    """-1 on cells with an odd number of `Total` coordinates: then every line sums to zero."""
    totals = np.zeros(shape, dtype=np.int64)
    for axis, n in enumerate(shape):
        index = [slice(None)] * len(shape)
        index[axis] = n - 1
        totals[tuple(index)] += 1
    return np.where(totals % 2 == 1, -1, 1)


def build_box_moves(anchor, rise, fall, flip, cost=None) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """For every box through `anchor` (indexed by its opposite corner), how far the anchor can
    rise and fall when the box moves, given how far each cell can `rise` and `fall`; and,
    with `cost`, what the box's other corners cost.

    Moving the box by d moves each corner by +d or -d (alternating, times `flip`) and keeps
    every line sum. Degenerate boxes (sharing a coordinate with the anchor) move nothing: 0.
    """
    shape = rise.shape
    ndim = len(shape)
    up = np.full(shape, np.inf)
    down = np.full(shape, np.inf)
    extra = np.zeros(shape)
    for pattern in itertools.product((0, 1), repeat=ndim):
        # the corner that takes the opposite corner's coordinate on the axes marked 1, as views
        index = tuple(slice(None) if e else slice(anchor[a], anchor[a] + 1) for a, e in enumerate(pattern))
        same = flip[index] * ((-1) ** sum(pattern) * flip[anchor]) > 0  # moves with the anchor
        r, f = rise[index], fall[index]
        up = np.minimum(up, np.where(same, r, f))
        down = np.minimum(down, np.where(same, f, r))
        if cost is not None and any(pattern):
            extra = extra + cost[index]
    valid = np.ones(shape, dtype=bool)
    for axis, n in enumerate(shape):
        ok = np.arange(n) != anchor[axis]
        valid &= ok.reshape([-1 if a == axis else 1 for a in range(ndim)])
    return np.where(valid, up, 0.0), np.where(valid, down, 0.0), extra


def box_reach(anchor, opposite, rise, fall, flip) -> float:
    """How far one box can move in all (the width of the range it gives each of its corners)."""
    up = down = np.inf
    for sign_pattern, corner in zip(
        itertools.product((0, 1), repeat=len(anchor)), hypercube_corners(anchor, opposite), strict=True
    ):
        same = (-1) ** sum(sign_pattern) * flip[corner] * flip[anchor] > 0
        up = min(up, rise[corner] if same else fall[corner])
        down = min(down, fall[corner] if same else rise[corner])
    return up + down


def _best_hypercube(anchor, rise, fall, flip, suppressed, cost, width) -> tuple[int, ...]:
    """The opposite corner of the cheapest box through `anchor` whose moves reach `width`."""
    shape = rise.shape
    up, down, extra = build_box_moves(anchor, rise, fall, flip, np.where(suppressed, 0.0, cost))
    reach = up + down
    feasible = (reach > 0) & (reach >= width - 1e-9)
    if not feasible.any():  # cannot happen: a box of margins has unbounded reach
        raise AssertionError("no protecting hypercube")
    # cheapest first; among equals, the widest protection; then the first in index order
    score = np.where(feasible, extra, np.inf)
    best_cost = score.min()
    tied = np.flatnonzero((score == best_cost).ravel())
    choice = tied[np.argmax(np.minimum(reach.ravel()[tied], 1e300))]
    return tuple(int(i) for i in np.unravel_index(choice, shape))
