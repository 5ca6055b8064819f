"""Benchmark: a project extract for a large cohort from national synthetic data.

Target (issue 4): a 300 k-person cohort, 5 years, 10 variables, within 20 s on 2 cores and
within 3x a bare DuckDB join of the same rows, measured in the same run.

    .venv/bin/python benchmarks/extract.py --home /data/tre-bench [--persons 5500000 --years 5]

The first run generates the synthetic deliveries (Parquet) and ingests them into `--home`;
later runs reuse them. The extract is built twice (the first build creates the project's
pseudonyms; the second is a rebuild) and the baseline query runs twice; the best of each is
reported.
"""

from __future__ import annotations

import argparse
import os
import platform
import sys
import tempfile
import time
from pathlib import Path

import duckdb

from tre.config import load_settings
from tre.db import Store
from tre.demo import ADMIN, DEMO_USERS
from tre.linkage import extracts
from tre.linkage.ingest import ingest
from tre.linkage.zone import CentralZone
from tre.users import add_user
from tre.workspace import provision_project

APPROVAL = """
id = "bench-extract"
kind = "hrl20"
reference = "bench"
basis = "hrl20"
legal_basis = "hrl § 20 (benchmark)"
purpose = "research"
purpose_description = "benchmark"
applicant = "benchmark"
recipient = { org_number = "100000067", name = "benchmark", kind = "research_institute" }
linkage = true
application_complete = 2026-01-05
valid_from = 2026-01-01
valid_until = 2030-12-31
retention_years = 1
date_precision = "month"

[project]
id = "bench"
title = "Extract benchmark"

[[members]]
user = "rita"
role = "pi"

[period]
from = {first}-01-01
to = {last}-12-31

[sources]
npr = ["admission_date", "discharge_date", "icd10_main"]
kuhr = ["contact_time", "provider_type", "contact_type", "icpc2"]
dsf = ["birth_date", "sex", "municipality"]

[cohort]
source = "npr"

[cohort.codes]
icd10_main = ["E11"]

[cohort.age]
min = {min_age}
"""

