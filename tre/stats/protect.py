"""Every published cell through `tre.output_check`: primary checks, linked suppression, markers.

Per indicator and year, on the whole cube (every municipality, county and the country, by
sex and age band, with every total):

- primary checks from the engine (`build_cell_findings` on a `Table` of the cube's cells):
  fewer persons than the threshold (`MinimumThresholdCheck`), a population under the
  threshold (`DenominatorCheck`), dominance of the hours and of the events by one or two
  persons (`NKCheck`, `PPercentCheck`); for counts of persons, a group where everyone or all
  but a few have the attribute (`ClassDisclosureCheck`: the few without are a small group);
- differencing against everything published before for the same year (`DifferencingCheck`):
  a cell hidden in an earlier run stays hidden (otherwise the two runs together publish it),
  and a published cell whose value changed by less than its protection width is hidden (the
  change is itself a count of a small group of records);
- secondary suppression consistent across all tables that share margins
  (`output_check.linked.protect_linked`: municipality ⊂ county ⊂ country, sex, nested age
  bands), audited by linear programmes over the whole cube, where an attacker also knows the
  published population of every cell;
- markers: `:` for a hidden value (with the public reason: a small group, or a small
  population), `.` where the statistic is not defined (nobody in the group). Which hidden
  cells are primary is never published: it would tell that their count is under the threshold.
"""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import numpy as np

from tre.output_check import Parameters, Table, build_cell_findings
from tre.output_check.kinds import Check
from tre.output_check.linked import LinkedAudit, protect_linked
from tre.stats.compute import Cube

HIDDEN, NOT_DEFINED = ":", "."
# Public reasons for a marker; their texts are in `site.MARKERS` and the data dictionary.
SMALL_GROUP, SMALL_POPULATION, NOBODY = "konfidensiell", "liten_befolkning", "ingen"
EARLIER = "EarlierPublication"  # internal reason: hidden in an earlier run of the same year
KEPT_WIDTH = 1e-3  # what a cell kept hidden only to protect others owes: not to be one value


@dataclass
class Earlier:
    """What was published before for one indicator and year (from the publication record)."""

    hidden: np.ndarray  # hidden in any earlier run
    flagged: np.ndarray | None = None  # ... because a check flagged it (not only to protect others)
    values: list[np.ndarray] = field(default_factory=list)  # per earlier run: the protected quantity, NaN if hidden
    units: list[np.ndarray] = field(default_factory=list)  # per earlier run: persons behind it, NaN if hidden
    runs: list[int] = field(default_factory=list)


@dataclass
class ProtectedCube:
    cube: Cube
    hidden: np.ndarray
    primary: np.ndarray
    checks: dict[str, np.ndarray]  # internal: which check (or EARLIER) flagged which cells
    protected: np.ndarray  # the exact quantity the published value gives away (events, persons, hours)
    marker: np.ndarray  # "", ":" or "."
    reason: np.ndarray  # "", SMALL_GROUP, SMALL_POPULATION or NOBODY
    audit: LinkedAudit
    passes: int = 0
    repairs: int = 0
    seconds: float = 0.0  # time spent in tre.output_check

    @property
    def secondary(self) -> np.ndarray:
        return self.hidden & ~self.primary

    def internal_checks(self) -> np.ndarray:
        """Per cell, the internal reasons as text ("MinimumThresholdCheck,secondary")."""
        out = np.full(self.hidden.shape, "", dtype=object)
        for name, mask in self.checks.items():
            out[mask] = np.where(out[mask] == "", name, out[mask] + "," + name)
        secondary = self.secondary
        out[secondary] = np.where(out[secondary] == "", "secondary", out[secondary] + ",secondary")
        return out


def protection(cube: Cube) -> np.ndarray:
    """The additive quantity a published cell gives away exactly (with the public population)."""
    return cube.value.astype(float)


def widths(cube: Cube, params: Parameters) -> np.ndarray:
    """How wide an attacker's interval for each hidden cell must be, in `protection` units."""
    value = np.abs(protection(cube))
    if cube.indicator.kind == "share":
        return np.full(cube.shape, float(params.protection_width))
    magnitude = np.maximum(params.magnitude_protection * value, 1.0)
    if cube.indicator.kind == "rate":
        return np.maximum(magnitude, params.protection_width)
    return magnitude


