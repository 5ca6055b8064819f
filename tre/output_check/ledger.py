"""The release ledger and its audit: every output checked against everything published before.

For every cell a project has published, the ledger knows the units (persons) it covers and
what was published of it: the value, or the interval a rounded value stands for, or nothing
(suppressed). Magnitude cells keep each unit's contribution. Every released statistic is then
a linear function of the units' data, and a new output is audited against all of them
together, not in pairs of values:

- the units split into *atoms* by which cells of the tables audited together cover them (a
  pair of tables: the new output and one earlier release; and the new output with every
  earlier release that shares a dimension with it, as far as the atoms stay few);
- the attacker knows every published value or interval, that counts are 0 or more, and which
  combinations of cells can hold anyone at all (for each pair of cells, whether they
  intersect: this is what knowing that a municipality lies in its county, or that a
  diagnosis code lies in its group, gives away); nothing more about the joint distribution;
- a set of units is disclosed when the linear programme over the atoms pins its size to
  1..threshold-1 (or, for sums, narrows its total below the protection interval). The sets
  audited (`_candidates`): in a pair, every cell of either table not published exactly
  (suppressed or rounded) that is small or sensitive, when a cell of one lies within a cell
  of the other (tables with nothing nested cannot narrow each other's hidden cells; checked
  against the unpruned search on random pairs), and every difference between a published
  cell of each that holds 1..threshold-1 units; with three or more tables, also every atom of
  1..threshold-1 units. The truth is always feasible, so only sets whose *true* size is 1 to
  threshold-1 can be pinned there: those are the candidates.
- a candidate is settled (shown not pinned) by any feasible point of the system in which it
  is 0 or reaches the threshold (or leaves its width), found cheaply first: moves of the atoms
  that keep every published value (four atoms around a rectangle); each table's own
  solutions carried onto the atoms of a pair by a maximum flow; batch programmes over the
  candidates' neighbourhood with the other atoms held at their true values, then over the
  whole system. What none of them settles gets two linear programmes of its own. Every
  shortcut only ever finds feasible points, so none can pass a pinned set.

The ledger's units are numbered once per checked output (`UnitSpace`), so tables are compared
as integers, not as pseudonym text.

What is found is fed back into primary suppression of the new output (`assessments`): the
finest published cell of the new output that the disclosed set depends on is suppressed and
protected, and the audit runs again.

Limits: the attacker is the linear relaxation (an integer attacker could in principle rule out
more in tables of three dimensions); tables whose units appear in several cells (counts of
records spread over categories) are kept in the ledger but not audited linearly; mean cells
count as their sums (a mean times a known count is a sum).
"""

from __future__ import annotations

import itertools
import time
from collections.abc import Sequence
from dataclasses import dataclass, field, replace
from functools import cached_property

import numpy as np
import pandas as pd
from scipy.optimize import linprog
from scipy.sparse import csr_matrix, vstack
from scipy.sparse.csgraph import maximum_flow

from tre.output_check.intervals import objective_range
from tre.output_check.kinds import TOTAL

LEDGER_FORMAT = "tre-ledger-table/1"
JOINT_ATOMS = 20_000  # atoms up to which earlier releases are audited together with the new output
JOINT_TABLES = 50  # earlier releases audited together with a new output, at most
MOVE_PARTNERS = 6  # largest neighbours tried per atom when looking for a settling move
BATCH_ROUNDS = 6  # rounds of the programmes that settle many candidates at once, before one per candidate
EPS = 1e-6
PUBLISHED_DECIMALS = 1e-6  # sums and means are published to 6 decimals


@dataclass(frozen=True)
class LedgerTable:
    """One published table as the ledger keeps it.

    `lower`/`upper` hold, per extended cell (margins included), what an attacker knows of its
    value: equal for an exact value, the rounding interval for a rounded one, NaN when it was
    suppressed. Mean cells are kept as sums. `sensitive` marks cells that failed a primary
    check. The members are (unit, interior cell, contribution) rows: the units the cell covers
    and, for a sum, each unit's contribution (for a count of records, its records).
    """

    name: str
    dimensions: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]
    statistic: str  # "count" or "sum"
    lower: np.ndarray
    upper: np.ndarray
    sensitive: np.ndarray
    member_units: np.ndarray  # text
    member_cells: np.ndarray  # flat interior index
    member_weights: np.ndarray
    value_name: str = ""
    release: str = ""
    audited: bool = True  # False: released without verified units; no members, no values (see `unaudited`)

    @property
    def shape(self) -> tuple[int, ...]:
        return tuple(len(c) + 1 for c in self.categories)

    @property
    def inner_shape(self) -> tuple[int, ...]:
        return tuple(len(c) for c in self.categories)

    @property
    def n_interior(self) -> int:
        return int(np.prod(self.inner_shape))

    @cached_property
    def kind(self) -> str:
        """ "units" (a count of persons), "magnitude" (a sum, or a count of records, of each
        person's contribution), or "spread" (persons in several cells: not audited linearly)."""
        units = pd.Series(self.member_units)
        if units.duplicated().any():
            return "spread"
        if self.statistic == "count" and np.all(self.member_weights == 1):
            return "units"
        return "magnitude"

    def key(self, flat: int) -> dict[str, str]:
        index = np.unravel_index(flat, self.shape)
        return {
            d: (cats[i] if i < len(cats) else TOTAL)
            for d, cats, i in zip(self.dimensions, self.categories, index, strict=True)
        }

    def describe(self, flat: int) -> str:
        shown = ", ".join(f"{d}={v}" for d, v in self.key(flat).items() if v != TOTAL)
        return f"({shown})" if shown else "(all)"

    def ext_of_interior(self) -> list[np.ndarray]:
        """Per way of taking margins, the extended cell (flat) of every interior cell."""
        grids = np.indices(self.inner_shape).reshape(len(self.inner_shape), -1)
        out = []
        for pattern in itertools.product((False, True), repeat=len(self.inner_shape)):
            idx = tuple(
                np.full(grids.shape[1], n) if t else grids[a]
                for a, (t, n) in enumerate(zip(pattern, self.inner_shape, strict=True))
            )
            out.append(np.ravel_multi_index(idx, self.shape) if idx else np.zeros(grids.shape[1], dtype=np.int64))
        return out

    @property
    def published(self) -> np.ndarray:
        return ~np.isnan(self.lower)


