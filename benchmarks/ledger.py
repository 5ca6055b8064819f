"""The release ledger's audit: a new 1 000-cell table against a project's released tables.

    .venv/bin/python benchmarks/ledger.py [--persons N] [--released 200]

A cohort of `--persons` persons (default 50 000) with municipality (50), age band (20), sex,
diagnosis group (12), year (5), education (6) and a few filters (treatment, follow-up,
excluded). `--released` tables (default 200) are released into the ledger the way the review
workflow writes them: 1- and 2-D count tables over random pairs of those attributes (10 to
1 000 cells each), some on a subpopulation (one of the filters), some midpoint-6 rounded, one
in ten a sum of cost. Target (issue 14): a new 1 000-cell table (municipality x age band, on a
subpopulation, so there are differences to find) audited against 200 released tables in
<= 5 s on 2 cores.

Printed, for ledgers of 0, 25, 50, 100 and 200 tables (median of 3): the whole check of the new
table (`outputs.build_table_output`, as the kernel and the central check run it), the ledger
audit's share of it, and what the audit did (pairs compared, tables audited together,
candidate sets, settled by moves, by lifted flows, by the batch programmes, linear programmes solved, cells
suppressed). The baseline is the same table checked without a ledger, in the same run.
"""

from __future__ import annotations

import argparse
import os
import platform
import statistics
import time

import numpy as np
import pandas as pd

from tre.output_check import load_parameters
from tre.output_check.central import ledger_entry_of
from tre.output_check.outputs import person_table_output

ATTRIBUTES = {
    "kommune": [f"K{i:02d}" for i in range(50)],
    "age_band": [f"{5 * i:02d}-{5 * i + 4:02d}" for i in range(20)],
    "sex": ["F", "M"],
    "diagnosis": [f"D{i:02d}" for i in range(12)],
    "year": ["2020", "2021", "2022", "2023", "2024"],
    "education": ["grunn", "vgs", "fagskole", "kort", "lang", "ukjent"],
}
FILTERS = ("treatment", "followed_up", "excluded")
REPEAT = 3
TARGET_SECONDS = 5.0


def make_cohort(n: int, seed: int = 0) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame({"pseudonym": [f"PS{i:09d}" for i in range(n)]})
    for name, values in ATTRIBUTES.items():
        weights = rng.dirichlet(np.full(len(values), 2.0))
        frame[name] = rng.choice(values, n, p=weights)
    frame["treatment"] = rng.random(n) < 0.5
    frame["followed_up"] = rng.random(n) < 0.9
    frame["excluded"] = rng.random(n) < 0.002
    frame["cost"] = np.round(rng.gamma(2.0, 1500.0, n), 2)
    return frame


def make_output(people, dims, rows, *, value=None, method="suppress", ledger=(), params=None):
    return person_table_output(people[rows], dims, params, value=value, method=method, ledger=list(ledger))


def build_ledger(people, count: int, params, seed: int = 1) -> list:
    rng = np.random.default_rng(seed)
    names = list(ATTRIBUTES)
    ledger = []
    for i in range(count):
        dims = list(rng.choice(names, size=int(rng.integers(1, 3)), replace=False))
        rows = np.ones(len(people), dtype=bool)
        if rng.random() < 0.4:
            column = FILTERS[int(rng.integers(len(FILTERS)))]
            rows = people[column].to_numpy() if column != "excluded" else ~people[column].to_numpy()
        value = "cost" if rng.random() < 0.1 else None
        method = "midpoint6" if value is None and rng.random() < 0.15 else "suppress"
        made = make_output(people, dims, rows, value=value, method=method, params=params)
        entry = ledger_entry_of(made, params, f"REQ-{i + 1}/t{i}", f"REQ-{i + 1}", value or "")
        ledger.append(entry)
    return ledger


def main(argv=None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--persons", type=int, default=50_000)
    parser.add_argument("--released", type=int, default=200)
    args = parser.parse_args(argv)
    params = load_parameters()
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, load {os.getloadavg()[0]:.1f}"
    )
    started = time.perf_counter()
    people = make_cohort(args.persons)
    ledger = build_ledger(people, args.released, params)
    cells = sum(int(np.prod(t.shape)) for t in ledger)
    print(f"ledger: {len(ledger)} released tables, {cells} cells with margins, {args.persons} persons; built in "
          f"{time.perf_counter() - started:.1f} s")  # fmt: skip
    rows = people["followed_up"].to_numpy()  # a subpopulation of the released ones: differences to find
    dims = ["kommune", "age_band"]
    print("new table: kommune x age_band (1 000 cells), the persons followed up")
    print(f"{'ledger':>7} {'check s':>8} {'audit s':>8} {'pairs':>6} {'together':>8} {'candidates':>10} "
          f"{'moves':>6} {'flows':>6} {'batch':>6} {'LPs':>5} {'suppressed':>10} {'status':>10}")  # fmt: skip
    results = {}
    for size in sorted({0, 25, 50, 100, args.released} & set(range(args.released + 1))):
        times, audits = [], []
        for _ in range(REPEAT):
            t0 = time.perf_counter()
            made = make_output(people, dims, rows, ledger=ledger[:size], params=params)
            times.append(time.perf_counter() - t0)
            audits.append(made.report.details.get("ledger") or {})
        audit = audits[-1]
        data = made.report.as_dict()
        flagged = sum(1 for c in data["cells"] if "DifferencingCheck" in c["checks"])
        results[size] = statistics.median(times)
        audit_s = statistics.median(a.get("seconds", 0.0) for a in audits)
        print(f"{size:>7} {results[size]:>8.2f} {audit_s:>8.2f} {audit.get('compared', 0):>6} "
              f"{audit.get('audited_together', 0):>8} {audit.get('candidates', 0):>10} "
              f"{audit.get('settled_by_moves', 0):>6} {audit.get('settled_by_flows', 0):>6} "
              f"{audit.get('settled_by_batch', 0):>6} "
              f"{audit.get('linear_programmes', 0):>5} {flagged:>10} {data['status']:>10}")  # fmt: skip
    full = results[max(results)]
    print(f"baseline (no ledger): {results[0]:.2f} s; with {max(results)} released tables: {full:.2f} s "
          f"(target <= {TARGET_SECONDS:.0f} s: {'met' if full <= TARGET_SECONDS else 'NOT met'}); "
          f"load at the end {os.getloadavg()[0]:.1f}")  # fmt: skip


if __name__ == "__main__":
    main()
