"""The primary disclosure checks on a table: which cells fail which rule, on true values.

`build_cell_findings` returns, per check, a boolean mask over the extended table (cells and
margins). `build_label_findings` looks at what a table's labels give away. Neither changes
the table: remedies are in `suppression`, `merging` and `rounding`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tre.output_check.kinds import Check, Status
from tre.output_check.leaks import is_identity_number, value_leaks
from tre.output_check.parameters import Parameters
from tre.output_check.tables import Table

ORDER_STATISTICS = ("median", "min", "max")


@dataclass(frozen=True)
class Finding:
    """A reason a whole output fails or needs review, in plain words (never a leaked value)."""

    check: Check
    status: Status
    message: str

    def as_dict(self) -> dict:
        return {"check": str(self.check), "status": str(self.status), "message": self.message}


def build_cell_findings(table: Table, params: Parameters) -> dict[Check, np.ndarray]:
    """Per check, the extended cells that fail it. Only checks that flag a cell are present."""
    count = table.count
    masks: dict[Check, np.ndarray] = {
        Check.MINIMUM_THRESHOLD: (count > 0) & (count < params.threshold),
    }
    if params.zeros_are_disclosive:
        masks[Check.PRESENCE_OF_ZERO] = count == 0
    if params.class_disclosure and table.statistic == "count":
        masks[Check.CLASS_DISCLOSURE] = class_disclosure_mask(count)
    if table.is_magnitude and table.statistic in ("sum", "mean"):
        masks.update(_dominance(table, params))
    if table.missing is not None:
        masks[Check.MISSING] = table.missing > 0
    if table.statistic in ORDER_STATISTICS:
        if table.statistic == "median":
            masks[Check.DISALLOWED_STATISTIC] = (count > 0) & (count < params.percentile_min_count)
        elif not params.allow_min_max:
            masks[Check.DISALLOWED_STATISTIC] = count > 0
    if table.denominator is not None:
        masks[Check.DENOMINATOR] = (table.denominator < params.threshold) & ~((table.denominator == 0) & (count == 0))
    dates = table.date_dimensions()
    if dates:
        mask = np.zeros(table.shape, dtype=bool)
        for axis in dates:
            specific = np.ones(table.shape, dtype=bool)
            index = [slice(None)] * len(table.shape)
            index[axis] = -1
            specific[tuple(index)] = False
            mask |= specific & (count > 0) & (count < params.exact_date_min_count)
        masks[Check.EXACT_DATE] = mask
    return {check: mask for check, mask in masks.items() if mask.any()}


def class_disclosure_mask(count: np.ndarray) -> np.ndarray:
    """Zeros in lines (along any axis) where every unit falls in the one other category.

    A line is the cells along one axis with the other coordinates fixed (margins included),
    over at least two categories. Its zeros tell that everyone in the group has the one value.
    """
    mask = np.zeros(count.shape, dtype=bool)
    for axis in range(count.ndim):
        inner = np.take(count, np.arange(count.shape[axis] - 1), axis=axis)
        if inner.shape[axis] < 2:
            continue
        nonzero = (inner > 0).sum(axis=axis, keepdims=True)
        one_class = np.broadcast_to(nonzero == 1, inner.shape)
        flagged = one_class & (inner == 0)
        pad = [(0, 0)] * count.ndim
        pad[axis] = (0, 1)
        mask |= np.pad(flagged, pad)
    return mask


def _dominance(table: Table, params: Parameters) -> dict[Check, np.ndarray]:
    """NK and p% rules as ACRO computes them, for cells with contributors and no negatives."""
    masks: dict[Check, np.ndarray] = {}
    if table.negative is not None:
        masks[Check.NEGATIVE] = table.negative > 0
    if not table.contributors_known:
        return masks
    top = np.nan_to_num(table.top)
    total = table.total
    evaluable = (table.count > 0) & (table.negative == 0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = top[..., : params.nk_n].sum(axis=-1) / total
        # ACRO: a cell whose total is 0 has no defined ratio and fails
        masks[Check.NK] = evaluable & ((ratio >= params.nk_k) | np.isnan(ratio))
        top1, rest = top[..., 0], total - top[..., :2].sum(axis=-1)
        p_value = np.where(top1 == 0, rest, rest / np.where(top1 == 0, 1, top1))
        masks[Check.P_PERCENT] = evaluable & (p_value < params.p_ratio)
    return masks


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
    return findings


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
