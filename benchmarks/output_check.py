"""Output checking at the sizes the issue names, against ACRO on the same tables, same run.

    .venv/bin/python benchmarks/output_check.py

Targets: a 1 000-cell 2-D table with secondary suppression in at most 1 s; a 10 000-cell
3-D table in at most 10 s. Both are built from person-level records (as `tre.safe` and
ACRO see them), checked, and protected (primary + hypercube secondary suppression, all
margins). ACRO (acro==1.0.2, `.venv-acro`, `make acro`) runs `crosstab(..., suppress=True)`
(primary suppression only) on the same records; the ratio is tre's time over ACRO's.
The LP audit of the protected table is timed separately (every hidden cell of the 2-D table,
a sample of the 3-D one's): it is the test, not the remedy, and it must find nothing.
"""

from __future__ import annotations

import json
import platform
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from tre.output_check import build_attacker_intervals, build_table, build_table_report, load_parameters

REPO = Path(__file__).resolve().parents[1]
ACRO_PYTHON = REPO / ".venv-acro" / "bin" / "python"
RUNNER = REPO / "scripts" / "acro_runner.py"
REPEAT = 3
AUDIT_SAMPLE = 20  # hidden cells of the 3-D table whose LP audit is timed (each is 2 LPs of ~4 000 unknowns)


def make_records(shape: tuple[int, ...], seed: int) -> tuple[pd.DataFrame, list[str]]:
    """Person-level records whose cell counts are skewed: many small cells, some large ones."""
    rng = np.random.default_rng(seed)
    counts = rng.negative_binomial(1, 0.06, size=shape)
    dims = [f"d{a}" for a in range(len(shape))]
    index = np.repeat(np.arange(counts.size), counts.ravel())
    coords = np.unravel_index(index, shape)
    records = pd.DataFrame(
        {d: pd.Series(c).map(lambda i, d=d: f"{d}_{i:03d}") for d, c in zip(dims, coords, strict=True)}
    )
    return records, dims


def time_tre(records: pd.DataFrame, dims: list[str], sample: int | None) -> dict:
    params = load_parameters()
    seconds = []
    for _ in range(REPEAT):
        started = time.perf_counter()
        table = build_table(records, dims)
        report = build_table_report(table, params, method="suppress", audit=False)
        seconds.append(time.perf_counter() - started)
    statuses = [c["status"] for c in report.cells]
    hidden = np.zeros(table.shape, dtype=bool)
    for index, cell in zip(table.cells(), report.cells, strict=True):
        hidden[index] = cell["published"] is None
    targets = hidden.copy()
    if sample is not None:
        chosen = np.random.default_rng(0).choice(np.flatnonzero(hidden), sample, replace=False)
        targets = np.zeros(hidden.shape, dtype=bool)
        targets.flat[chosen] = True
    started = time.perf_counter()
    intervals = build_attacker_intervals(table.count, hidden, targets=targets)
    audit = time.perf_counter() - started
    narrow = sum(1 for lo, hi in intervals.values() if hi - lo < params.protection_width - 1e-6)
    return {
        "seconds": statistics.median(seconds),
        "cells": int(np.prod([len(c) for c in table.categories])),
        "primary": statuses.count("primary"),
        "secondary": statuses.count("secondary"),
        "audit_seconds": audit,
        "audit_narrow": narrow,
        "audited": len(intervals),
    }


def time_acro(tables: list[tuple[str, pd.DataFrame, list[str]]]) -> dict:
    if not ACRO_PYTHON.exists():
        subprocess.run(["make", "-s", "acro"], cwd=REPO, check=True)
    with tempfile.TemporaryDirectory() as folder:
        specs = []
        for name, records, dims in tables:
            path = Path(folder) / f"{name}.csv"
            records.to_csv(path, index=False)
            specs.append(
                {
                    "name": name,
                    "csv": str(path),
                    "index": dims[:-1],
                    "columns": dims[-1:],
                    "suppress": True,
                    "repeat": REPEAT,
                }
            )
        params = {"threshold": 5, "nk_n": 2, "nk_k": 0.9, "p_ratio": 0.1, "zeros_are_disclosive": False}
        done = subprocess.run(
            [str(ACRO_PYTHON), str(RUNNER)], input=json.dumps({"parameters": params, "tables": specs}),
            capture_output=True, text=True, check=True,
        )  # fmt: skip
    return {t["name"]: statistics.median(t["seconds"]) for t in json.loads(done.stdout)["tables"]}


def main() -> int:
    cases = [("2-D 1 000 cells", (40, 25), 1.0), ("3-D 10 000 cells", (20, 20, 25), 10.0)]
    tables = []
    for name, shape, _ in cases:
        records, dims = make_records(shape, seed=len(shape))
        tables.append((name, records, dims))
    acro = time_acro(tables)
    print(f"machine: {platform.machine()}, {platform.processor() or 'cpu'}, Python {platform.python_version()}")
    print(
        f"{'table':18} {'records':>8} {'primary':>8} {'secondary':>9} {'tre s':>7} {'target':>7} {'ACRO s':>7} {'tre/ACRO':>9} {'LP audit':>16}"
    )
    ok = True
    for (name, _shape, target), (_, records, dims) in zip(cases, tables, strict=True):
        result = time_tre(records, dims, None if len(dims) == 2 else AUDIT_SAMPLE)
        ratio = result["seconds"] / acro[name]
        ok &= result["seconds"] <= target and result["audit_narrow"] == 0
        print(
            f"{name:18} {len(records):>8} {result['primary']:>8} {result['secondary']:>9} {result['seconds']:>7.2f} "
            f"{target:>7.1f} {acro[name]:>7.2f} {ratio:>9.2f} {result['audit_seconds']:>6.1f} s, {result['audited']:>4} cells"
        )
        if result["audit_narrow"]:
            print(f"  LP audit: {result['audit_narrow']} hidden cells narrower than the protection interval")
    print("targets met" if ok else "TARGET MISSED")
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
