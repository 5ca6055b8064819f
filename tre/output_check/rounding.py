"""Rounding remedies: to the nearest multiple of a base, and OpenSAFELY's midpoint rounding.

Rounding alone does not stop rounded values from giving a small count away: six non-zero
cells under a grand total shown as 3 (midpoint 6: 1 to 6) are all exactly 1. So a rounded
table is audited (`intervals.build_rounding_audit`) and what the audit finds is suppressed
and protected, round after round, until it finds nothing (`build_rounded_protection`).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tre.output_check.intervals import RoundingAudit, build_rounding_audit, known_ranges
from tre.output_check.suppression import (
    box_reach,
    build_box_moves,
    build_corner_mask,
    build_hypercubes,
    flip_signs,
    hypercube_corners,
)
from tre.output_check.tables import interior_mask

ROUNDING_METHODS = ("round", "midpoint6")
ROUNDING_ROUNDS = 10  # rounds of "audit, suppress what is given away" before a rounded table fails


def round_to_base(values: np.ndarray, base: int) -> np.ndarray:
    """Each value to the nearest multiple of `base` (halves upwards); NaN stays NaN."""
    values = np.asarray(values, dtype=float)
    return np.floor(values / base + 0.5) * base


def midpoint_round(values: np.ndarray, base: int) -> np.ndarray:
    """OpenSAFELY's midpoint rounding: 0 stays 0; 1..base is shown as base//2, base+1..2*base as
    base + base//2, and so on (`ceiling(x/base)*base - floor(base/2)*(x != 0)`)."""
    values = np.asarray(values, dtype=float)
    return np.ceil(values / base) * base - (base // 2) * (values != 0)


def rounding_interval(published: float, method: str, base: int) -> tuple[float, float]:
    """The whole numbers a published rounded count may stand for, as (lowest, highest)."""
    lower, upper = rounding_bounds(np.array([published], dtype=float), method, base)
    return float(lower[0]), float(upper[0])


def rounding_bounds(published: np.ndarray, method: str, base: int) -> tuple[np.ndarray, np.ndarray]:
    """Per published rounded count, the lowest and highest whole number it may stand for."""
    published = np.asarray(published, dtype=float)
    if method == "round":
        return np.maximum(0.0, np.ceil(published - base / 2)), np.ceil(published + base / 2) - 1
    top = published + base // 2
    zero = published == 0
    return np.where(zero, 0.0, top - base + 1), np.where(zero, 0.0, top)


def round_values(values: np.ndarray, method: str, base: int) -> np.ndarray:
    """`values` rounded by `method` ("round" or "midpoint6")."""
    return round_to_base(values, base) if method == "round" else midpoint_round(values, base)


@dataclass
class RoundedProtection:
    """A rounded table as it will be published, and what the rounding audit did to it."""

    hidden: np.ndarray
    secondary: np.ndarray  # hidden to protect other cells
    published: np.ndarray  # rounded values, NaN where hidden
    recovered: np.ndarray  # cells the rounded values gave away: suppressed and protected
    unresolved: np.ndarray  # cells still given away when the rounds ran out
    audits: list[RoundingAudit]  # one per round

    def summary(self) -> dict:
        """The audit's work in numbers, for the report."""
        return {
            "run": bool(self.audits),
            "rounds": len(self.audits),
            "cells_checked": sum(a.checked for a in self.audits),
            "settled_by_moves": sum(a.by_moves for a in self.audits),
            "checked_by_lp": sum(a.by_lp for a in self.audits),
            "suppressed": int(self.recovered.sum()),
            "unresolved": int(self.unresolved.sum()),
        }


def build_rounded_protection(
    counts: np.ndarray,
    to_hide: np.ndarray,
    widths: np.ndarray,
    small: np.ndarray,
    method: str,
    base: int,
    *,
    rounds: int = ROUNDING_ROUNDS,
) -> RoundedProtection:
    """Suppress `to_hide` (with secondary suppression), round the rest, and make sure the
    rounded values give nothing away.

    `counts` are the true extended counts; `small` the counts under the threshold, which
    must not be recoverable exactly where they are shown; hidden primary and small cells
    must keep their protection `widths`, other hidden cells more than one possible value. Each round audits
    what is published; every cell the audit flags is suppressed as a primary cell and
    protected by a hypercube, unless the cells hidden before it in the same round already
    leave it two possible values. Hiding a cell only widens what an attacker must allow, so
    a cell once found safe stays safe and only the flagged and newly hidden cells are
    audited again. After `rounds` rounds the cells still flagged are `unresolved`.
    """
    shape = counts.shape
    to_hide = to_hide.copy()
    boxes = build_hypercubes(counts, to_hide, widths)
    secondary = build_corner_mask(shape, boxes) & ~to_hide
    flagged_ever = np.zeros(shape, dtype=bool)
    unresolved = np.zeros(shape, dtype=bool)
    settled = np.zeros(shape, dtype=bool)
    audits: list[RoundingAudit] = []
    for attempt in range(rounds + 1):
        hidden = to_hide | secondary
        published = round_values(np.where(hidden, np.nan, counts), method, base)
        if not small.any():
            break
        lower, upper = rounding_bounds(published, method, base)
        # a small count shown rounded must keep two possible values; a hidden primary cell (a
        # small one too) its protection width; any other hidden cell two possible values
        needs = np.where(hidden, np.where(to_hide | small, widths, 1.0), np.where(small, 1.0, 0.0))
        audit = build_rounding_audit(counts, hidden, lower, upper, np.where(settled, 0.0, needs), boxes)
        audits.append(audit)
        flagged = audit.flagged
        settled |= (needs > 0) & ~flagged
        flagged_ever |= flagged
        if not flagged.any() or not (flagged & ~to_hide).any() or attempt == rounds:
            unresolved = flagged
            break
        more = _protect(counts, flagged & ~to_hide, hidden, widths, lower, upper)
        for anchor, _ in more:
            to_hide[anchor] = True
        boxes += more
        newly = build_corner_mask(shape, more) & ~hidden
        secondary = (secondary | newly) & ~to_hide
        settled &= ~newly
    return RoundedProtection(hidden, secondary, published, flagged_ever & hidden, unresolved, audits)


def _protect(counts, flagged, hidden, widths, lower, upper) -> list:
    """Hypercubes that protect the flagged cells, skipping those already safe by then."""
    hidden = hidden.copy()
    low, high = known_ranges(hidden, lower, upper)
    rise, fall = high - counts, counts - low
    suppression_rise = np.full(counts.shape, np.inf)
    suppression_fall = np.where(interior_mask(counts.shape), counts, np.inf)  # what a hidden cell can do
    flip = flip_signs(counts.shape)
    covered = np.zeros(counts.shape)
    boxes = []
    for cell in sorted(zip(*np.nonzero(flagged), strict=True), key=lambda c: (-widths[c], c)):
        cell = tuple(int(i) for i in cell)
        if covered[cell] >= widths[cell] - 1e-9:
            continue  # a corner of a box chosen before, as wide as it needs
        if not hidden[cell]:
            up, down, _ = build_box_moves(cell, rise, fall, flip)
            if up.max() + down.max() >= 1:
                continue  # the cells hidden so far already leave it two values; the next audit confirms
        anchor = np.zeros(counts.shape, dtype=bool)
        anchor[cell] = True
        (box,) = build_hypercubes(counts, anchor, widths, suppressed=hidden)
        reach = box_reach(*box, suppression_rise, suppression_fall, flip)
        for corner in hypercube_corners(*box):
            hidden[corner] = True
            covered[corner] = max(covered[corner], reach)
            rise[corner], fall[corner] = np.inf, suppression_fall[corner]
        boxes.append(box)
    return boxes
