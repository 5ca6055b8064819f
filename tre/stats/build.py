"""`tre stats build`: compute, check, record and publish the § 4-6 statistics.

1. compute every indicator for each year from the register store (read lock on the central
   zone; `compute`);
2. check and protect every cube with `tre.output_check` against everything the record says
   was published before for that year (`protect`);
3. write the run into the publication record, in one transaction (`record`): from here on it
   counts as published;
4. write the publication (JSON-stat, PC-Axis, CSV, the dictionary) into a new folder and
   switch the `publication` link to it in one step, so readers see the old files or the new
   ones, never a mix; the previous folder is removed;
5. an audit event `stats.publish`.
"""

from __future__ import annotations

import os
import shutil
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

from tre import audit
from tre.config import Settings
from tre.db import Clock, Store, utc_now
from tre.errors import UserError
from tre.linkage.zone import CentralZone
from tre.output_check import Parameters, load_parameters
from tre.stats.compute import build_year, delivered_years
from tre.stats.formats import write_publication
from tre.stats.indicators import Catalogue, load_catalogue
from tre.stats.protect import protect
from tre.stats.record import locked, open_record

PUBLICATION = "publication"


@dataclass
class BuildResult:
    run: int
    years: list[int]
    tables: list[dict] = field(default_factory=list)
    coverage: dict = field(default_factory=dict)
    seconds: dict = field(default_factory=dict)
    publication: Path | None = None

    @property
    def cells(self) -> int:
        return sum(t["cells"] for t in self.tables)

    @property
    def hidden(self) -> int:
        return sum(t["hidden"] for t in self.tables)

    def as_dict(self) -> dict:
        return {
            "run": self.run,
            "years": self.years,
            "cells": self.cells,
            "hidden": self.hidden,
            "tables": self.tables,
            "coverage": self.coverage,
            "seconds": {k: round(v, 3) for k, v in self.seconds.items()},
            "publication": str(self.publication) if self.publication else None,
        }


def build_statistics(
    settings: Settings,
    metadata: Store,
    *,
    actor: str,
    years: list[int] | None = None,
    clock: Clock = utc_now,
    catalogue: Catalogue | None = None,
    params: Parameters | None = None,
    progress: Callable[[str], None] = lambda _: None,
) -> BuildResult:
    """Build, check, record and publish every indicator for `years` (default: every year the
    population register was delivered for)."""
    catalogue = catalogue or load_catalogue()
    params = params or load_parameters()
    started = time.perf_counter()
    stats_dir = settings.stats_dir
    with locked(stats_dir):
        zone = CentralZone(settings, clock=clock)
        computed = []
        with zone.reading(metadata) as con:
            available = delivered_years(con)
            wanted = sorted(set(years)) if years else available
            if not wanted:
                raise UserError("no population register (dsf) has been ingested: `tre ingest` its deliveries first")
            missing = [y for y in wanted if y not in available]
            if missing:
                raise UserError(
                    f"no population register for {', '.join(map(str, missing))}: the denominators need it; "
                    f"years that can be built: {', '.join(map(str, available)) or 'none'}"
                )
            for year in wanted:
                progress(f"computing {len(catalogue.indicators)} indicators for {year}")
                computed.append(build_year(con, list(catalogue.indicators), year))
            dropped = _drop_person_tables(con)
        # § 4-6 second paragraph: the person-level working set is gone (its tables dropped, the
        # in-memory connection and its spill files closed) before anything is published.
        with metadata.transaction() as session:
            audit.record(
                session,
                at=clock(),
                actor=actor,
                action="stats.forget_persons",
                object="stats",
                details={"years": wanted, "tables_left_by_compute": dropped},
            )
        computing = time.perf_counter() - started
        with open_record(stats_dir, write=True) as record:
            run = record.next_run()
            result = BuildResult(run, wanted)
            protected = []
            checking = 0.0
            for data in computed:
                progress(f"checking and protecting {data.year} (run {run})")
                for indicator in catalogue.indicators:
                    cube = data.cubes[indicator.id]
                    earlier = record.earlier(cube.shape, cube.hierarchies, indicator.id, data.year)
                    p = protect(cube, params, earlier)
                    if p.audit.under_protected:  # protect_linked repairs until none is left
                        raise AssertionError(f"{indicator.id} {data.year}: hidden cells left under-protected")
                    checking += p.seconds
                    protected.append(p)
                    result.tables.append(_table_summary(p, earlier is not None))
                    cov = data.coverage[indicator.id]
                    result.coverage[f"{indicator.id}/{data.year}"] = {
                        "events_outside_population": cov.events_outside,
                        "persons_outside_population": cov.persons_outside,
                        "rows_without_person": cov.unlinked_rows,
                    }
            now = clock()
            writing = time.perf_counter()
            record.write(
                run,
                at=now,
                actor=actor,
                years=wanted,
                indicators_version=catalogue.version,
                parameters_version=params.version,
                protected=protected,
            )
            cells = record.publication()
        meta = {"run": run, "indicators_version": catalogue.version, "parameters_version": params.version}
        result.publication = publish(
            stats_dir, PUBLICATION, lambda d: write_publication(d, catalogue, cells, meta=meta, now=now), run
        )
        result.seconds = {
            "compute": computing,
            "check": checking,
            "write": time.perf_counter() - writing,
            "total": time.perf_counter() - started,
        }
    with metadata.transaction() as session:
        audit.record(
            session,
            at=clock(),
            actor=actor,
            action="stats.publish",
            object=f"stats-run:{run}",
            details={
                "years": wanted,
                "cells": result.cells,
                "hidden": result.hidden,
                "indicators_version": catalogue.version,
                "parameters_version": params.version,
            },
        )
    return result


