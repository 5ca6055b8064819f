"""Secondary suppression across tables that share margins: dimensions whose codes nest.

Published statistics come as families of tables: a value for every municipality, for every
county (the sum of its municipalities) and for the country; by sex and by age band with their
totals; age bands that nest (67+ holds 67-79 and 80+, and 80+ holds 80-89 and 90+). Each
dimension's codes form a tree, a `Hierarchy`: every parent is the sum of its children. A
*linked cube* holds the true value of every combination of codes, parents included.

One parent per dimension, with its children, gives an ordinary table with margins (the parent
is its `Total`): a *subtable*, laid out as `suppression` expects (the Total last on every
axis). Subtables share cells: a county's row is the margin of the county's table and a row of
the country's. Protecting each subtable on its own is not enough, because a cell hidden in one
and published in another is published.

Method (modular, as tau-Argus' HiTaS): every hidden cell must be protected in every subtable
that holds it. In each subtable, a hidden cell that no box chosen there covers widely enough
gets the cheapest protecting hypercube (`suppression.build_box_moves`); its corners become
hidden, owe the same width, and must in turn be protected wherever else they appear. Passes
over all subtables repeat until nothing changes. A cell costs more to hide the more of its
codes are aggregates, so totals stay published where the cells below them can carry the
protection.

Audit: a box whose corners each belong to one subtable only (every code a leaf or the root)
moves nothing outside it, so its reach proves the width of each corner. Every other hidden
cell gets linear programmes over the whole cube: each parent is the sum of its children, each
cell lies between 0 and its upper bound (a count of persons cannot exceed the published
population). Cells an attacker narrows too far are repaired by more suppression and audited
again. Pure functions over numpy arrays; no database, no I/O.
"""

from __future__ import annotations

import functools
import itertools
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
from scipy.sparse import coo_matrix, csr_matrix
from scipy.sparse.csgraph import connected_components

from tre.output_check.intervals import EXACT
from tre.output_check.suppression import Box, box_reach, build_box_moves, flip_signs, hypercube_corners
from tre.output_check.tables import TableError

Cell = tuple[int, ...]
REPAIR_ROUNDS = 3  # rounds of targeted repair before whole subtables are hidden


@dataclass(frozen=True)
class Hierarchy:
    """A dimension's codes as a tree: `parents[i]` is the index of code i's parent, -1 for the root."""

    name: str
    codes: tuple[str, ...]
    parents: tuple[int, ...]

    @classmethod
    def build(cls, name: str, pairs: Sequence[tuple[str, str | None]]) -> Hierarchy:
        """A hierarchy from (code, parent code) pairs; the root's parent is None."""
        codes = tuple(str(code) for code, _ in pairs)
        position = {code: i for i, code in enumerate(codes)}
        problems = []
        if len(position) != len(codes):
            problems.append("a code is named twice")
        parents = []
        for code, parent in pairs:
            if parent is not None and str(parent) not in position:
                problems.append(f"{code!r} has an unknown parent {parent!r}")
            parents.append(-1 if parent is None or str(parent) not in position else position[str(parent)])
        roots = [codes[i] for i, p in enumerate(parents) if p < 0]
        if len(roots) != 1:
            problems.append(f"needs exactly one root (a code without a parent), has {len(roots)}")
        for start in range(len(codes)):
            node, steps = start, 0
            while node >= 0 and steps <= len(codes):
                node, steps = parents[node], steps + 1
            if node >= 0:
                problems.append(f"{codes[start]!r} is its own ancestor")
                break
        if problems:
            raise TableError(f"hierarchy {name!r}: " + "; ".join(problems))
        return cls(name, codes, tuple(parents))

    @functools.cached_property
    def children(self) -> tuple[tuple[int, ...], ...]:
        kids: list[list[int]] = [[] for _ in self.codes]
        for i, p in enumerate(self.parents):
            if p >= 0:
                kids[p].append(i)
        return tuple(tuple(k) for k in kids)

    @property
    def root(self) -> int:
        return self.parents.index(-1)

    @functools.cached_property
    def internal(self) -> tuple[int, ...]:
        """Codes with children, from the root down."""
        return tuple(sorted((i for i, k in enumerate(self.children) if k), key=lambda i: (self.depth[i], i)))

    @functools.cached_property
    def depth(self) -> tuple[int, ...]:
        out = []
        for i in range(len(self.codes)):
            d, node = 0, self.parents[i]
            while node >= 0:
                d, node = d + 1, self.parents[node]
            out.append(d)
        return tuple(out)

    @functools.cached_property
    def height(self) -> tuple[int, ...]:
        """0 for a leaf, else one more than its highest child."""
        out = [0] * len(self.codes)
        for i in sorted(range(len(self.codes)), key=lambda i: -self.depth[i]):
            if self.children[i]:
                out[i] = 1 + max(out[c] for c in self.children[i])
        return tuple(out)

    @functools.cached_property
    def private(self) -> np.ndarray:
        """Codes in one subtable only along this axis: the leaves and the root."""
        return np.array([not self.children[i] or self.parents[i] < 0 for i in range(len(self.codes))])

    def index(self, code: str) -> int:
        return self.codes.index(code)