def _table(cube: Cube) -> Table:
    """The cube's cells as the engine's `Table`, for its cell-by-cell checks."""
    zeros = np.zeros(cube.shape, dtype=np.int64)
    categories = tuple(tuple(h.codes) for h in cube.hierarchies)
    common = {"dimensions": ("region", "sex", "age"), "categories": categories, "count": cube.units.astype(np.int64)}
    kind = cube.indicator.kind
    if kind == "share":
        with np.errstate(divide="ignore", invalid="ignore"):
            share = np.where(cube.population > 0, cube.units / cube.population, np.nan)
        return Table(statistic="rate", value=share, denominator=cube.population, **common)
    return Table(
        statistic="sum" if kind == "rate" else "mean",
        value=cube.value,
        total=cube.value,
        top=cube.top,
        negative=zeros,
        missing=zeros,
        denominator=cube.population if kind == "rate" else None,
        **common,
    )


def primary_checks(cube: Cube, params: Parameters, earlier: Earlier | None) -> dict[str, np.ndarray]:
    """Per check, the cells it flags (only checks that flag something)."""
    checks = {str(c): m for c, m in build_cell_findings(_table(cube), params).items()}
    if cube.indicator.counts_persons:
        without = cube.population - cube.units
        few = (cube.units > 0) & (without < params.threshold)
        if not params.class_disclosure:
            few &= without > 0
        if few.any():
            checks[str(Check.CLASS_DISCLOSURE)] = few
    if earlier is not None:
        if earlier.hidden.any():
            checks[EARLIER] = earlier.hidden.copy()
        value, units, width = protection(cube), cube.units.astype(float), widths(cube, params)
        revised = np.zeros(cube.shape, dtype=bool)
        for before, before_units in zip(earlier.values, earlier.units, strict=True):
            if cube.indicator.kind == "mean":  # the contributors behind a mean changed by a few
                change = np.abs(units - before_units)
                revised |= ~np.isnan(before_units) & (change > 0) & (change < params.threshold)
            else:
                change = np.abs(value - before)
                revised |= ~np.isnan(before) & (change > 1e-9) & (change < width - 1e-9)
        if revised.any():
            checks[str(Check.DIFFERENCING)] = revised
    return {name: mask for name, mask in checks.items() if mask.any()}


def protect(cube: Cube, params: Parameters, earlier: Earlier | None = None) -> ProtectedCube:
    """Check, suppress and audit one cube; the markers every hidden or undefined cell shows."""
    started = time.perf_counter()
    checks = primary_checks(cube, params, earlier)
    primary = np.zeros(cube.shape, dtype=bool)
    for mask in checks.values():
        primary |= mask
    upper = cube.population.astype(float) if cube.indicator.counts_persons else None
    width = widths(cube, params)
    if earlier is not None and earlier.flagged is not None:
        # A cell hidden before only to protect others stays hidden, owing no width of its own
        # (it must still not be one value): otherwise every rebuild would hide more.
        only_kept = earlier.hidden & ~earlier.flagged
        for name, mask in checks.items():
            if name != EARLIER:
                only_kept &= ~mask
        width = np.where(only_kept, KEPT_WIDTH, width)
    result = protect_linked(protection(cube), primary, width, cube.hierarchies, upper=upper)
    seconds = time.perf_counter() - started
    hidden = result.hidden
    shown = cube.shown()
    marker = np.full(cube.shape, "", dtype=object)
    reason = np.full(cube.shape, "", dtype=object)
    undefined = ~hidden & np.isnan(shown)
    marker[undefined], reason[undefined] = NOT_DEFINED, NOBODY
    marker[hidden] = HIDDEN
    small_population = hidden & (cube.population < params.threshold) & (cube.indicator.kind != "mean")
    reason[hidden] = SMALL_GROUP
    reason[small_population] = SMALL_POPULATION
    return ProtectedCube(
        cube=cube,
        hidden=hidden,
        primary=primary,
        checks=checks,
        protected=np.where(hidden, np.nan, protection(cube)),
        marker=marker,
        reason=reason,
        audit=result.audit,
        passes=result.passes,
        repairs=result.repairs,
        seconds=seconds,
    )


def rounded(cube: Cube, hidden: np.ndarray) -> np.ndarray:
    """The published values: one decimal, NaN where hidden or not defined."""
    return np.where(hidden, np.nan, np.round(cube.shown(), 1))