def _drop_person_tables(con) -> int:
    """Drop every temporary table of the computation (rows about persons) still there; returns
    how many were (compute drops its own: anything counted here is a leak it failed to mend)."""
    names = [r[0] for r in con.execute("SELECT table_name FROM duckdb_tables() WHERE temporary").fetchall()]
    for name in names:
        con.execute(f'DROP TABLE IF EXISTS temp."{name}"')
    return len(names)


def _table_summary(p, compared: bool) -> dict:
    checks = {name: int(mask.sum()) for name, mask in p.checks.items()}
    return {
        "indicator": p.cube.indicator.id,
        "year": p.cube.year,
        "basis": p.cube.basis,
        "cells": int(p.hidden.size),
        "hidden": int(p.hidden.sum()),
        "primary": int(p.primary.sum()),
        "secondary": int(p.secondary.sum()),
        "checks": checks,
        "compared_with_earlier_runs": compared,
        "audit": {"cells": p.audit.checked, "by_moves": p.audit.by_moves, "by_lp": p.audit.by_lp, "repairs": p.repairs},
        "checker_seconds": round(p.seconds, 3),
    }


def publish(stats_dir: Path, name: str, write: Callable[[Path], object], serial: int | str) -> Path:
    """Write a folder with `write` and make `stats_dir/name` point at it in one step (a symbolic
    link replaced atomically); earlier folders of that name are removed. Returns the link."""
    link = stats_dir / name
    target = stats_dir / f"{name}-{serial}-{os.getpid()}"
    if target.exists():
        shutil.rmtree(target)
    try:
        write(target)
    except BaseException:
        shutil.rmtree(target, ignore_errors=True)
        raise
    staged = stats_dir / f".{name}.link-{os.getpid()}"
    if staged.is_symlink() or staged.exists():
        staged.unlink()
    staged.symlink_to(target.name)
    if link.exists() and not link.is_symlink():
        shutil.rmtree(link)
    os.replace(staged, link)
    for old in stats_dir.glob(f"{name}-*"):
        if old.is_dir() and old.name != target.name:
            shutil.rmtree(old, ignore_errors=True)
    return link