@dataclass(frozen=True)
class LedgerFinding:
    """A set of units that the new output, with earlier releases, pins down."""

    release: str  # the earlier release(s) it combines with
    what: str  # the set, in plain words (no values)
    new_cells: tuple[int, ...]  # flat extended cells of the new output that publish it (to hide)

    def message(self) -> str:
        return (
            f"{self.what}: with what was published in release {self.release}, this pins down a group of fewer "
            "units than the threshold (or a suppressed value)"
        )


@dataclass
class LedgerAudit:
    findings: list[LedgerFinding] = field(default_factory=list)
    compared: list[str] = field(default_factory=list)
    not_audited: list[str] = field(default_factory=list)
    candidates: int = 0
    settled_by_moves: int = 0
    settled_by_flows: int = 0
    settled_by_batch: int = 0
    linear_programmes: int = 0
    joint_tables: int = 0
    seconds: float = 0.0
    relations: list[dict] = field(default_factory=list)  # how each earlier release relates to it

    def summary(self) -> dict:
        return {
            "compared": len(self.compared),
            "not_audited": self.not_audited,
            "audited_together": self.joint_tables,
            "candidates": self.candidates,
            "settled_by_moves": self.settled_by_moves,
            "settled_by_flows": self.settled_by_flows,
            "settled_by_batch": self.settled_by_batch,
            "linear_programmes": self.linear_programmes,
            "disclosed": len(self.findings),
            "seconds": round(self.seconds, 3),
        }


class UnitSpace:
    """The units of a ledger as integers, shared by every table of an audit.

    Every earlier release is compared with the new output by its units; on pseudonyms (text)
    each comparison costs ten to a hundred times what it costs on integers. The ledger's units
    are numbered once (per checked output, not per round of its remedy); a table outside the
    ledger (the new output) gets the ledger's numbers for the units it shares with it and new
    ones, stable within this space, for the others.
    """

    def __init__(self, tables: Sequence[LedgerTable] = ()):
        arrays = [np.asarray(t.member_units, dtype=object) for t in tables]
        codes, uniques = pd.factorize(np.concatenate(arrays)) if arrays else (np.zeros(0, np.int64), [])
        self._index = pd.Index(np.asarray(uniques, dtype=object), dtype=object)
        self._extra = pd.Index(np.zeros(0, dtype=object), dtype=object)
        self._ids: dict[int, tuple[np.ndarray, np.ndarray]] = {}
        starts = np.cumsum([0, *(len(a) for a in arrays)])
        for array, start, end in zip(arrays, starts[:-1], starts[1:], strict=True):
            self._remember(array, codes[start:end].astype(np.int64))

    @property
    def size(self) -> int:
        return len(self._index) + len(self._extra)

    def ids(self, table: LedgerTable) -> np.ndarray:
        """The table's member units as integers (one per member row)."""
        units = table.member_units
        known = self._ids.get(id(units))
        if known is not None and known[0] is units:
            return known[1]
        values = np.asarray(units, dtype=object)
        ids = self._index.get_indexer(values).astype(np.int64)
        missing = ids < 0
        if missing.any():
            extra = pd.unique(values[missing])
            new = extra[self._extra.get_indexer(extra) < 0]
            if len(new):
                self._extra = self._extra.append(pd.Index(np.asarray(new, dtype=object), dtype=object))
            ids[missing] = len(self._index) + self._extra.get_indexer(values[missing])
        return self._remember(units, ids)

    def _remember(self, units, ids: np.ndarray) -> np.ndarray:
        self._ids[id(units)] = (units, ids)  # the array is kept: its id is not reused while cached
        return ids

    def mask(self, table: LedgerTable) -> np.ndarray:
        """Which units of the space the table covers."""
        ids = self.ids(table)  # first: it may number new units
        out = np.zeros(self.size, dtype=bool)
        out[ids] = True
        return out


def audit_against_ledger(
    new: LedgerTable,
    ledger: Sequence[LedgerTable],
    threshold: int,
    magnitude_protection: float,
    *,
    joint_atoms: int = JOINT_ATOMS,
    units: UnitSpace | None = None,
) -> LedgerAudit:
    """What the new output, together with everything the ledger holds, gives away. `units`
    numbers the ledger's units (made here when not given; pass one to audit several versions
    of an output against the same ledger)."""
    started = time.perf_counter()
    audit = LedgerAudit()
    if new.kind == "spread" or not len(new.member_units):
        return audit
    space = units if units is not None else UnitSpace(ledger)
    mine = space.mask(new)
    alone = _AloneSolutions(threshold)
    for old in ledger:
        relation = _relation(mine, space, old)
        if relation == "disjoint":
            continue
        audit.relations.append({"release": old.name, "relation": relation, "dimensions": list(old.dimensions)})
        if old.kind == "spread":
            audit.not_audited.append(f"{old.name}: persons in several cells")
            continue
        if not _comparable(new, old, space):
            continue
        audit.compared.append(old.name)
        system = _System.build([new, old], space)
        if system is not None:
            _audit_system(system, threshold, magnitude_protection, audit, alone=alone)
    cluster = _cluster(new, ledger, space) if new.kind == "units" else []
    if len(cluster) >= 2:
        system = _System.build([new, *cluster], space, budget=joint_atoms)
        if system is not None and len(system.tables) >= 3:
            audit.joint_tables = len(system.tables) - 1
            _audit_system(system, threshold, magnitude_protection, audit, differences=False)
    audit.findings = _unique_findings(audit.findings)
    audit.seconds = time.perf_counter() - started
    return audit


def _relation(mine: np.ndarray, space: UnitSpace, old: LedgerTable) -> str:
    """How the populations of two tables relate: the same, one within the other, overlapping,
    disjoint (`mine`: the new output's units as a mask of the space)."""
    theirs = np.unique(space.ids(old))
    shared = int(mine[theirs[theirs < len(mine)]].sum())
    n_mine = int(mine.sum())
    if shared == 0:
        return "disjoint"
    if shared == n_mine and shared == len(theirs):
        return "same persons"
    if shared == n_mine:
        return "this output's persons are within it"
    if shared == len(theirs):
        return "its persons are within this output"
    return "overlapping persons"


def _comparable(new: LedgerTable, old: LedgerTable, space: UnitSpace) -> bool:
    """Same kind of linear system: counts of persons with counts, sums of one measure with sums."""
    if new.kind != old.kind:
        return False
    if new.kind == "units":
        return True
    shared, new_at, old_at = np.intersect1d(space.ids(new), space.ids(old), return_indices=True)
    if not len(shared):
        return False
    return bool(np.allclose(new.member_weights[new_at], old.member_weights[old_at], rtol=1e-9, atol=1e-9))