def aggregate(values: np.ndarray, hierarchies: Sequence[Hierarchy]) -> np.ndarray:
    """`values` with every parent code filled in as the sum of its children (leaves as given)."""
    out = np.array(values, dtype=float, copy=True)
    for axis, h in enumerate(hierarchies):
        for node in sorted(h.internal, key=lambda i: h.height[i]):
            index = [slice(None)] * out.ndim
            index[axis] = node
            out[tuple(index)] = np.take(out, list(h.children[node]), axis=axis).sum(axis=axis)
    return out


def check_sums(values: np.ndarray, hierarchies: Sequence[Hierarchy], what: str = "the cube") -> None:
    """Raise TableError unless every parent is the sum of its children."""
    _check_shape(values, hierarchies)
    for axis, h in enumerate(hierarchies):
        for node in h.internal:
            kids = np.take(values, list(h.children[node]), axis=axis).sum(axis=axis)
            if not np.allclose(kids, np.take(values, node, axis=axis), rtol=1e-9, atol=1e-6):
                raise TableError(f"{what}: {h.name} {h.codes[node]!r} is not the sum of its children")


def _along(values: np.ndarray, axis: int, ndim: int) -> np.ndarray:
    """A 1-D array shaped to broadcast along `axis` of an `ndim`-dimensional cube."""
    return values.reshape([-1 if a == axis else 1 for a in range(ndim)])


def _check_shape(values: np.ndarray, hierarchies: Sequence[Hierarchy]) -> None:
    shape = tuple(len(h.codes) for h in hierarchies)
    if values.shape != shape:
        raise TableError(f"a cube of shape {values.shape} for hierarchies of sizes {shape}")


class LinkedCube:
    """A cube's subtables and what the search and the audit share about its cells."""

    def __init__(self, values: np.ndarray, hierarchies: Sequence[Hierarchy], upper: np.ndarray | None = None):
        self.hierarchies = tuple(hierarchies)
        self.values = np.asarray(values, dtype=float)
        check_sums(self.values, self.hierarchies)
        if (self.values < -1e-9).any():
            raise TableError("a linked cube holds counts or sums of non-negative contributions: no value below 0")
        self.upper = None if upper is None else np.asarray(upper, dtype=float)
        self.cap = np.full(self.values.shape, np.inf) if self.upper is None else self.upper.copy()
        self.rise = self.cap - self.values
        self.fall = self.values.copy()
        level = sum(
            _along(np.array(h.height, dtype=float), a, len(self.hierarchies)) for a, h in enumerate(self.hierarchies)
        )
        penalty = float(self.values[tuple(h.root for h in self.hierarchies)]) + 1.0
        self.cost = 1.0 + np.abs(self.values) + penalty * level
        self.private = np.ones(self.shape, dtype=bool)
        for a, h in enumerate(self.hierarchies):
            self.private &= _along(h.private, a, len(self.hierarchies))
        parents = [h.internal for h in self.hierarchies]
        combos = sorted(
            itertools.product(*parents), key=lambda c: sum(h.depth[n] for h, n in zip(self.hierarchies, c, strict=True))
        )
        self.parents = combos
        self.tables = [
            tuple(np.array([*h.children[n], n]) for h, n in zip(self.hierarchies, combo, strict=True))
            for combo in combos
        ]
        self._flips: dict[tuple[int, ...], np.ndarray] = {}

    @property
    def shape(self) -> tuple[int, ...]:
        return self.values.shape

    def grid(self, t: int):
        return np.ix_(*self.tables[t])

    def flip(self, shape: tuple[int, ...]) -> np.ndarray:
        if shape not in self._flips:
            self._flips[shape] = flip_signs(shape)
        return self._flips[shape]

    def full(self, t: int, local: Cell) -> Cell:
        return tuple(int(self.tables[t][a][i]) for a, i in enumerate(local))