BASELINE = """
WITH map AS (SELECT pid, canonical_pid FROM registers.__tre_person_map),
cohort AS (
    SELECT DISTINCT coalesce(m.canonical_pid, n.pid) AS pid FROM registers.npr n LEFT JOIN map m USING (pid)
    WHERE starts_with(n.icd10_main, 'E11') AND n.admission_date BETWEEN $from AND $to
),
dsf AS (
    SELECT coalesce(m.canonical_pid, d.pid) AS pid, d.birth_date, d.sex, d.municipality
    FROM registers.dsf d LEFT JOIN map m USING (pid)
    QUALIFY row_number() OVER (PARTITION BY coalesce(m.canonical_pid, d.pid) ORDER BY d.__delivery DESC) = 1
),
people AS (SELECT c.pid, d.* EXCLUDE (pid) FROM cohort c JOIN dsf d USING (pid)
           WHERE date_sub('year', d.birth_date, $from) >= $min_age)
SELECT * FROM people
"""


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--home", type=Path, required=True, help="TRE_HOME to build (or reuse) the national data in")
    parser.add_argument("--persons", type=int, default=5_500_000)
    parser.add_argument("--years", type=int, default=5)
    parser.add_argument("--last-year", type=int, default=2024)
    parser.add_argument("--min-age", type=int, default=45, help="tunes the cohort towards 300 k persons")
    args = parser.parse_args(argv)

    env = {k: v for k, v in os.environ.items() if not k.startswith("TRE_")}
    env["TRE_CLI_IDENTITY"] = "demo"  # who acts is asserted here, as in make demo (tre/identity.py)
    env["TRE_PROJECT_DISK_QUOTA"] = "0"  # no loop-mounted volumes unless a test wants them
    env.update(
        TRE_HOME=str(args.home),
        TRE_PROJECTS_DIR=str(args.home / "projects"),
        TRE_APPROVALS_DIR=str(args.home / "approvals"),
    )
    settings = load_settings(env)
    store = Store(settings.db_url)
    store.migrate()
    zone = CentralZone(settings, environ=env)
    first = args.last_year - args.years + 1
    deliveries = args.home / "deliveries" / f"national-{args.persons}-{args.years}y"
    if not (deliveries / "dirt.json").exists():
        from tre import synth

        began = time.perf_counter()
        synth.generate(
            deliveries, persons=args.persons, years=args.years, seed=1, format="parquet", last_year=args.last_year
        )
        print(f"synth: {time.perf_counter() - began:.0f} s", file=sys.stderr)
    with store.transaction() as session:
        for name, roles in DEMO_USERS.items():
            for role in roles:
                add_user(session, name, role, actor=ADMIN, now=store.clock())
    began = time.perf_counter()
    outcomes = ingest(zone, store, [deliveries], actor=ADMIN)
    if any(o.status == "ingested" for o in outcomes):
        print(f"ingest: {time.perf_counter() - began:.0f} s", file=sys.stderr)

    settings.approvals_dir.mkdir(parents=True, exist_ok=True)
    (settings.approvals_dir / "bench.toml").write_text(
        APPROVAL.format(first=first, last=args.last_year, min_age=args.min_age), encoding="utf-8"
    )
    from tre import approvals

    with store.transaction() as session:
        approvals.sync(session, settings.approvals_dir, actor=ADMIN, now=store.clock())
        provision_project(
            session,
            "bench",
            projects_dir=settings.projects_dir,
            prefix=settings.os_account_prefix,
            accounts=None,
            actor=ADMIN,
            now=store.clock(),
        )

    builds = []
    for _ in range(2):
        began = time.perf_counter()
        result = extracts.build_extract(settings, zone, store, "bench", actor=ADMIN)
        builds.append(time.perf_counter() - began)
    rows = sum(result.tables.values())

    baselines = []
    params = {"from": f"{first}-01-01", "to": f"{args.last_year}-12-31", "min_age": args.min_age}
    for _ in range(2):
        with tempfile.TemporaryDirectory(dir=settings.central_dir) as tmp, zone.reading(store) as con:
            began = time.perf_counter()
            con.execute(f"ATTACH '{tmp}/bare.duckdb' AS bare")
            con.execute(f"CREATE TABLE bare.people AS {BASELINE}", params)
            con.execute(
                "CREATE TABLE bare.kuhr AS SELECT k.pid, k.contact_time, k.provider_type, k.contact_type, k.icpc2 "
                "FROM registers.kuhr k JOIN bare.people p USING (pid) WHERE CAST(k.contact_time AS DATE) BETWEEN $from AND $to",
                {"from": params["from"], "to": params["to"]},
            )
            con.execute(
                "CREATE TABLE bare.npr AS SELECT n.pid, n.admission_date, n.discharge_date, n.icd10_main "
                "FROM registers.npr n JOIN bare.people p USING (pid) WHERE n.admission_date BETWEEN $from AND $to",
                {"from": params["from"], "to": params["to"]},
            )
            for table in ("people", "kuhr", "npr"):
                con.execute(f"COPY bare.{table} TO '{tmp}/{table}.parquet' (FORMAT parquet, COMPRESSION zstd)")
            baseline_rows = sum(
                con.execute(f"SELECT count(*) FROM bare.{t}").fetchall()[0][0] for t in ("people", "kuhr", "npr")
            )
            con.execute("DETACH bare")
            baselines.append(time.perf_counter() - began)

    build, baseline = min(builds), min(baselines)
    print(
        f"machine: {platform.machine()}, {os.cpu_count()} cores, Python {platform.python_version()}, DuckDB {duckdb.__version__}"
    )
    print(f"national data: {args.persons:,} persons x {args.years} years ({first}-{args.last_year})")
    print(f"cohort: {result.persons:,} persons; {rows:,} rows in {len(result.tables)} tables; 10 variables")
    print(f"extract build: {build:.1f} s (first build with new pseudonyms {builds[0]:.1f} s); target <= 20 s")
    print(f"bare DuckDB join of the same rows: {baseline:.1f} s ({baseline_rows:,} rows)")
    print(f"ratio: {build / baseline:.2f}x (target <= 3x)")
    return 0


if __name__ == "__main__":
    sys.exit(main())