def _cluster(new: LedgerTable, ledger: Sequence[LedgerTable], space: UnitSpace) -> list[LedgerTable]:
    """Earlier count releases to audit together with the new output: those sharing a dimension
    with it and linked to it through shared persons (directly, or through another of them: a
    release of a disjoint group still counts when a third table covers both), most recent first."""
    mine = set(new.dimensions)
    candidates = [t for t in reversed(ledger) if t.kind == "units" and mine & set(t.dimensions)][:JOINT_TABLES]
    units = [np.unique(space.ids(t)) for t in candidates]
    linked, frontier = set(), [space.mask(new)]
    while frontier:
        reached = frontier.pop()
        for i, theirs in enumerate(units):
            if i not in linked and reached[theirs[theirs < len(reached)]].any():
                linked.add(i)
                frontier.append(space.mask(candidates[i]))
    return [candidates[i] for i in sorted(linked)]


# --- the linear system of a group of tables -------------------------------------------------


@dataclass
class _Candidate:
    entries: np.ndarray  # atoms in the set
    units: int  # true units
    value: float  # true value (units, or the sum of contributions)
    width: float  # the interval the attacker must be left (magnitude), 0 for counts
    what: str
    release: str
    sensitive: bool = False  # a suppressed sensitive cell: must not be pinned exactly either


class _System:
    """Atoms (signatures of cells across the tables), the published constraints over them."""

    def __init__(self, tables, codes, units, values, magnitude):
        self.tables = tables
        self.codes = codes  # atoms x tables: interior cell, or n_interior for "not in the table"
        self.units = units
        self.values = values
        self.magnitude = magnitude
        self.nonnegative = True
        self.rows = [self._rows(t, codes[:, i]) for i, t in enumerate(tables)]
        # a pair of count tables with their true atoms: a transportation problem (`_lift`)
        self.liftable = len(tables) == 2 and not magnitude and all(t.kind == "units" for t in tables)
        # a count table published rounded: values are intervals by design
        self.rounded = not magnitude and any(
            bool(np.nan_to_num(t.upper - t.lower).max(initial=0.0) > 0.5) for t in tables
        )

    @classmethod
    def build(cls, tables: list[LedgerTable], space: UnitSpace, budget: int | None = None) -> _System | None:
        ids, _ = pd.factorize(np.concatenate([space.ids(t) for t in tables]))
        n_units = int(ids.max()) + 1 if len(ids) else 0
        unit_codes = np.empty((n_units, len(tables)), dtype=np.int64)
        weight = np.zeros(n_units)
        offset = 0
        present = np.zeros((n_units, len(tables)), dtype=bool)
        for i, t in enumerate(tables):
            these = ids[offset : offset + len(t.member_units)]
            offset += len(t.member_units)
            unit_codes[:, i] = t.n_interior
            unit_codes[these, i] = t.member_cells
            present[these, i] = True
            weight[these] = t.member_weights
        if not (present[:, 0] & present[:, 1:].any(axis=1)).any():
            return None  # no unit in common: nothing links the new output to them
        magnitude = tables[0].kind == "magnitude"
        true_atoms, inverse = np.unique(unit_codes, axis=0, return_inverse=True)
        inverse = inverse.ravel()
        true_units = np.bincount(inverse, minlength=len(true_atoms))
        true_values = np.bincount(inverse, weights=weight, minlength=len(true_atoms)) if magnitude else true_units
        if len(tables) == 2:
            atoms, units, values = true_atoms, true_units, true_values.astype(float)
        else:
            atoms = _consistent_signatures(true_atoms, budget or JOINT_ATOMS)
            if atoms is None:
                return None
            tables = tables[: atoms.shape[1]]
            true_atoms, inverse = np.unique(unit_codes[:, : atoms.shape[1]], axis=0, return_inverse=True)
            inverse = inverse.ravel()
            true_units = np.bincount(inverse, minlength=len(true_atoms))
            true_values = np.bincount(inverse, weights=weight, minlength=len(true_atoms)) if magnitude else true_units
            where = _lookup_rows(atoms, true_atoms)
            units = np.zeros(len(atoms), dtype=np.int64)
            values = np.zeros(len(atoms))
            units[where] = true_units
            values[where] = true_values
        system = cls(tables, atoms, units, values, magnitude)
        system.nonnegative = not magnitude or bool((weight >= 0).all())
        return system

    def _rows(self, table: LedgerTable, codes: np.ndarray) -> csr_matrix:
        """extended cells x atoms: which atoms each cell of `table` sums."""
        inside = codes < table.n_interior
        atom_ids = np.flatnonzero(inside)
        rows, cols = [], []
        for mapping in table.ext_of_interior():
            rows.append(mapping[codes[inside]])
            cols.append(atom_ids)
        size = int(np.prod(table.shape))
        r = np.concatenate(rows) if rows else np.array([], dtype=np.int64)
        c = np.concatenate(cols) if cols else np.array([], dtype=np.int64)
        return csr_matrix((np.ones(len(r)), (r, c)), shape=(size, len(codes)))

    def constraints(self) -> tuple[csr_matrix, np.ndarray, np.ndarray, np.ndarray]:
        """Every published value (or interval) as lower <= A x <= upper, and per row the
        extended cell of the new output it is (-1 for an earlier release's)."""
        blocks, lower, upper, origin = [], [], [], []
        for t_index, (table, rows) in enumerate(zip(self.tables, self.rows, strict=True)):
            published = np.flatnonzero(table.published.ravel())
            if not len(published):
                continue
            part = rows[published]
            used = np.diff(part.indptr) > 0
            blocks.append(part[used])
            lower.append(table.lower.ravel()[published][used])
            upper.append(table.upper.ravel()[published][used])
            origin.append(published[used] if t_index == 0 else np.full(int(used.sum()), -1))
        if not blocks:
            empty = np.array([])
            return csr_matrix((0, len(self.codes))), empty, empty, empty.astype(np.int64)
        return vstack(blocks).tocsr(), np.concatenate(lower), np.concatenate(upper), np.concatenate(origin)


