"""Deliberate dirt: the errors real deliveries carry, at a known rate, with a ledger of each.

Each dirty row carries exactly one kind of dirt, so an ingest's reject counts can be compared
with `dirt.json` kind by kind:

- `bad_check_digits`: the ID number's last digit is changed, so the mod-11 check fails.
- `unknown_fnr`: a valid synthetic FNR that belongs to nobody in the population register.
- `duplicate`: an exact copy of another row (same record id), appended to the chunk.
- `after_death`: the row is given to a person who died earlier that year and dated after the
  death (all its dates shift together, so the row stays consistent in itself).
- `unknown_municipality`: a municipality number that does not exist in 2024 (mostly numbers
  of 2020-2023 that the 2024 county reform retired).

The population register, the ID history and the key table of historic IPLOS are the
reference the ingest checks against, so they carry no dirt.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from enum import StrEnum
from pathlib import Path

import numpy as np

from tre.registers import Source, municipality_numbers
from tre.synth.frame import NULL_DAY, Days, Frame, Ids, Seconds
from tre.synth.population import Population, year_bounds

CLEAN_SOURCES = frozenset({"dsf", "dsf_idhistory", "iplos_historisk_nokkel"})

# Municipality numbers of 2020-2023 retired on 1 January 2024, and a plain wrong one.
RETIRED_MUNICIPALITIES = ("3001", "3003", "3005", "3024", "3803", "3805", "5401", "5403", "9999")


class DirtKind(StrEnum):
    BAD_CHECK_DIGITS = "bad_check_digits"
    UNKNOWN_FNR = "unknown_fnr"
    DUPLICATE = "duplicate"
    AFTER_DEATH = "after_death"
    UNKNOWN_MUNICIPALITY = "unknown_municipality"


def unknown_municipalities() -> tuple[str, ...]:
    known = municipality_numbers()
    return tuple(m for m in RETIRED_MUNICIPALITIES if m not in known)


def dirt_kinds(source: Source) -> tuple[DirtKind, ...]:
    """The kinds of dirt a source's deliveries can carry."""
    if source.name in CLEAN_SOURCES:
        return ()
    names = set(source.column_names)
    kinds = []
    if "fnr" in names:
        kinds += [DirtKind.BAD_CHECK_DIGITS, DirtKind.UNKNOWN_FNR]
    if source.key:
        kinds.append(DirtKind.DUPLICATE)
    if "fnr" in names and source.event_date:
        kinds.append(DirtKind.AFTER_DEATH)
    if "municipality" in names:
        kinds.append(DirtKind.UNKNOWN_MUNICIPALITY)
    return tuple(kinds)


@dataclass
class Ledger:
    """Which rows of which delivery carry which dirt (row numbers count data rows from 0)."""

    rate: float
    rows: dict = field(default_factory=dict)  # (source, period) -> {kind: [row numbers]}

    def add(self, source: str, period: str, kind: DirtKind, rows: np.ndarray) -> None:
        kinds = self.rows.setdefault((source, period), {})
        kinds.setdefault(kind.value, []).extend(np.asarray(rows).tolist())

    def counts(self, file_names: dict, sources: dict) -> dict:
        """{file name: {kind: count}} for every delivery and every kind it can carry, zeros too."""
        return {
            file_names[key]: {
                kind.value: len(self.rows.get(key, {}).get(kind.value, [])) for kind in dirt_kinds(sources[key[0]])
            }
            for key in sorted(file_names)
        }

    def write(self, path: Path, file_names: dict, sources: dict) -> None:
        files = {}
        for key in sorted(file_names):
            found = self.rows.get(key, {})
            files[file_names[key]] = {
                kind.value: {"count": len(found.get(kind.value, [])), "rows": sorted(found.get(kind.value, []))}
                for kind in dirt_kinds(sources[key[0]])
            }
        totals = {}
        for kinds in files.values():
            for kind, entry in kinds.items():
                totals[kind] = totals.get(kind, 0) + entry["count"]
        document = {
            "about": "ground truth of the deliberate dirt in these synthetic deliveries; rows count data rows from 0",
            "rate": self.rate,
            "totals": totals,
            "files": files,
        }
        path.write_text(json.dumps(document, indent=1) + "\n", encoding="utf-8")