@dataclass
class LinkedAudit:
    """What an attacker who knows every published value and the bounds can narrow hidden cells to."""

    checked: int = 0  # hidden cells audited
    by_moves: int = 0  # ... proven wide enough by a box that moves nothing else
    by_lp: int = 0  # ... that needed the linear programmes
    intervals: dict[Cell, tuple[float, float]] = field(default_factory=dict)  # the LP's
    under_protected: list[Cell] = field(default_factory=list)


@dataclass
class LinkedProtection:
    """Which cells to hide, why, and the audit of the result."""

    hidden: np.ndarray
    primary: np.ndarray
    need: np.ndarray  # the interval width each hidden cell must keep
    boxes: list[tuple[int, Box]]  # (subtable, box in that subtable's coordinates)
    passes: int = 0
    repairs: int = 0
    audit: LinkedAudit = field(default_factory=LinkedAudit)

    @property
    def secondary(self) -> np.ndarray:
        return self.hidden & ~self.primary


def protect_linked(
    values: np.ndarray,
    primary: np.ndarray,
    widths: np.ndarray,
    hierarchies: Sequence[Hierarchy],
    *,
    upper: np.ndarray | None = None,
) -> LinkedProtection:
    """Hide `primary` cells and enough others that none can be narrowed below its width from
    the published cells of every subtable together; audited, repaired until the audit passes.

    `values` are the true values of every cell (parents included; all >= 0); `widths` the
    interval each primary cell must keep (capped by what its bounds allow); `upper` known upper
    bounds of the cells (None: unbounded).
    """
    cube = LinkedCube(values, hierarchies, upper)
    primary = np.asarray(primary, dtype=bool)
    need = np.where(primary, np.minimum(np.asarray(widths, dtype=float), cube.cap), 0.0)
    hidden = primary.copy()
    boxes: list[tuple[int, Box]] = []
    passes = _protect(cube, hidden, need, boxes)
    result = LinkedProtection(hidden, primary, need, boxes, passes)
    for round_ in range(1, 100):
        result.audit = audit_linked(cube, hidden, need, primary, boxes)
        bad = result.audit.under_protected
        if not bad:
            break
        result.repairs = round_
        if round_ <= REPAIR_ROUNDS:
            for cell in bad:
                _widen(cube, cell, hidden, need, boxes)
        else:  # the sure way: hide every cell of every subtable that holds a bad cell
            for cell in bad:
                for t in _containing(cube, cell):
                    grid = cube.grid(t)
                    need[grid] = np.maximum(need[grid], np.minimum(need[cell], cube.cap[grid]))
                    hidden[grid] = True
        result.passes += _protect(cube, hidden, need, boxes)
    return result