def _consistent_signatures(true_atoms: np.ndarray, budget: int) -> np.ndarray | None:
    """Every combination of cells, one per table, whose every pair of cells holds someone.

    Tables are added in order while the combinations stay within `budget`; at least the
    first two. Returns the combinations (rows) over the tables added.
    """
    n_tables = true_atoms.shape[1]
    sizes = true_atoms.max(axis=0) + 1
    allowed = {}
    for i, j in itertools.combinations(range(n_tables), 2):
        mask = np.zeros((sizes[i], sizes[j]), dtype=bool)
        mask[true_atoms[:, i], true_atoms[:, j]] = True
        allowed[i, j] = mask
    partial = np.unique(true_atoms[:, :1], axis=0)
    for m in range(1, n_tables):
        ok = np.ones((len(partial), sizes[m]), dtype=bool)
        for j in range(m):
            ok &= allowed[j, m][partial[:, j]]
        rows, cols = np.nonzero(ok)
        if len(rows) > budget:
            if m < 2:
                return None
            break
        partial = np.column_stack([partial[rows], cols])
    return partial


def _lookup_rows(atoms: np.ndarray, rows: np.ndarray) -> np.ndarray:
    """Index in `atoms` of every row of `rows` (each is there)."""
    width = atoms.shape[1]
    base = np.maximum(atoms.max(axis=0), rows.max(axis=0)) + 1
    mult = np.cumprod(np.r_[1, base[:-1]])
    key_atoms = (atoms * mult).sum(axis=1)
    key_rows = (rows[:, :width] * mult).sum(axis=1)
    order = np.argsort(key_atoms)
    return order[np.searchsorted(key_atoms, key_rows, sorter=order)]


# --- the audit of one system ------------------------------------------------------------------


def _audit_system(
    system: _System,
    threshold: int,
    protection: float,
    audit: LedgerAudit,
    differences=True,
    alone: _AloneSolutions | None = None,
):
    """Find the candidates of `system` that its published values pin down: settle what moves
    and lifted solutions settle (cheap), then what batches of linear programmes settle, then
    bound each remaining candidate with two programmes of its own."""
    candidates = _candidates(system, threshold, protection, differences)
    if not candidates:
        return
    audit.candidates += len(candidates)
    moved = _settled_by_moves(system, candidates, threshold)
    open_ = [c for c, done in zip(candidates, moved, strict=True) if not done]
    audit.settled_by_moves += len(candidates) - len(open_)
    if open_ and alone is not None and system.liftable:
        before = len(open_)
        open_ = _settle_by_flows(system, open_, threshold, alone)
        audit.settled_by_flows += before - len(open_)
    if not open_:
        return
    remaining = open_
    local = _local_atoms(system, open_)
    if local is not None:  # first in the candidates' neighbourhood, the rest of the atoms held
        remaining = _batches(_Programme(system, free=local), remaining, threshold, local)
    lp = _Programme(system)
    if not lp.feasible:
        return
    if remaining:
        remaining = _batches(lp, remaining, threshold)
    audit.settled_by_batch += len(open_) - len(remaining)
    new = system.tables[0]
    sizes = np.asarray(system.rows[0].multiply(system.units[np.newaxis, :]).sum(axis=1)).ravel()
    for candidate in remaining:
        low, high, used = lp.range(candidate.entries)
        audit.linear_programmes += 2
        if not _disclosed(candidate, low, high, threshold, system.rounded):
            continue
        cells = tuple(sorted((c for c in used if new.published.ravel()[c]), key=lambda c: (sizes[c], c)))
        if cells:  # else earlier releases pinned it without this output: nothing to hide here
            audit.findings.append(LedgerFinding(candidate.release, candidate.what, cells))


LOCAL_SHARE = 0.5  # a neighbourhood of more atoms than this share of all is not worth a programme of its own


def _local_atoms(system: _System, candidates: list[_Candidate]) -> np.ndarray | None:
    """The candidates' atoms and every atom that shares a cell of some table with one of
    them: where moves that change a candidate without changing a published value mostly run.
    None when that is most of the system."""
    inside = np.zeros(len(system.codes), dtype=bool)
    inside[np.concatenate([c.entries for c in candidates])] = True
    near = inside.copy()
    for t_index in range(len(system.tables)):
        codes = system.codes[:, t_index]
        touched = np.zeros(int(codes.max()) + 1, dtype=bool)
        touched[codes[inside]] = True
        near |= touched[codes]
    if near.sum() > LOCAL_SHARE * len(near):
        return None
    return np.flatnonzero(near)


def _batches(lp: _Programme, candidates: list[_Candidate], threshold: int, atoms=None) -> list[_Candidate]:
    """The candidates that rounds of batch programmes leave unsettled (`atoms`: the system's
    atoms that are the programme's variables, when it is a neighbourhood)."""
    if not lp.feasible:
        return candidates
    if atoms is not None:
        position = np.full(len(lp.system.codes), -1, dtype=np.int64)
        position[atoms] = np.arange(len(atoms))
        local = [replace(c, entries=position[c.entries]) for c in candidates]
    else:
        local = list(candidates)
    remaining = list(range(len(candidates)))
    for round_ in range(BATCH_ROUNDS):
        left, _ = lp.batch([local[i] for i in remaining], threshold, seed=round_)
        kept = {id(c) for c in left}
        after = [i for i in remaining if id(local[i]) in kept]
        if not after or len(after) == len(remaining):
            remaining = after
            break
        remaining = after
    return [candidates[i] for i in remaining]


# --- settling by lifted solutions (pairs of count tables) -------------------------------------


class _AloneSolutions:
    """Solutions of each table on its own (values of its interior cells that keep everything
    it published), found once per audit: the points its own suppression or rounding leaves
    open. A pair of tables is a transportation problem over the atoms; a solution of one
    table that the atoms can carry, with the other table's cells at their true values, is a
    solution of the pair."""

    def __init__(self, threshold: int):
        self.threshold = threshold
        self._found: dict[int, tuple[LedgerTable, list[np.ndarray]]] = {}

    def of(self, table: LedgerTable) -> list[np.ndarray]:
        known = self._found.get(id(table))
        if known is not None and known[0] is table:
            return known[1]
        solutions = self._solve(table)
        self._found[id(table)] = (table, solutions)
        return solutions

    def _solve(self, table: LedgerTable) -> list[np.ndarray]:
        if table.kind != "units":
            return []
        units = np.bincount(table.member_cells, minlength=table.n_interior).astype(np.int64)
        held = np.flatnonzero(units)  # an empty cell has no atoms in any pair: it stays empty
        units = units[held]
        system = _System([table], held[:, np.newaxis], units, units.astype(float), False)
        candidates = _cell_candidates(system, 0, self.threshold, lambda value: 0.0)
        if not candidates:
            return []
        lp = _Programme(system)
        if not lp.feasible:
            return []
        found, remaining = [], candidates
        for round_ in range(BATCH_ROUNDS):
            remaining, solutions = lp.batch(candidates, self.threshold, seed=round_)
            found += solutions
            if not remaining:
                break
        for candidate in remaining:  # each cell at its own lowest and highest (a table alone is small)
            objective = np.zeros(lp.n)
            objective[candidate.entries] = 1.0
            for sign in (1.0, -1.0):
                solved = lp._solve(sign * objective)
                if solved.status == 0:
                    found.append(solved.x)
        # vertices of a table's own system are whole numbers for tables of one or two
        # dimensions; a fractional one (three or more) cannot be carried by whole atoms
        whole = [np.round(x) for x in found if np.allclose(x, np.round(x), atol=1e-6)]
        out = []
        for x in whole:
            if (x >= 0).all():
                cells = np.zeros(table.n_interior, dtype=np.int64)
                cells[held] = x
                out.append(cells)
        return out


