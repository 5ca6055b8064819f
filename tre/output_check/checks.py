"""The primary disclosure checks on a table: which cells fail which rule, on true values.

`build_cell_findings` returns, per check, a boolean mask over the extended table (cells and
margins). `build_label_findings` looks at what a table's labels give away. Neither changes
the table: remedies are in `suppression`, `merging` and `rounding`.
"""

from __future__ import annotations

import itertools
from dataclasses import dataclass

import numpy as np

from tre.output_check.dates import exact_date_labels
from tre.output_check.kinds import Check, Status
from tre.output_check.leaks import is_identity_number, value_leaks
from tre.output_check.parameters import Parameters
from tre.output_check.tables import Table

ORDER_STATISTICS = ("median", "min", "max")
PERSON_LEVEL_MIN = 10  # single-unit categories from which a dimension lists persons (with small thresholds)


@dataclass(frozen=True)
class Finding:
    """A reason a whole output fails or needs review, in plain words (never a leaked value)."""

    check: Check
    status: Status
    message: str

    def as_dict(self) -> dict:
        return {"check": str(self.check), "status": str(self.status), "message": self.message}


def build_cell_findings(table: Table, params: Parameters) -> dict[Check, np.ndarray]:
    """Per check, the extended cells that fail it. Only checks that flag a cell are present.

    Thresholds count units (distinct persons, when the table knows them); dominance weighs
    each unit's total contribution (its records, in a count table of records).
    """
    units = table.unit_counts
    masks: dict[Check, np.ndarray] = {
        Check.MINIMUM_THRESHOLD: (units > 0) & (units < params.threshold),
    }
    structural = table.structural_zeros
    if params.zeros_are_disclosive:
        zero = table.count == 0
        masks[Check.PRESENCE_OF_ZERO] = zero if structural is None else zero & ~structural
    if params.class_disclosure and table.statistic in ("count", "sum", "mean"):
        masks[Check.CLASS_DISCLOSURE] = class_disclosure_mask(units, structural)
        if table.statistic == "sum" and table.total is not None and table.negative is not None:
            # a sum table where a group's only non-zero sum is in one category tells that the
            # group's contributors with a value all belong to it
            nonzero = np.where(table.negative == 0, np.abs(table.total) > 0, units > 0)
            masks[Check.CLASS_DISCLOSURE] |= class_disclosure_mask(nonzero.astype(np.int64), structural) & (units > 0)
    if table.is_magnitude and table.statistic in ("sum", "mean"):
        masks.update(_dominance(table, params))
    if table.statistic == "count" and table.unit_top is not None:
        # records of one person dominate a count of records as one payer dominates a sum
        masks.update(_dominance_of(table.unit_top, table.count.astype(float), table.count > 0, params))
    if table.missing is not None:
        masks[Check.MISSING] = table.missing > 0
    if table.statistic in ORDER_STATISTICS:
        if table.statistic == "median":
            masks[Check.DISALLOWED_STATISTIC] = (units > 0) & (units < params.percentile_min_count)
        elif not params.allow_min_max:
            masks[Check.DISALLOWED_STATISTIC] = units > 0
    if table.denominator is not None:
        masks[Check.DENOMINATOR] = (table.denominator < params.threshold) & ~((table.denominator == 0) & (units == 0))
    dated = exact_date_mask(table)
    if dated.any():
        masks[Check.EXACT_DATE] = dated & (units > 0) & (units < params.exact_date_min_count)
    return {check: mask for check, mask in masks.items() if mask.any()}


def exact_date_mask(table: Table) -> np.ndarray:
    """Extended cells keyed by an exact date on some axis (margins over that axis are not)."""
    mask = np.zeros(table.shape, dtype=bool)
    for axis, cats in enumerate(table.categories):
        flags = exact_date_labels(cats)
        if any(flags):
            shape = [1] * len(table.shape)
            shape[axis] = -1
            mask |= np.broadcast_to(np.asarray(flags + [False]).reshape(shape), table.shape)
    return mask


def class_disclosure_mask(count: np.ndarray, structural: np.ndarray | None = None) -> np.ndarray:
    """Zeros in lines (along any axis) where every unit falls in the one other category.

    A line is the cells along one axis with the other coordinates fixed (margins included),
    over at least two categories that can hold units. Its zeros tell that everyone in the
    group has the one value. Cells declared structural zeros are not categories of their
    line: no pregnant men tells nothing about the women.
    """
    mask = np.zeros(count.shape, dtype=bool)
    possible = np.ones(count.shape, dtype=bool) if structural is None else ~structural_mask(structural)
    for axis in range(count.ndim):
        inner = np.take(count, np.arange(count.shape[axis] - 1), axis=axis)
        can = np.take(possible, np.arange(count.shape[axis] - 1), axis=axis)
        if inner.shape[axis] < 2:
            continue
        nonzero = (inner > 0).sum(axis=axis, keepdims=True)
        categories = can.sum(axis=axis, keepdims=True)
        one_class = np.broadcast_to((nonzero == 1) & (categories >= 2), inner.shape)
        flagged = one_class & (inner == 0) & can
        pad = [(0, 0)] * count.ndim
        pad[axis] = (0, 1)
        mask |= np.pad(flagged, pad)
    return mask