def _protect(cube: LinkedCube, hidden: np.ndarray, need: np.ndarray, boxes: list[tuple[int, Box]]) -> int:
    """Passes over the subtables until every hidden cell is covered in each (changes in place)."""
    reach = [np.zeros(tuple(len(i) for i in index)) for index in cube.tables]
    for t, (anchor, opposite) in boxes:  # boxes of earlier rounds still cover their corners
        _cover(cube, t, anchor, opposite, reach[t])
    passes = 0
    while True:
        passes += 1
        changed = False
        for t in range(len(cube.tables)):
            grid = cube.grid(t)
            local_need = need[grid]
            todo = hidden[grid] & (local_need > reach[t] + 1e-9)
            if not todo.any():
                continue
            local_hidden = hidden[grid]
            rise, fall, cost = cube.rise[grid], cube.fall[grid], cube.cost[grid]
            flip = cube.flip(local_hidden.shape)
            anchors = sorted(zip(*np.nonzero(todo), strict=True), key=lambda p: (-local_need[p], p))
            for anchor in anchors:
                anchor = tuple(int(i) for i in anchor)
                if local_need[anchor] <= reach[t][anchor] + 1e-9:
                    continue  # covered by a box chosen for another cell meanwhile
                opposite = best_box(anchor, rise, fall, flip, local_hidden, cost, local_need[anchor])
                if opposite is None:
                    continue  # nothing can move this cell here; the audit decides
                width = _cover(cube, t, anchor, opposite, reach[t])
                boxes.append((t, (anchor, opposite)))
                owed = local_need[anchor]
                for corner in hypercube_corners(anchor, opposite):
                    local_hidden[corner] = True
                    cell = cube.full(t, corner)
                    if not hidden[cell]:
                        hidden[cell], changed = True, True
                    wanted = min(owed, width, cube.cap[cell])
                    if need[cell] < wanted - 1e-9:
                        need[cell], changed = wanted, True
        if not changed:
            return passes


def _cover(cube: LinkedCube, t: int, anchor: Cell, opposite: Cell, reach: np.ndarray) -> float:
    """Record that a box covers its corners (in subtable `t`); returns its reach."""
    grid = cube.grid(t)
    width = box_reach(anchor, opposite, cube.rise[grid], cube.fall[grid], cube.flip(reach.shape))
    for corner in hypercube_corners(anchor, opposite):
        reach[corner] = max(reach[corner], width)
    return width


def best_box(
    anchor: Cell,
    rise: np.ndarray,
    fall: np.ndarray,
    flip: np.ndarray,
    hidden: np.ndarray,
    cost: np.ndarray,
    need: float,
    *,
    new_corner: bool = False,
) -> Cell | None:
    """The opposite corner of the cheapest box through `anchor` that moves it at least `need`
    (hidden corners cost nothing); the widest box when none reaches `need`; None when no box
    moves it at all. With `new_corner`, only boxes that hide at least one more cell."""
    up, down, extra = build_box_moves(anchor, rise, fall, flip, np.where(hidden, 0.0, cost))
    reach = up + down
    usable = reach > EXACT
    if new_corner:
        _, _, fresh = build_box_moves(anchor, rise, fall, flip, (~hidden).astype(float))
        usable &= fresh > 0
    if not usable.any():
        return None
    feasible = usable & (reach >= need - 1e-9)
    if feasible.any():
        score = np.where(feasible, extra, np.inf)
        tied = np.flatnonzero((score == score.min()).ravel())
        choice = tied[np.argmax(np.minimum(reach.ravel()[tied], 1e300))]
    else:
        choice = int(np.argmax(np.where(usable, np.minimum(reach, 1e300), -1.0).ravel()))
    return tuple(int(i) for i in np.unravel_index(choice, reach.shape))


def _containing(cube: LinkedCube, cell: Cell) -> list[int]:
    """The subtables that hold `cell`: on each axis as a child of its parent, or as the parent."""
    options = []
    for h, code in zip(cube.hierarchies, cell, strict=True):
        as_parent = [code] if h.children[code] else []
        as_child = [h.parents[code]] if h.parents[code] >= 0 else []
        options.append(as_parent + as_child)
    wanted = set(itertools.product(*options))
    return [t for t, combo in enumerate(cube.parents) if combo in wanted]