def _settle_by_flows(
    system: _System, candidates: list[_Candidate], threshold: int, alone: _AloneSolutions
) -> list[_Candidate]:
    """The candidates of a pair of count tables that no lifted solution settles. Solutions
    tried: the true cell values of both tables (the atoms rearranged: which of a cell's
    persons lie in which cell of the other table), then each table's own solutions with the
    other table at its true values; each is carried onto the atoms by a maximum flow."""
    (first, second), units = system.tables, system.units
    a, b = system.codes[:, 0], system.codes[:, 1]
    truth_a = np.bincount(a[a < first.n_interior], weights=units[a < first.n_interior], minlength=first.n_interior)
    truth_b = np.bincount(b[b < second.n_interior], weights=units[b < second.n_interior], minlength=second.n_interior)
    sets = _candidate_sets(candidates, len(system.codes))
    truth = sets @ units.astype(float)
    low, high = truth.copy(), truth.copy()
    remaining = np.ones(len(candidates), dtype=bool)
    targets = itertools.chain(
        [(truth_a, truth_b)],
        ((x, truth_b) for x in _lazy(alone.of, first)),
        ((truth_a, x) for x in _lazy(alone.of, second)),
    )
    for rows, cols in targets:
        x = _lift(system, rows.astype(np.int64), cols.astype(np.int64))
        if x is None:
            continue
        values = sets @ x
        low, high = np.minimum(low, values), np.maximum(high, values)
        remaining = ~_settled(candidates, low, high, threshold)
        if not remaining.any():
            break
    return [c for c, left in zip(candidates, remaining, strict=True) if left]


def _lazy(solve, table):
    yield from solve(table)


def _lift(system: _System, rows: np.ndarray, cols: np.ndarray) -> np.ndarray | None:
    """Atom values whose sums are `rows` over the first table's interior cells and `cols` over
    the second's, or None when the atoms cannot carry them.

    A flow with fixed amounts on the cells' edges, made a maximum flow: a source S* feeds each
    first-table cell its amount and a hub H the second table's total; each second-table cell
    drains its amount to the sink T*, and H drains the first table's total. Atoms are edges
    from their first-table cell to their second-table cell; the persons in one table only
    pass through a free node on the other side, which H feeds or drains (those totals are not
    published). Every amount is carried exactly when the flow is the sum of both totals."""
    first, second = system.tables
    n_a, n_b = first.n_interior, second.n_interior
    a, b = system.codes[:, 0], system.codes[:, 1]
    source, sink, hub, no_a, no_b = 0, 1, 2, 3, 4
    row_node = np.where(a < n_a, 5 + a, no_a)
    col_node = np.where(b < n_b, 5 + n_a + b, no_b)
    total = int(rows.sum() + cols.sum())
    big = total + 1
    if big >= np.iinfo(np.int32).max:
        return None
    tails = np.concatenate([np.full(n_a, source), [source, hub, hub, no_b], 5 + n_a + np.arange(n_b), row_node])
    heads = np.concatenate([5 + np.arange(n_a), [hub, sink, no_a, hub], np.full(n_b, sink), col_node])
    capacity = np.concatenate([rows, [cols.sum(), rows.sum(), big, big], cols, np.full(len(a), big)])
    keep = capacity > 0
    size = 5 + n_a + n_b
    graph = csr_matrix(
        (capacity[keep].astype(np.int32), (tails[keep], heads[keep])), shape=(size, size)
    )  # fmt: skip
    result = maximum_flow(graph, source, sink, method="dinic")
    if result.flow_value != total:
        return None
    return np.asarray(result.flow.tocsr()[row_node, col_node], dtype=float).ravel()


def _candidate_sets(candidates: list[_Candidate], n: int) -> csr_matrix:
    """candidates x atoms: which atoms each candidate sums."""
    return csr_matrix(
        (
            np.ones(sum(len(c.entries) for c in candidates)),
            (np.repeat(np.arange(len(candidates)), [len(c.entries) for c in candidates]),
             np.concatenate([c.entries for c in candidates])),
        ),
        shape=(len(candidates), n),
    )  # fmt: skip


def _disclosed(candidate: _Candidate, low: float, high: float, threshold: int, rounded: bool) -> bool:
    """Whether the attacker's interval gives the set away: a sum narrowed below its protection
    interval; a count recovered exactly; or, where every value is published exactly, a count
    pinned to 1..threshold-1 (where values are rounded, a small count shown rounded is known
    to be small by design: only recovering it exactly gives it away)."""
    if candidate.width > 0:
        return high - low < candidate.width - EPS
    lo, hi = np.ceil(low - EPS), np.floor(high + EPS)
    if hi - lo < 1 and lo >= 1:
        return True
    if candidate.sensitive and hi - lo < 1:
        return True  # a suppressed sensitive count recovered exactly (a zero too)
    return not rounded and lo >= 1 and hi <= threshold - 1


def _candidates(system: _System, threshold: int, protection: float, differences: bool) -> list[_Candidate]:
    """The sets whose true size makes them disclosable (1..threshold-1 units, or sensitive):

    - in a system of three or more tables, every atom of a few units (the groups no pair of
      tables delimits);
    - every cell of any of the tables that is not published exactly (suppressed, or shown
      rounded) and is small or sensitive, when the two tables nest somewhere (a cell of
      `threshold` or more units of one lies within a cell of the other, grand totals aside):
      tables with nothing nested cannot narrow each other's hidden cells;
    - in a pair, every difference between a published cell of each that holds a few units.
    """
    others = system.tables[1:]
    release = ", ".join(repr(t.name) for t in others)
    out: list[_Candidate] = []

    def width(value: float) -> float:
        return max(protection * abs(value), 1.0) if system.magnitude else 0.0

    if len(system.tables) > 2:
        small = (system.units >= 1) & (system.units <= threshold - 1)
        for atom in np.flatnonzero(small):
            out.append(
                _Candidate(
                    np.array([atom]),
                    int(system.units[atom]),
                    float(system.values[atom]),
                    width(system.values[atom]),
                    f"the persons {_describe_atom(system, atom)}",
                    release,
                )
            )
    if len(system.tables) > 2 or _nested(system, threshold):
        for t_index in range(len(system.tables)):
            out += _cell_candidates(system, t_index, threshold, width, release)
    if differences and len(others) == 1:
        out += _difference_candidates(system, threshold, width, release)
    return out