def structural_mask(interior: np.ndarray) -> np.ndarray:
    """Structural zeros with the margins that sum only structural zeros (empty by definition too)."""
    inner = interior[tuple(slice(0, n - 1) for n in interior.shape)]
    out = interior.copy()
    for pattern in itertools.product((False, True), repeat=interior.ndim):
        axes = tuple(a for a, t in enumerate(pattern) if t)
        if not axes:
            continue
        where = tuple(slice(-1, None) if t else slice(0, -1) for t in pattern)
        out[where] = inner.all(axis=axes, keepdims=True)
    return out


def _dominance(table: Table, params: Parameters) -> dict[Check, np.ndarray]:
    """NK and p% rules as ACRO computes them, for cells with contributors and no negatives."""
    masks: dict[Check, np.ndarray] = {}
    if table.negative is not None:
        masks[Check.NEGATIVE] = table.negative > 0
    if not table.contributors_known:
        return masks
    masks.update(_dominance_of(table.top, table.total, (table.count > 0) & (table.negative == 0), params))
    return masks


def _dominance_of(top: np.ndarray, total: np.ndarray, evaluable: np.ndarray, params: Parameters) -> dict:
    top = np.nan_to_num(top)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = top[..., : params.nk_n].sum(axis=-1) / total
        # ACRO: a cell whose total is 0 has no defined ratio and fails
        nk = evaluable & ((ratio >= params.nk_k) | np.isnan(ratio))
        top1, rest = top[..., 0], total - top[..., :2].sum(axis=-1)
        p_value = np.where(top1 == 0, rest, rest / np.where(top1 == 0, 1, top1))
        p_percent = evaluable & (p_value < params.p_ratio)
    return {Check.NK: nk, Check.P_PERCENT: p_percent}


def build_table_findings(table: Table, params: Parameters) -> list[Finding]:
    """Reasons that concern the whole table rather than single cells."""
    findings = []
    if table.is_magnitude and not table.contributors_known and table.statistic in ("sum", "mean"):
        findings.append(
            Finding(
                Check.NK,
                Status.REVIEW,
                "the dominance rules (NKCheck, PPercentCheck) need each contributor's value; these cells came "
                "aggregated, so a person must judge dominance",
            )
        )
    if table.statistic in ("min", "max") and params.allow_min_max:
        findings.append(
            Finding(Check.DISALLOWED_STATISTIC, Status.REVIEW, f"a {table.statistic} is one person's value")
        )
    for dim, singles, used in person_level_dimensions(table, params):
        findings.append(
            Finding(
                Check.PERSON_LEVEL,
                Status.FAIL,
                f"dimension {dim!r} has {singles} of its {used} categories holding exactly one unit: the table "
                "lists persons, whatever its labels say; group the categories",
            )
        )
    return findings


def person_level_dimensions(table: Table, params: Parameters) -> list[tuple[str, int, int]]:
    """Dimensions whose categories are mostly single units (a row per person), with how many.

    Whatever the labels are (pseudonyms, ID numbers or made-up numbers), a dimension of a table
    of two or more dimensions where at least `threshold` (and 10) categories, and at least half
    of those holding anyone, hold exactly one unit lists persons with their other attributes:
    the table fails rather than being protected cell by cell, because each person's pattern of
    hidden cells and margins can be read back.
    """
    found = []
    units = table.unit_counts
    if len(table.dimensions) < 2:
        return found  # a list of persons and nothing else: suppression hides every cell of it
    for axis, dim in enumerate(table.dimensions):
        index = [slice(-1, None)] * units.ndim
        index[axis] = slice(0, -1)
        margin = units[tuple(index)].ravel()
        used = int((margin > 0).sum())
        singles = int((margin == 1).sum())
        if singles >= max(params.threshold, PERSON_LEVEL_MIN) and singles * 2 >= used:
            found.append((dim, singles, used))
    return found


def build_label_findings(table: Table, pseudonyms: frozenset[str]) -> tuple[list[Finding], np.ndarray]:
    """Leaks in the table's labels, and the extended cells whose key holds a leaked label.

    A leaked label is published whatever happens to the cell, so these cannot be remedied
    by suppression: the table fails.
    """
    findings = []
    mask = np.zeros(table.shape, dtype=bool)
    for axis, (dim, cats) in enumerate(zip(table.dimensions, table.categories, strict=True)):
        pseud = [value_leaks(c, pseudonyms)[0] for c in cats]
        ident = [is_identity_number(c) or value_leaks(c, frozenset())[1] for c in cats]
        for flags, check, what in (
            (pseud, Check.PSEUDONYM, "the project's pseudonyms"),
            (ident, Check.IDENTITY_NUMBER, "national ID numbers"),
        ):
            if any(flags):
                findings.append(Finding(check, Status.FAIL, f"{sum(flags)} label(s) of dimension {dim!r} are {what}"))
                index = [slice(None)] * len(table.shape)
                index[axis] = np.flatnonzero(np.r_[flags, False])
                hit = np.zeros(table.shape, dtype=bool)
                hit[tuple(index)] = True
                mask |= hit
        if any(pseud) and sum(pseud) * 2 >= len(cats):
            findings.append(Finding(Check.PERSON_LEVEL, Status.FAIL, f"dimension {dim!r} has one category per person"))
    return findings, mask
