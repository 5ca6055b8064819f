"""Count tables from numpy arrays, for tests that generate them: `d0_0`, `d1_2`, ... labels."""

import numpy as np
import pandas as pd

from tre.output_check import build_table


def build_count_table(values: np.ndarray):
    """The engine's table of `values` (one count per cell, 1 to 3 dimensions d0, d1, d2)."""
    dims = [f"d{a}" for a in range(values.ndim)]
    rows = [
        {**{d: f"{d}_{i}" for d, i in zip(dims, index, strict=True)}, "n": int(values[index])}
        for index in np.ndindex(values.shape)
    ]
    return build_table(pd.DataFrame(rows), dims, count="n")


def report_mask(table, report: dict, status: str | None = None) -> np.ndarray:
    """Over the extended table: the cells a report hides, or (with `status`) has in that status."""
    mask = np.zeros(table.shape, dtype=bool)
    for index, cell in zip(table.cells(), report["cells"], strict=True):
        mask[index] = cell["published"] is None if status is None else cell["status"] == status
    return mask