def _cell_candidates(system: _System, t_index: int, threshold: int, width, release: str = "") -> list[_Candidate]:
    """The cells of table `t_index` not published exactly (suppressed, or shown rounded) that
    are small or sensitive."""
    table, rows = system.tables[t_index], system.rows[t_index]
    out = []
    published, sensitive = table.published.ravel(), table.sensitive.ravel()
    exact = published & (np.nan_to_num(table.upper - table.lower).ravel() <= EPS)
    sizes = np.asarray(rows.multiply(system.units[np.newaxis, :]).sum(axis=1)).ravel()
    small = (sizes >= 1) & (sizes <= threshold - 1) if not system.magnitude else sizes >= 1
    for flat in np.flatnonzero(~exact & (small | sensitive)):
        entries = rows[flat].indices
        units = int(sizes[flat])
        if not len(entries) or (units == 0 and not sensitive[flat]):
            continue
        if system.magnitude and not sensitive[flat] and units >= threshold:
            continue
        whose = "this output" if t_index == 0 else f"release {table.name!r}"
        state = "suppressed" if not published[flat] else "rounded"
        value = float(system.values[entries].sum())
        out.append(
            _Candidate(
                entries, units, value, width(value), f"{state} cell {table.describe(flat)} of {whose}", release,
                sensitive=not published[flat],
            )
        )  # fmt: skip
    return out


def _nested(system: _System, threshold: int) -> bool:
    """Whether a cell of one table (of at least `threshold` units, not a grand total) lies
    within a cell (not a grand total) of the other."""
    (a_rows, b_rows), units = system.rows, system.units[np.newaxis, :]
    a_keep = np.arange(a_rows.shape[0]) != a_rows.shape[0] - 1
    b_keep = np.arange(b_rows.shape[0]) != b_rows.shape[0] - 1
    a = a_rows[np.flatnonzero(a_keep)].multiply(units).tocsr()
    b = b_rows[np.flatnonzero(b_keep)]
    size_a = np.asarray(a.sum(axis=1)).ravel()
    size_b = np.asarray(b.multiply(units).sum(axis=1)).ravel()
    both = (a @ b.T).tocoo()
    inside_a = (both.data == size_a[both.row]) & (size_a[both.row] >= threshold)
    inside_b = (both.data == size_b[both.col]) & (size_b[both.col] >= threshold)
    return bool((inside_a | inside_b).any())


def _difference_candidates(system: _System, threshold: int, width, release: str) -> list[_Candidate]:
    """Published cell of the new output vs published cell of the earlier one, differing by a few units."""
    new, old = system.tables
    a_rows, b_rows = system.rows
    pub_a = np.flatnonzero(new.published.ravel())
    pub_b = np.flatnonzero(old.published.ravel())
    a = a_rows[pub_a].multiply(system.units[np.newaxis, :]).tocsr()
    b = b_rows[pub_b]
    both = (a @ b.T).tocoo()  # units in cell i of the new output and cell j of the old one
    size_a = np.asarray(a.sum(axis=1)).ravel()
    size_b = np.asarray(b.multiply(system.units[np.newaxis, :]).sum(axis=1)).ravel()
    out = []
    for i, j, shared in zip(both.row, both.col, both.data, strict=True):
        for direction, rest in (("new", size_a[i] - shared), ("old", size_b[j] - shared)):
            if not 1 <= rest <= threshold - 1:
                continue
            in_a = np.zeros(len(system.codes), dtype=bool)
            in_a[a_rows[pub_a[i]].indices] = True
            in_b = np.zeros(len(system.codes), dtype=bool)
            in_b[b_rows[pub_b[j]].indices] = True
            entries = np.flatnonzero(in_a & ~in_b) if direction == "new" else np.flatnonzero(in_b & ~in_a)
            entries = entries[system.units[entries] > 0]
            if direction == "new":
                what = f"{new.describe(pub_a[i])} of this output minus {old.describe(pub_b[j])} of {old.name!r}"
            else:
                what = f"{old.describe(pub_b[j])} of {old.name!r} minus {new.describe(pub_a[i])} of this output"
            value = float(system.values[entries].sum())
            out.append(_Candidate(entries, int(rest), value, width(value), what, release))
    return out


def _describe_atom(system: _System, atom: int) -> str:
    parts = []
    for table, code in zip(system.tables, system.codes[atom], strict=True):
        if code >= table.n_interior:
            parts.append(f"not in {_label(table)}")
        else:
            flat = np.ravel_multi_index(np.unravel_index(code, table.inner_shape), table.shape)
            parts.append(f"in {table.describe(int(flat))} of {_label(table)}")
    return " and ".join(parts)


def _label(table: LedgerTable) -> str:
    return "this output" if not table.release and table.name == "this output" else repr(table.name)