def _widen(cube: LinkedCube, cell: Cell, hidden: np.ndarray, need: np.ndarray, boxes: list) -> None:
    """One more box through an under-protected cell in each subtable that holds it, each hiding
    at least one more cell."""
    for t in _containing(cube, cell):
        grid = cube.grid(t)
        local = tuple(int(np.flatnonzero(cube.tables[t][a] == c)[0]) for a, c in enumerate(cell))
        local_hidden = hidden[grid]
        flip = cube.flip(local_hidden.shape)
        opposite = best_box(
            local, cube.rise[grid], cube.fall[grid], flip, local_hidden, cube.cost[grid], need[cell], new_corner=True
        )
        if opposite is None:
            continue
        boxes.append((t, (local, opposite)))
        for corner in hypercube_corners(local, opposite):
            full = cube.full(t, corner)
            hidden[full] = True
            need[full] = max(need[full], min(need[cell], cube.cap[full]))


def audit_linked(
    cube: LinkedCube,
    hidden: np.ndarray,
    need: np.ndarray,
    primary: np.ndarray,
    boxes: Sequence[tuple[int, Box]] = (),
) -> LinkedAudit:
    """Which hidden cells an attacker narrows too far: a primary cell below its `need`, any
    hidden cell to one value. A box lifted to a move of the whole cube (`lifted_move`) settles
    its cells cheaply; the rest go to the linear programmes."""
    required = np.where(primary, np.maximum(need, EXACT), EXACT)
    required = np.minimum(required, cube.cap)
    targets = hidden & (required >= EXACT)
    proven = np.zeros(cube.shape)
    for t, (anchor, opposite) in boxes:
        move = lifted_move(cube, hidden, t, anchor, opposite)
        if move is not None:
            cells, reach = move
            proven[cells] = np.maximum(proven[cells], reach)
    open_cells = targets & (proven < required - 1e-9)
    audit = LinkedAudit(
        checked=int(targets.sum()), by_moves=int((targets & ~open_cells).sum()), by_lp=int(open_cells.sum())
    )
    if not open_cells.any():
        return audit
    audit.intervals = build_linked_intervals(
        cube, hidden, [tuple(int(i) for i in c) for c in zip(*np.nonzero(open_cells), strict=True)]
    )
    least = np.where(primary, required - 1e-6, EXACT)  # any hidden cell: not one value
    audit.under_protected = [c for c, (lo, hi) in audit.intervals.items() if hi - lo < least[c]]
    return audit


MAX_PATHS = 6  # leaf paths tried per side of a box's axis
MAX_LIFTS = 48  # combinations of them tried per box


