"""§ 4-6 statistics for a national year: every indicator built, checked and published.

    .venv/bin/python benchmarks/stats.py [--work DIR] [--persons N] [--repeat N]

Target (issue 17): all indicators for a national year (5.5 M persons, 357 municipalities) in
at most 60 s on 2 cores, with the checker's share of the time reported. The script makes the
synthetic national registers for 2024 and ingests them (once; kept in `--work`, default
benchmarks/out/stats), then runs `build_statistics` for 2024 `--repeat` times on a fresh
statistics folder (so no earlier run adds primary cells) and reports the fastest; then once
more on top of the last one (a rebuild: every cell compared with the run before). It also
checks that the denominators, the population on 1 January 2024 by municipality, agree with
Statistics Norway's figures in tre/data/kommuner-2024.csv.
"""

from __future__ import annotations

import argparse
import os
import resource
import shutil
import sys
import time
from pathlib import Path

from tre import synth
from tre.config import load_settings
from tre.db import Store, utc_now
from tre.enums import Role
from tre.linkage.ingest import ingest
from tre.linkage.zone import CentralZone
from tre.registers import municipalities
from tre.stats.build import build_statistics
from tre.stats.compute import build_year
from tre.stats.indicators import load_catalogue
from tre.users import add_user

TARGET_SECONDS = 60
NATIONAL = sum(m.population for m in municipalities())  # 5 550 203 on 1 January 2024


def prepare(work: Path, persons: int) -> tuple[dict, Store]:
    deliveries = work / "deliveries"
    environ = {"TRE_HOME": str(work / "home"), "TRE_PROJECTS_DIR": str(work / "projects")}
    settings = load_settings(environ)
    store = Store(settings.db_url)
    if not (deliveries / synth.GROUND_TRUTH).exists():
        started = time.perf_counter()
        synth.generate(deliveries, persons=persons, years=1, seed=2024, last_year=2024)
        print(f"synthetic registers: {persons:,} persons, 2024 ({time.perf_counter() - started:.0f} s)")
    if not (work / "home" / "ingested").exists():
        shutil.rmtree(work / "home", ignore_errors=True)
        settings.home.mkdir(mode=0o700, parents=True)
        store.migrate()
        with store.transaction() as session:
            add_user(session, "bench", Role.ADMIN, actor="bench", now=utc_now())
        started = time.perf_counter()
        outcomes = ingest(CentralZone(settings, environ=environ), store, [deliveries], actor="bench")
        if any(o.status == "failed" for o in outcomes):
            raise SystemExit("an ingest failed")
        (work / "home" / "ingested").touch()
        print(f"ingested in {time.perf_counter() - started:.0f} s")
    return environ, store


def agreement(environ: dict, store: Store) -> list[str]:
    """Municipalities whose population on 1 January 2024 differs from the published figure."""
    settings = load_settings(environ)
    catalogue = load_catalogue()
    with CentralZone(settings, environ=environ).reading(store) as con:
        data = build_year(con, [catalogue.get("fastlege")], 2024)
    cube = data.cubes["fastlege"]
    region, sex, age = cube.hierarchies
    total = cube.population[region.index("0"), sex.index("0"), age.index("alle")]
    print(f"population on 1 January 2024: {int(total):,} (Statistics Norway: {NATIONAL:,}); basis {data.basis}")
    return [
        f"{m.number} {m.name}: {int(cube.population[region.index(m.number), sex.index('0'), age.index('alle')])} vs {m.population}"
        for m in municipalities()
        if cube.population[region.index(m.number), sex.index("0"), age.index("alle")] != m.population
    ]


def one_build(environ: dict, store: Store, *, fresh: bool):
    settings = load_settings(environ)
    if fresh:
        shutil.rmtree(settings.stats_dir, ignore_errors=True)
    return build_statistics(settings, store, actor="bench", years=[2024])


def report(label: str, result) -> None:
    s = result.seconds
    moves = sum(t["audit"]["by_moves"] for t in result.tables)
    lp = sum(t["audit"]["by_lp"] for t in result.tables)
    print(
        f"{label}: {s['total']:.1f} s (compute {s['compute']:.1f}, checks {s['check']:.1f} = "
        f"{100 * s['check'] / s['total']:.0f} %, record and files {s['write']:.1f}); {result.cells:,} cells, "
        f"{result.hidden:,} hidden ({100 * result.hidden / result.cells:.1f} %); audit: {moves:,} cells by moves, {lp:,} by LP"
    )
    for t in result.tables:
        print(
            f"  {t['indicator']:<22} hidden {t['hidden']:>5} (primary {t['primary']:>5}) "
            f"audit {t['audit']['by_moves']:>5}+{t['audit']['by_lp']:<4} check {t['checker_seconds']:.2f} s"
        )


def main(argv=None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--work", type=Path, default=Path(__file__).parent / "out" / "stats")
    parser.add_argument("--persons", type=int, default=NATIONAL)
    parser.add_argument("--repeat", type=int, default=1)
    args = parser.parse_args(argv)
    args.work.mkdir(parents=True, exist_ok=True)
    print(f"load average before: {' '.join(f'{x:.2f}' for x in os.getloadavg())}; {os.cpu_count()} cores")
    environ, store = prepare(args.work, args.persons)
    mismatches = agreement(environ, store)
    print(f"municipalities whose denominator differs from kommuner-2024.csv: {len(mismatches)}")
    for line in mismatches[:10]:
        print(f"  {line}")
    best = None
    for _ in range(args.repeat):
        result = one_build(environ, store, fresh=True)
        if best is None or result.seconds["total"] < best.seconds["total"]:
            best = result
    report("build (fresh record)", best)
    report("rebuild (compared with the run before)", one_build(environ, store, fresh=False))
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024 / 1024
    met = best.seconds["total"] <= TARGET_SECONDS
    print(f"target <= {TARGET_SECONDS} s: {'met' if met else 'NOT met'}; peak memory {peak:.2f} GB")
    print(f"load average after: {' '.join(f'{x:.2f}' for x in os.getloadavg())}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