def _settled_by_moves(system: _System, candidates: list[_Candidate], threshold: int) -> np.ndarray:
    """Which candidates a move settles: for a single atom of a pair of tables, four atoms around
    a rectangle (+d on two opposite corners, -d on the others) keep every published value,
    so the truth moved so that the atom is 0, or reaches the threshold, is another solution."""
    settled = np.zeros(len(candidates), dtype=bool)
    if len(system.tables) != 2 or system.magnitude:
        return settled
    which = [i for i, c in enumerate(candidates) if len(c.entries) == 1 and not c.sensitive]
    if not which:
        return settled
    atoms = np.array([candidates[i].entries[0] for i in which])
    a, b = system.codes[:, 0], system.codes[:, 1]
    k = MOVE_PARTNERS + 1
    by_row = _top_per_group(a, system.units, k)
    by_col = _top_per_group(b, system.units, k)
    rows = by_row[a[atoms]]  # (n, k): atoms (a, b') with the largest counts
    cols = by_col[b[atoms]]  # (n, k): atoms (a', b)
    rows = np.where(rows == atoms[:, None], -1, rows)
    cols = np.where(cols == atoms[:, None], -1, cols)
    valid = (rows[:, :, None] >= 0) & (cols[:, None, :] >= 0)
    corner_a = np.where(cols >= 0, a[np.maximum(cols, 0)], -1)[:, None, :]
    corner_b = np.where(rows >= 0, b[np.maximum(rows, 0)], -1)[:, :, None]
    width = int(b.max()) + 2
    keys = a * width + b
    order = np.argsort(keys)
    wanted = corner_a * width + corner_b
    pos = np.searchsorted(keys, wanted, sorter=order)
    pos = np.minimum(pos, len(keys) - 1)
    found = order[pos]
    exists = valid & (keys[found] == wanted)
    s = system.units[atoms][:, None, None]
    corner_units = np.where(exists, system.units[found], 0)
    fall = exists & (corner_units >= s)
    rise = (
        exists
        & (np.where(rows >= 0, system.units[np.maximum(rows, 0)], 0)[:, :, None] >= threshold - s)
        & (np.where(cols >= 0, system.units[np.maximum(cols, 0)], 0)[:, None, :] >= threshold - s)
    )
    settled[which] = (fall | rise).any(axis=(1, 2))
    return settled


def _top_per_group(group: np.ndarray, units: np.ndarray, k: int) -> np.ndarray:
    """Per group value, the k atoms with the most units (-1 padded)."""
    size = int(group.max()) + 1
    order = np.lexsort((-units, group))
    g = group[order]
    starts = np.r_[0, np.flatnonzero(np.diff(g)) + 1]
    rank = np.arange(len(g)) - np.repeat(starts, np.diff(np.r_[starts, len(g)]))
    keep = rank < k
    out = np.full((size, k), -1, dtype=np.int64)
    out[g[keep], rank[keep]] = order[keep]
    return out


class _Programme:
    """The linear programmes over one system's atoms."""

    def __init__(self, system: _System, free: np.ndarray | None = None):
        """`free`: the atoms that may move (all by default); the others keep their true values,
        which makes a smaller programme whose every solution is one of the whole system."""
        self.system = system
        matrix, lower, upper, origin = system.constraints()
        if free is not None:
            fixed = np.ones(len(system.codes), dtype=bool)
            fixed[free] = False
            held = matrix[:, np.flatnonzero(fixed)] @ system.values[fixed].astype(float)
            matrix = matrix[:, free].tocsr()
            used = np.diff(matrix.indptr) > 0
            matrix, lower, upper, origin = matrix[used], (lower - held)[used], (upper - held)[used], origin[used]
            truth_values = system.values[free]
        else:
            truth_values = system.values
        exact = upper - lower <= EPS
        self.a_eq = matrix[np.flatnonzero(exact)] if exact.any() else None
        self.b_eq = lower[exact] if exact.any() else None
        self.origin_eq = origin[exact]
        ranged = np.flatnonzero(~exact)
        if len(ranged):
            part = matrix[ranged]
            self.a_ub = vstack([part, -part]).tocsr()
            self.b_ub = np.concatenate([upper[ranged], -lower[ranged]])
        else:
            self.a_ub = self.b_ub = None
        self.origin_ub = np.concatenate([origin[ranged], origin[ranged]])
        self.bounds = (0, None) if system.nonnegative else (None, None)
        self.n = len(truth_values)
        # the truth is feasible by construction; a table whose published values disagree with
        # its members (it cannot happen for tables tre made) is not audited
        truth = truth_values.astype(float)
        self.feasible = bool(
            (self.a_eq is None or np.allclose(self.a_eq @ truth, self.b_eq, atol=1e-6))
            and (self.a_ub is None or (self.a_ub @ truth <= self.b_ub + 1e-6).all())
        )

    def _solve(self, objective, extra_ub=None, extra_b=None, bounds=None):
        width = len(objective)
        a_ub, b_ub, a_eq = self.a_ub, self.b_ub, self.a_eq
        if a_eq is not None and a_eq.shape[1] != width:
            a_eq = _pad(a_eq, width)
        if a_ub is not None and a_ub.shape[1] != width:
            a_ub = _pad(a_ub, width)
        if extra_ub is not None:
            a_ub = extra_ub if a_ub is None else vstack([a_ub, extra_ub]).tocsr()
            b_ub = extra_b if b_ub is None else np.concatenate([b_ub, extra_b])
        # HiGHS's presolve costs 20-40 times the solve on these transportation-like systems
        # (thousands of atoms, each in a few cells), and finds little to remove
        return linprog(
            objective, A_ub=a_ub, b_ub=b_ub, A_eq=a_eq, b_eq=self.b_eq, bounds=bounds or self.bounds, method="highs",
            options={"presolve": False},
        )  # fmt: skip

    def range(self, entries: np.ndarray) -> tuple[float, float, set[int]]:
        """The set's smallest and largest value, and the new output's published cells the two
        bounds rest on (those whose dual value is not zero: hiding one of them moves a bound)."""
        objective = np.zeros(self.n)
        objective[entries] = 1.0
        used: set[int] = set()

        def solve(c):
            solved = self._solve(c)
            if solved.status == 0:
                for marginals, origin in (
                    (solved.eqlin.marginals, self.origin_eq),
                    (solved.ineqlin.marginals, self.origin_ub),
                ):
                    if marginals is not None and len(marginals):
                        involved = origin[np.abs(np.asarray(marginals)[: len(origin)]) > 1e-9]
                        used.update(int(c) for c in involved if c >= 0)
            return solved

        low, high = objective_range(objective, solve, "ledger audit")
        return low, high, used

    def batch(
        self, candidates: list[_Candidate], threshold: int, seed: int = 0
    ) -> tuple[list[_Candidate], list[np.ndarray]]:
        """Candidates no solution of two programmes settles: one putting every candidate as low
        as it can go (all at once), one raising each to its threshold (or its width); and the
        two solutions."""
        sets = _candidate_sets(candidates, self.n)
        # random positive weights: each round looks for another solution that settles others
        weights = np.random.default_rng(seed).uniform(0.5, 1.5, len(candidates)) if seed else np.ones(len(candidates))
        scale = np.array([max(c.width, 1.0) for c in candidates]) / weights
        low = self._solve(np.asarray(sets.multiply(1 / scale[:, None]).sum(axis=0)).ravel())
        # maximise sum of z_c with z_c <= value_c and z_c <= cap_c
        caps = np.array([c.value + c.width if c.width > 0 else threshold for c in candidates])
        k = len(candidates)
        link = _hstack(-sets, _eye(k))
        bounds = [self.bounds] * self.n + [(None, float(cap)) for cap in caps]
        objective = np.r_[np.zeros(self.n), -1 / scale]
        high = self._solve(objective, extra_ub=link, extra_b=np.zeros(k), bounds=bounds)
        low_values = sets @ low.x if low.status == 0 else np.full(k, np.nan)
        high_values = sets @ high.x[: self.n] if high.status == 0 else np.full(k, np.nan)
        settled = _settled(candidates, low_values, high_values, threshold)
        solutions = [low.x] if low.status == 0 else []
        solutions += [high.x[: self.n]] if high.status == 0 else []
        return [c for c, done in zip(candidates, settled, strict=True) if not done], solutions