@dataclass
class DirtSupply:
    """What the dirt needs from the population: ghosts to hand out, the dead of each year."""

    pop: Population
    next_ghost: int = 0
    _dead: dict = field(default_factory=dict)

    def ghosts(self, n: int) -> list[str]:
        keys = self.pop.ghost_keys
        picked = keys[(self.next_ghost + np.arange(n)) % len(keys)]
        self.next_ghost += n
        return [f"{k:011d}" for k in picked]

    def dead(self, year: int) -> np.ndarray:
        """People who died in `year` before its last day (so that a later day exists)."""
        if year not in self._dead:
            start, end = year_bounds(year)
            death = self.pop.death
            self._dead[year] = np.flatnonzero((death >= start) & (death < end))
        return self._dead[year]


def add_dirt(
    frame: Frame,
    source: Source,
    period: str,
    offset: int,
    rng: np.random.Generator,
    supply: DirtSupply,
    ledger: Ledger,
) -> Frame:
    """Dirty about `ledger.rate` of the frame's rows per kind; record them at `offset` + row."""
    kinds = list(dirt_kinds(source))
    n = len(frame)
    if not kinds or n == 0 or ledger.rate <= 0:
        return frame
    if DirtKind.AFTER_DEATH in kinds and (not period.isdigit() or len(supply.dead(int(period))) == 0):
        kinds.remove(DirtKind.AFTER_DEATH)
    counts = rng.binomial(n, ledger.rate, len(kinds))
    if counts.sum() > n:  # tiny frames at a high rate
        counts = np.floor(counts * n / counts.sum()).astype(np.int64)
    chosen = rng.choice(n, int(counts.sum()), replace=False)
    parts = dict(zip(kinds, np.split(chosen, np.cumsum(counts)[:-1]), strict=True))

    duplicates = parts.get(DirtKind.DUPLICATE)
    if duplicates is not None and len(duplicates):
        frame = frame.append(frame.take(np.sort(duplicates)))
        ledger.add(source.name, period, DirtKind.DUPLICATE, offset + n + np.arange(len(duplicates)))
    for kind, rows in parts.items():
        rows = np.sort(rows)
        if kind is DirtKind.DUPLICATE or not len(rows):
            continue
        if kind is DirtKind.BAD_CHECK_DIGITS:
            keys = supply.pop.id_keys[frame.columns["fnr"].index[rows]]
            last = keys % 10
            _replace_ids(frame, rows, [f"{k:011d}" for k in keys - last + (last + 1) % 10])
        elif kind is DirtKind.UNKNOWN_FNR:
            _replace_ids(frame, rows, supply.ghosts(len(rows)))
        elif kind is DirtKind.AFTER_DEATH:
            _after_death(frame, source, int(period), rows, rng, supply)
        elif kind is DirtKind.UNKNOWN_MUNICIPALITY:
            column = frame.columns["municipality"]
            unknown = unknown_municipalities()
            first_unknown = len(column.labels) - len(unknown)
            column.codes[rows] = first_unknown + rng.integers(0, len(unknown), len(rows))
        ledger.add(source.name, period, kind, offset + rows)
    return frame


def _replace_ids(frame: Frame, rows: np.ndarray, values: list[str]) -> None:
    column: Ids = frame.columns["fnr"]
    column.replaced_rows = np.r_[column.replaced_rows, rows].astype(np.int64)
    column.replaced_values = column.replaced_values + list(values)


def _after_death(frame: Frame, source: Source, year: int, rows, rng, supply: DirtSupply) -> None:
    pop = supply.pop
    dead = supply.dead(year)
    who = dead[rng.integers(0, len(dead), len(rows))]
    death = pop.death[who]
    _, end = year_bounds(year)
    new_day = death + 1 + np.floor(rng.random(len(rows)) * (end - death)).astype(np.int64)
    event = frame.columns[source.event_date]
    old_day = event.values[rows] if isinstance(event, Days) else event.values[rows] // 86400
    shift = new_day - old_day
    for column in frame.columns.values():
        if isinstance(column, Days | Seconds):
            values = column.values[rows]
            step = shift if isinstance(column, Days) else shift * 86400
            column.values[rows] = np.where(values == NULL_DAY, values, values + step)
    frame.columns["fnr"].index[rows] = pop.id_index(who, death)
    frame.person[rows] = who
