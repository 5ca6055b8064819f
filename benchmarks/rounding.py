"""Rounding remedies with the rounding audit, at the sizes output checking must handle.

    .venv/bin/python benchmarks/rounding.py

Times `build_table_report(..., method=M, audit=False)` for `midpoint6` and `round` on
skewed count tables (many small cells; the same generator as `benchmarks/output_check.py`)
on a table of nothing but small counts, and on sparse tables (mostly zeros, a few 1s and
2s: rounded margins pin such counts down, so the audit has work to do). Target: a 1 000-cell 2-D table in well under
1 s. Then an independent attacker (the LP of `build_attacker_intervals` over every
published rounded value, hidden cells free, counts non-negative) looks at every small count
still shown, and every hidden cell, of the 2-D tables, and counts how many it pins down:
"exact" small counts (one whole number left) and hidden cells narrower than the protection
interval. Both must be 0.

To compare with another checkout in the same run, point PYTHONPATH at it:
`PYTHONPATH=/path/to/other .venv/bin/python benchmarks/rounding.py`.
"""

from __future__ import annotations

import platform
import statistics
import sys
import time

import numpy as np
import pandas as pd

import tre.output_check as engine
from tre.output_check import build_attacker_intervals, build_table, build_table_report, load_parameters
from tre.output_check.rounding import rounding_interval

REPEAT = 3
TARGET_SECONDS = 1.0  # the 1 000-cell 2-D table


def make_counts(shape: tuple[int, ...], seed: int, kind: str) -> np.ndarray:
    rng = np.random.default_rng(seed)
    if kind == "small":
        return rng.integers(0, 4, size=shape)
    if kind == "sparse":  # mostly zeros: rows and columns of a few 1s and 2s, easily pinned down
        return rng.choice([0, 1, 2], p=[0.8, 0.15, 0.05], size=shape)
    return rng.negative_binomial(1, 0.06, size=shape)


def build(counts: np.ndarray):
    dims = [f"d{a}" for a in range(counts.ndim)]
    coords = np.indices(counts.shape).reshape(counts.ndim, -1)
    frame = pd.DataFrame({d: [f"{d}_{i:03d}" for i in c] for d, c in zip(dims, coords, strict=True)})
    frame["n"] = counts.ravel()
    return build_table(frame, dims, count="n")


def attack(table, report, params, method: str) -> tuple[int, int, float]:
    """(small counts shown and pinned to one value, hidden cells under-protected, seconds)."""
    base = params.midpoint_base if method == "midpoint6" else params.round_base
    hidden = np.zeros(table.shape, dtype=bool)
    bounds = {}
    for index, cell in zip(table.cells(), report.cells, strict=True):
        if cell["published"] is None:
            hidden[index] = True
        else:
            bounds[index] = rounding_interval(cell["published"], method, base)
    small = (table.count > 0) & (table.count < params.threshold) & ~hidden
    started = time.perf_counter()
    found = build_attacker_intervals(table.count, hidden, bounds=bounds, targets=small | hidden)
    seconds = time.perf_counter() - started
    exact = sum(1 for i, (lo, hi) in found.items() if small[i] and np.floor(hi + 1e-6) - np.ceil(lo - 1e-6) < 1)
    primary = np.zeros(table.shape, dtype=bool)
    for index, cell in zip(table.cells(), report.cells, strict=True):
        primary[index] = cell["status"] == "primary"
    narrow = sum(
        1 for i, (lo, hi) in found.items() if hidden[i] and primary[i] and hi - lo < params.protection_width - 1e-6
    )
    return exact, narrow, seconds


def main() -> int:
    params = load_parameters()
    cases = [
        ("2-D 1 000 skewed", (40, 25), "skewed", True),
        ("2-D 1 000 all small", (40, 25), "small", True),
        ("2-D 1 000 sparse", (40, 25), "sparse", True),
        ("2-D 4 000 sparse", (80, 50), "sparse", False),
        ("3-D 4 000 skewed", (20, 20, 10), "skewed", False),
        ("3-D 10 000 skewed", (20, 20, 25), "skewed", False),
    ]
    print(f"engine: {engine.__file__}")
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}")
    print(
        f"{'table':22} {'method':9} {'small':>6} {'hidden':>6} {'audited':>7} {'by LP':>6} {'seconds':>8} "
        f"{'exact':>6} {'narrow':>6} {'attack s':>9}"
    )
    ok = True
    for name, shape, kind, attacked in cases:
        table = build(make_counts(shape, seed=len(shape), kind=kind))
        small_cells = int(((table.count > 0) & (table.count < params.threshold)).sum())
        for method in ("midpoint6", "round"):
            seconds = []
            for _ in range(REPEAT):
                started = time.perf_counter()
                report = build_table_report(table, params, method=method, audit=False)
                seconds.append(time.perf_counter() - started)
            hidden = sum(1 for c in report.cells if c["published"] is None)
            audit = report.details.get("rounding_audit", {})  # absent before the rounding audit existed
            audited = f"{audit.get('cells_checked', '-'):>7} {audit.get('checked_by_lp', '-'):>6}"
            figures = f"{name:22} {method:9} {small_cells:>6} {hidden:>6} {audited} {statistics.median(seconds):>8.3f}"
            if attacked:
                exact, narrow, attack_seconds = attack(table, report, params, method)
                ok &= exact == 0 and narrow == 0
                figures += f" {exact:>6} {narrow:>6} {attack_seconds:>9.1f}"
            if shape == (40, 25):
                ok &= statistics.median(seconds) <= TARGET_SECONDS
            print(figures)
    print("targets met, nothing pinned down" if ok else "TARGET MISSED or a count pinned down")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
