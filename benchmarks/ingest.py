"""Ingest + link of a deliveries folder against a bare DuckDB load of the same files.

    .venv/bin/python benchmarks/ingest.py DELIVERIES_DIR [--work DIR] [--repeat N]

Targets (issue 3): national 1-year synthetic deliveries (5.5 M persons) ingested and linked in
at most 3 minutes on 2 cores, at no less than a third of the throughput (rows per second) of
a bare DuckDB load (`CREATE TABLE AS SELECT * FROM read_csv(...)`, types auto-detected) of the
same files, measured in the same run. The files are read once before either run, so that
both start from a warm page cache. On a machine shared with other work, `--repeat N` runs
each measurement N times, alternating, and compares the fastest of each.

"Ingest + link" is `tre ingest` of every delivery in the folder (validation, identities,
vault, register store, rejects, metadata) followed by the linkage and quality report.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from tre.config import load_settings
from tre.db import Store, utc_now
from tre.enums import Role
from tre.linkage.ingest import find_deliveries, ingest
from tre.linkage.quality import build_report
from tre.linkage.zone import CentralZone
from tre.users import add_user

TARGET_SECONDS = 180
TARGET_RATIO = 1 / 3


def warm(files: list[Path]) -> None:
    for path in files:
        with open(path, "rb") as f:
            while f.read(1 << 24):
                pass


def bare_load(files: list[Path], work: Path) -> float:
    database = work / "bare.duckdb"
    started = time.perf_counter()
    with duckdb.connect(str(database)) as con:
        for i, path in enumerate(files):
            reader = "read_parquet" if path.suffix == ".parquet" else "read_csv"
            con.execute(f"CREATE TABLE t{i} AS SELECT * FROM {reader}(?)", [str(path)])
    seconds = time.perf_counter() - started
    database.unlink()
    return seconds


def tre_ingest(folder: Path, work: Path) -> tuple[float, float, dict]:
    shutil.rmtree(work / "home", ignore_errors=True)
    environ = {"TRE_HOME": str(work / "home"), "TRE_PROJECTS_DIR": str(work / "projects")}
    settings = load_settings(environ)
    store = Store(settings.db_url)
    settings.home.mkdir(mode=0o700, parents=True)
    store.migrate()
    with store.transaction() as session:
        add_user(session, "bench", Role.ADMIN, actor="bench", now=utc_now())
    zone = CentralZone(settings, environ=environ)
    started = time.perf_counter()
    outcomes = ingest(zone, store, [folder], actor="bench")
    ingested = time.perf_counter()
    with zone.reading(store) as con:
        report = build_report(con)
    finished = time.perf_counter()
    failed = [o.message for o in outcomes if o.status == "failed"]
    if failed:
        raise SystemExit(f"deliveries failed: {failed}")
    return ingested - started, finished - ingested, report


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("deliveries", type=Path)
    parser.add_argument("--work", type=Path, help="scratch folder (default: a temporary one, removed afterwards)")
    parser.add_argument("--repeat", type=int, default=1, help="runs of each measurement; the fastest counts")
    args = parser.parse_args(argv)
    work = Path(tempfile.mkdtemp(prefix="tre-bench-", dir=args.work))
    try:
        deliveries = [d for d in find_deliveries([args.deliveries]) if hasattr(d, "data")]
        files = [d.data for d in deliveries]
        rows = sum(d.manifest.rows for d in deliveries)
        size = sum(f.stat().st_size for f in files)
        print(f"{len(files)} deliveries, {rows:,} rows, {size / 1e9:.2f} GB; {os.cpu_count()} cores")
        warm(files)
        baselines, runs = [], []
        for attempt in range(args.repeat):
            baselines.append(bare_load(files, work))
            runs.append(tre_ingest(args.deliveries, work))
            ingest_seconds, report_seconds, _ = runs[-1]
            print(
                f"  run {attempt + 1}: bare {baselines[-1]:.1f} s, tre {ingest_seconds + report_seconds:.1f} s "
                f"(ingest {ingest_seconds:.1f} s, report {report_seconds:.1f} s)"
            )
        baseline = min(baselines)
        ingest_seconds, report_seconds, report = min(runs, key=lambda r: r[0] + r[1])
        ours = ingest_seconds + report_seconds
        ratio = (rows / ours) / (rows / baseline)
        persons = report["population_register_persons"]
        print(f"bare DuckDB load:   {baseline:7.1f} s  {rows / baseline:12,.0f} rows/s")
        print(
            f"tre ingest + link:  {ours:7.1f} s  {rows / ours:12,.0f} rows/s  "
            f"(ingest {ingest_seconds:.1f} s, report {report_seconds:.1f} s; {persons:,} persons)"
        )
        print(f"ratio (tre / bare): {ratio:.3f}  (target ≥ {TARGET_RATIO:.3f}); time target ≤ {TARGET_SECONDS} s")
        peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e6
        print(f"peak memory of this process: {peak:.1f} GB")
        met = ours <= TARGET_SECONDS and ratio >= TARGET_RATIO
        print("targets met" if met else "targets NOT met")
        return 0 if met else 1
    finally:
        shutil.rmtree(work, ignore_errors=True)


if __name__ == "__main__":
    sys.exit(main())
