"""`generate`: a whole set of synthetic register deliveries, the same bytes for the same seed.

The population is simulated first; then persons are processed in fixed chunks, and each
source's generator turns a chunk into rows for each of its deliveries. Every random draw
comes from a stream named by (seed, what, chunk), so the output depends on the arguments
only, not on timing or threads.
"""

from __future__ import annotations

import importlib.metadata
import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from pathlib import Path

from tre.errors import UsageError
from tre.registers import SOURCES
from tre.synth import (
    dsf,
    helsestasjon,
    iplos,
    kuhr,
    kvalitetsregister,
    npr,
    reservasjon,
    ses,
    svangerskap,
    tannhelse,
)
from tre.synth.dirt import DirtSupply, Ledger, add_dirt
from tre.synth.frame import to_table
from tre.synth.population import assign_care, build_population
from tre.synth.scenario import Scenario, stream
from tre.synth.writer import FORMATS, GROUND_TRUTH, Deliveries, staged_directory

# The generators, one module per source (or family of sources).
GENERATORS = tuple(
    m.GENERATOR
    for m in (dsf, kuhr, iplos, npr, ses, helsestasjon, svangerskap, tannhelse, reservasjon, kvalitetsregister)
)
CHUNK = 200_000  # persons per chunk: bounds memory; fixed, so the output does not depend on it
MAX_PERSONS = 20_000_000
MAX_YEARS = 30
LAST_YEARS = (2017, 2039)  # KPR data exist from 2017; synthetic FNRs cover births up to 2039

Progress = Callable[[int, int], None]


@dataclass(frozen=True)
class DeliverySummary:
    file: str
    source: str
    period: str
    rows: int
    sha256: str


@dataclass
class Summary:
    """What a run wrote: files with row counts, the dirt per file and kind, how long it took."""

    out_dir: str
    format: str
    seed: int
    persons: int  # residents when the period began
    registered: int  # everyone registered at some time in the period (births and immigrants too)
    first_year: int
    last_year: int
    dirt_rate: float
    files: list[DeliverySummary] = field(default_factory=list)
    dirt: dict = field(default_factory=dict)  # file -> {kind: count}
    seconds: float = 0.0

    @property
    def rows(self) -> int:
        return sum(f.rows for f in self.files)

    def to_dict(self) -> dict:
        data = asdict(self)
        data["rows"] = self.rows
        return data


def check_arguments(*, persons, years, seed, format, dirt_rate, last_year) -> None:
    """Raise one UsageError naming every bad argument."""
    problems = []
    if not isinstance(persons, int) or not 1 <= persons <= MAX_PERSONS:
        problems.append(f"--persons must be a whole number from 1 to {MAX_PERSONS:,}, got {persons}")
    if not isinstance(years, int) or not 1 <= years <= MAX_YEARS:
        problems.append(f"--years must be a whole number from 1 to {MAX_YEARS}, got {years}")
    if not isinstance(seed, int) or not 0 <= seed < 2**63:
        problems.append(f"--seed must be a whole number from 0 to 2^63-1, got {seed}")
    if format not in FORMATS:
        problems.append(f"--format must be one of {', '.join(FORMATS)}, got {format!r}")
    if not isinstance(dirt_rate, int | float) or not 0 <= dirt_rate <= 0.2 or math.isnan(dirt_rate):
        problems.append(f"--dirt-rate must be between 0 and 0.2, got {dirt_rate}")
    if not isinstance(last_year, int) or not LAST_YEARS[0] <= last_year <= LAST_YEARS[1]:
        problems.append(f"--last-year must be from {LAST_YEARS[0]} to {LAST_YEARS[1]}, got {last_year}")
    if problems:
        raise UsageError("; ".join(problems))


def generate(
    out_dir,
    *,
    persons: int,
    years: int,
    seed: int,
    format: str = "csv",
    dirt_rate: float = 0.001,
    last_year: int = 2024,
    progress: Progress | None = None,
) -> Summary:
    """Write synthetic deliveries for `persons` residents over `years` years ending `last_year`.

    Writes `<source>-<period>.<format>` with a manifest for every source in the contract, and
    `dirt.json` (the deliberate dirt, row by row). A previous `tre synth` output in `out_dir`
    is replaced; on any failure nothing is left behind.
    """
    check_arguments(persons=persons, years=years, seed=seed, format=format, dirt_rate=dirt_rate, last_year=last_year)
    began = time.perf_counter()
    first_year = last_year - years + 1
    summary = Summary(str(Path(out_dir)), format, seed, persons, 0, first_year, last_year, float(dirt_rate))
    with staged_directory(Path(out_dir)) as stage:
        ghosts = min(200_000, 50 + int(persons * years * 15 * dirt_rate))
        pop = build_population(stream(seed, "population"), persons, first_year, last_year, ghosts)
        assign_care(stream(seed, "care"), pop)
        scenario = Scenario(pop, seed)
        summary.registered = pop.size
        chunks = math.ceil(pop.size / CHUNK)
        _report(progress, 0, chunks)
        producer = f"tre synth {_version()} (synthetic; seed={seed}, persons={persons}, years={years})"
        extra = {"synthetic": True, "seed": seed, "persons": persons, "years": years, "dirt_rate": float(dirt_rate)}
        deliveries = Deliveries(stage, format, producer, extra)
        try:
            manifests, ledger = _write_all(scenario, deliveries, chunks, seed, float(dirt_rate), progress)
        finally:
            deliveries.abort()
        names = {key: deliveries.file_name(*key) for key in deliveries.files}
        ledger.write(stage / GROUND_TRUTH, names, SOURCES)
        summary.files = [DeliverySummary(m.file, m.source, m.period, m.rows, m.sha256) for m in manifests]
        summary.dirt = ledger.counts(names, SOURCES)
    summary.seconds = round(time.perf_counter() - began, 2)
    return summary


def _write_all(scenario: Scenario, deliveries: Deliveries, chunks: int, seed: int, rate: float, progress):
    states = {}
    for generator in GENERATORS:
        for source, period in generator.periods(scenario):
            deliveries.open(source, period)
        states[generator] = generator.prepare(scenario, stream(seed, generator.name, "prepare"))
    supply = DirtSupply(scenario.pop)
    ledger = Ledger(rate)
    for chunk in range(chunks):
        people = slice(chunk * CHUNK, min((chunk + 1) * CHUNK, scenario.pop.size))
        for generator in GENERATORS:
            rng = stream(seed, generator.name, chunk)
            for source_name, period, frame in generator.frames(scenario, states[generator], people, rng):
                source = SOURCES[source_name]
                dirt_rng = stream(seed, "dirt", source_name, period, chunk)
                offset = deliveries.rows(source_name, period)
                frame = add_dirt(frame, source, period, offset, dirt_rng, supply, ledger)
                deliveries.write(source_name, period, to_table(frame, source, scenario.pop.ids))
        _report(progress, chunk + 1, chunks)
    return deliveries.close(), ledger


def _report(progress: Progress | None, done: int, total: int) -> None:
    if progress is not None:
        progress(done, total)


def _version() -> str:
    try:
        return importlib.metadata.version("tre")
    except importlib.metadata.PackageNotFoundError:
        return "unknown"
