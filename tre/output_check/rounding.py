"""Rounding remedies: to the nearest multiple of a base, and OpenSAFELY's midpoint rounding."""

from __future__ import annotations

import numpy as np

ROUNDING_METHODS = ("round", "midpoint6")


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
    if method == "round":
        return max(0.0, float(np.ceil(published - base / 2))), float(np.ceil(published + base / 2) - 1)
    if published == 0:
        return 0.0, 0.0
    top = published + base // 2
    return float(top - base + 1), float(top)