def _settled(candidates: list[_Candidate], low: np.ndarray, high: np.ndarray, threshold: int) -> np.ndarray:
    """Which candidates feasible solutions settle, given each candidate's lowest and highest
    value among them (NaN: none known): a sum left its protection width; a count that can be
    0 or reach the threshold; a suppressed sensitive count that can also move by one or more."""
    width = np.array([c.width for c in candidates])
    sensitive = np.array([c.sensitive for c in candidates], dtype=bool)
    known = ~np.isnan(low) & ~np.isnan(high)
    low_ok = ~np.isnan(low) & (np.nan_to_num(low, nan=np.inf) <= EPS)
    high_ok = ~np.isnan(high) & (np.nan_to_num(high, nan=-np.inf) >= threshold - EPS)
    spread = np.where(known, np.nan_to_num(high) - np.nan_to_num(low), -np.inf)
    magnitude = known & (spread >= width - EPS)
    count = np.where(sensitive, known & (spread >= 1 - EPS) & (low_ok | high_ok), low_ok | high_ok)
    return np.where(width > 0, magnitude, count)


def _pad(matrix: csr_matrix, width: int) -> csr_matrix:
    matrix = matrix.tocsr().copy()
    matrix.resize((matrix.shape[0], width))
    return matrix


def _eye(k: int) -> csr_matrix:
    return csr_matrix((np.ones(k), (np.arange(k), np.arange(k))), shape=(k, k))


def _hstack(left: csr_matrix, right: csr_matrix) -> csr_matrix:
    from scipy.sparse import hstack

    return hstack([left, right]).tocsr()


def _unique_findings(findings: list[LedgerFinding]) -> list[LedgerFinding]:
    seen, out = set(), []
    for f in findings:
        key = (f.release, f.what)
        if key not in seen:
            seen.add(key)
            out.append(f)
    return out


# --- building ledger tables -----------------------------------------------------------------


def unaudited(table, name: str, *, release: str = "", value_name: str = "") -> LedgerTable:
    """The ledger record of a table released without verified units (an officer approved it):
    its name and dimensions only, no invented members. Later tables sharing a dimension with it
    cannot be audited against it and go to review (`build_table_report`); a count table of it
    is still compared value by value from `released/`."""
    return LedgerTable(
        name=name,
        dimensions=tuple(table.dimensions),
        categories=tuple(tuple(c) for c in table.categories),
        statistic=table.statistic,
        lower=np.full(table.shape, np.nan),
        upper=np.full(table.shape, np.nan),
        sensitive=np.zeros(table.shape, dtype=bool),
        member_units=np.array([], dtype=object),
        member_cells=np.array([], dtype=np.int64),
        member_weights=np.array([], dtype=float),
        value_name=value_name,
        release=release,
        audited=False,
    )


def build_ledger_table(table, name: str, *, release: str = "", value_name: str = "") -> LedgerTable | None:
    """The members of a table built from records with units (published values still unset),
    or None when it cannot be audited linearly (no units, a statistic that is not a sum)."""
    from tre.output_check.tables import category_label

    source = table.source
    if source is None or not source.options.get("unit") or table.statistic not in ("count", "sum", "mean"):
        return None
    records = source.records
    unit = records[source.options["unit"]]
    if unit.isna().any():
        return None  # records of no known unit: the published values are not sums over units
    codes = []
    for dim, cats in zip(table.dimensions, table.categories, strict=True):
        codes.append(pd.Categorical(records[dim].map(category_label), categories=list(cats)).codes.astype(np.int64))
    inner_shape = tuple(len(c) for c in table.categories)
    if any((c < 0).any() for c in codes):
        return None
    cells = np.ravel_multi_index(tuple(codes), inner_shape) if codes else np.zeros(len(records), dtype=np.int64)
    if table.statistic == "count":
        count = source.options.get("count")
        weights = pd.to_numeric(records[count]).to_numpy(dtype=float) if count else np.ones(len(records))
    else:
        weights = np.nan_to_num(pd.to_numeric(records[source.options["value"]]).to_numpy(dtype=float))
    frame = pd.DataFrame({"unit": unit.astype(str).to_numpy(), "cell": cells, "w": weights})
    grouped = frame.groupby(["cell", "unit"], sort=True)["w"].sum().reset_index()
    nan = np.full(table.shape, np.nan)
    return LedgerTable(
        name=name,
        dimensions=tuple(table.dimensions),
        categories=tuple(tuple(c) for c in table.categories),
        statistic="count" if table.statistic == "count" else "sum",
        lower=nan,
        upper=nan,
        sensitive=np.zeros(table.shape, dtype=bool),
        member_units=grouped["unit"].to_numpy(dtype=object),
        member_cells=grouped["cell"].to_numpy(dtype=np.int64),
        member_weights=grouped["w"].to_numpy(dtype=float),
        value_name=value_name,
        release=release,
    )


def with_published(ledger_table: LedgerTable, table, lower: np.ndarray, upper: np.ndarray, sensitive) -> LedgerTable:
    """`ledger_table` with what is published of it: per extended cell the values (a mean as its
    sum: a mean times a known count) or intervals, NaN where hidden."""
    lower, upper = np.asarray(lower, dtype=float), np.asarray(upper, dtype=float)
    if table.statistic != "count":
        # published sums and means carry 6 decimals: each is known to within its rounding
        present = np.ones(table.shape)
        if table.statistic == "mean":
            present = (table.count - (table.missing if table.missing is not None else 0)).astype(float)
        slack = PUBLISHED_DECIMALS * np.maximum(present, 1.0) + 1e-9 * np.abs(upper * present)
        lower, upper = lower * present - slack, upper * present + slack
    return replace(ledger_table, lower=lower, upper=upper, sensitive=np.asarray(sensitive, dtype=bool))