def lifted_move(
    cube: LinkedCube, hidden: np.ndarray, t: int, anchor: Cell, opposite: Cell
) -> tuple[tuple[np.ndarray, ...], float] | None:
    """A box of subtable `t` as a move of the whole cube that only hidden cells see, and how far
    it moves them: (the cells it moves, as an index; its reach), or None.

    A move of the whole cube keeps every parent the sum of its children exactly when it is the
    sum of moves of leaf cells. On each axis the box has two codes: two children of the
    subtable's parent, or a child and the parent. Two children become a leaf under each, moving
    in opposite directions, and every code between a leaf and its child moves with it; a child
    and the parent become one leaf, and every code from it up to the root moves with it, or
    up to the parent while a leaf under one of the parent's siblings moves the other way. The
    move on the cube is the product over the axes. It is invisible when every cell it moves is
    hidden; its reach is how far those cells' bounds let it go, both ways.
    """
    parents = cube.parents[t]
    codes = [(int(cube.tables[t][a][anchor[a]]), int(cube.tables[t][a][opposite[a]])) for a in range(len(anchor))]
    sides = []
    for axis, (h, parent, (u, v)) in enumerate(zip(cube.hierarchies, parents, codes, strict=True)):
        open_codes = _open_codes(hidden, axis, [c for a, c in enumerate(codes) if a != axis])
        if parent in (u, v):
            child = v if u == parent else u
            paths = _leaf_paths(h, child, open_codes)
            up = _to_root(h, parent)
            options = [([*p, *up], [1] * (len(p) + len(up))) for p in paths]
            grand = h.parents[parent]
            for sibling in h.children[grand] if grand >= 0 else ():
                if sibling == parent:
                    continue
                for q in _leaf_paths(h, sibling, open_codes):
                    options += [([*p, parent, *q], [1] * (len(p) + 1) + [-1] * len(q)) for p in paths[:2]]
            sides.append(options)
        else:
            a_paths = _leaf_paths(h, u, open_codes)
            b_paths = _leaf_paths(h, v, open_codes)
            sides.append([([*pa, *pb], [1] * len(pa) + [-1] * len(pb)) for pa in a_paths for pb in b_paths])
        if not sides[-1]:
            return None
    best = None
    for choice in itertools.islice(itertools.product(*sides), MAX_LIFTS):
        index = np.ix_(*[np.array(c) for c, _ in choice])
        if not hidden[index].all():
            continue
        sign = functools.reduce(np.multiply, np.ix_(*[np.array(s, dtype=float) for _, s in choice]))
        rise, fall = cube.rise[index], cube.fall[index]
        up = np.where(sign > 0, rise, fall).min()
        down = np.where(sign > 0, fall, rise).min()
        if best is None or up + down > best[1]:
            best = (index, float(up + down))
    return best if best is not None and best[1] > EXACT else None


def _to_root(h: Hierarchy, node: int) -> list[int]:
    out = []
    while node >= 0:
        out.append(node)
        node = h.parents[node]
    return out


def _open_codes(hidden: np.ndarray, axis: int, fixed: list[tuple[int, int]]) -> np.ndarray:
    """Per code of `axis`: whether it is hidden at every combination of the box's codes on the
    other axes (a move through a published cell is seen)."""
    index = [np.array(pair) for pair in fixed]
    index.insert(axis, np.arange(hidden.shape[axis]))
    slab = hidden[np.ix_(*index)]
    others = tuple(a for a in range(hidden.ndim) if a != axis)
    return slab.all(axis=others)


def _leaf_paths(h: Hierarchy, node: int, open_codes: np.ndarray) -> list[list[int]]:
    """Up to MAX_PATHS paths from a leaf up to `node` (inclusive) through open codes only."""
    out: list[list[int]] = []

    def walk(code: int, path: list[int]) -> None:
        if len(out) >= MAX_PATHS or not open_codes[code]:
            return
        if not h.children[code]:
            out.append([code, *path])
            return
        for child in h.children[code]:
            walk(child, [code, *path])

    walk(node, [])
    return out


def build_linked_intervals(
    cube: LinkedCube, hidden: np.ndarray, targets: Sequence[Cell]
) -> dict[Cell, tuple[float, float]]:
    """Per target, the least and the greatest value the hidden cell can take given every
    published cell, every parent = sum of its children, and 0 <= cell <= its upper bound."""
    var_id = np.full(cube.shape, -1, dtype=np.int64)
    var_id[hidden] = np.arange(int(hidden.sum()))
    n_vars = int(hidden.sum())
    known = np.where(hidden, 0.0, cube.values)
    rows, cols, data, rhs = [], [], [], []
    n_rows = 0
    for axis, h in enumerate(cube.hierarchies):
        for node in h.internal:
            kids = list(h.children[node])
            ids = np.concatenate(
                [
                    np.expand_dims(np.take(var_id, node, axis=axis), -1),
                    np.moveaxis(np.take(var_id, kids, axis=axis), axis, -1),
                ],
                axis=-1,
            )
            vals = np.concatenate(
                [
                    np.expand_dims(np.take(known, node, axis=axis), -1),
                    np.moveaxis(np.take(known, kids, axis=axis), axis, -1),
                ],
                axis=-1,
            )
            signs = np.r_[1.0, -np.ones(len(kids))]
            ids, vals = ids.reshape(-1, len(kids) + 1), vals.reshape(-1, len(kids) + 1)
            keep = (ids >= 0).any(axis=1)
            ids, vals = ids[keep], vals[keep]
            r, c = np.nonzero(ids >= 0)
            rows.append(r + n_rows)
            cols.append(ids[r, c])
            data.append(signs[c])
            rhs.append(-(vals * signs).sum(axis=1))
            n_rows += len(ids)
    rows_a = np.concatenate(rows) if rows else np.zeros(0, dtype=np.int64)
    cols_a = np.concatenate(cols) if cols else np.zeros(0, dtype=np.int64)
    data_a = np.concatenate(data) if data else np.zeros(0)
    rhs_a = np.concatenate(rhs) if rhs else np.zeros(0)
    matrix = csr_matrix((data_a, (rows_a, cols_a)), shape=(n_rows, n_vars))
    # variables linked through a relation form one problem
    graph = coo_matrix((np.ones(len(rows_a)), (cols_a, rows_a + n_vars)), shape=(n_vars + n_rows,) * 2)
    _, label = connected_components(graph, directed=False)
    var_label, row_label = label[:n_vars], label[n_vars:]
    upper = cube.cap[hidden]
    solvers: dict[int, _Solver] = {}
    out = {}
    for target in targets:
        v = int(var_id[target])
        comp = int(var_label[v])
        if comp not in solvers:
            members = np.flatnonzero(var_label == comp)
            mine = np.flatnonzero(row_label == comp)
            solvers[comp] = _Solver(members, matrix[mine][:, members].tocsc(), rhs_a[mine], upper[members])
        out[target] = solvers[comp].range(v)
    return out


class _Solver:
    """One group of linked hidden cells as a linear programme, solved once per target and
    sense; only the objective changes between solves, so HiGHS starts from the last basis."""

    def __init__(self, members: np.ndarray, a_eq, b_eq: np.ndarray, upper: np.ndarray):
        import highspy

        self.highspy = highspy
        self.members = members
        self.h = highspy.Highs()
        self.h.setOptionValue("output_flag", False)
        self.h.setOptionValue("presolve", "off")  # keep the basis between solves: only the objective changes
        self.h.setOptionValue("simplex_strategy", 4)  # primal: the last optimum stays feasible
        inf = highspy.kHighsInf
        lp = highspy.HighsLp()
        lp.num_col_, lp.num_row_ = len(members), len(b_eq)
        lp.col_cost_ = np.zeros(len(members))
        lp.col_lower_ = np.zeros(len(members))
        lp.col_upper_ = np.where(np.isinf(upper), inf, upper)
        lp.row_lower_ = lp.row_upper_ = np.asarray(b_eq, dtype=float)
        lp.a_matrix_.format_ = highspy.MatrixFormat.kColwise
        lp.a_matrix_.start_ = a_eq.indptr
        lp.a_matrix_.index_ = a_eq.indices
        lp.a_matrix_.value_ = a_eq.data
        self.h.passModel(lp)

    def range(self, var: int) -> tuple[float, float]:
        hs = self.highspy
        column = int(np.searchsorted(self.members, var))
        self.h.changeColCost(column, 1.0)
        ends = []
        for sense, unbounded in ((hs.ObjSense.kMinimize, -np.inf), (hs.ObjSense.kMaximize, np.inf)):
            self.h.changeObjectiveSense(sense)
            self.h.run()
            status = self.h.getModelStatus()
            if status in (hs.HighsModelStatus.kUnbounded, hs.HighsModelStatus.kUnboundedOrInfeasible):
                ends.append(unbounded)
            elif status != hs.HighsModelStatus.kOptimal:
                raise AssertionError(f"linked LP audit failed: {self.h.modelStatusToString(status)}")
            else:
                ends.append(float(self.h.getInfo().objective_function_value))
        self.h.changeColCost(column, 0.0)
        return ends[0], ends[1]
