"""What every source's generator shares: the population, record-id counters, label lists.

Each source module offers a `Generator`: the deliveries it writes (`periods`), population-wide
state computed once (`prepare`), and the rows of a slice of persons (`frames`, yielding
`(source, period, Frame)`). Most sources are delivered once a year: `yearly` builds those.
"""

from __future__ import annotations

import functools
import zlib
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa

from tre.registers import CODE_LISTS, municipalities
from tre.synth import assumptions as a
from tre.synth.dirt import unknown_municipalities
from tre.synth.frame import Codes, Frame
from tre.synth.population import Population, year_bounds


def stream(seed: int, *parts) -> np.random.Generator:
    """An independent random stream for (seed, parts): the same parts give the same numbers."""
    words = [zlib.crc32(str(p).encode()) if not isinstance(p, int) else p for p in parts]
    return np.random.default_rng([seed, *words])


def golden(person: np.ndarray, salt: int) -> np.ndarray:
    """A fixed pseudo-uniform number in [0, 1) per person, without storing one (e.g. the GP list)."""
    return ((person.astype(np.float64) + 1) * 0.6180339887498949 + salt * 0.7548776662466927) % 1.0


@dataclass
class Scenario:
    pop: Population
    seed: int
    counters: dict = field(default_factory=dict)

    @property
    def years(self) -> list[str]:
        return [str(y) for y in self.pop.years]

    def next_keys(self, name: str, n: int) -> np.ndarray:
        """`n` fresh running numbers for a source's record ids."""
        first = self.counters.get(name, 1)
        self.counters[name] = first + n
        return np.arange(first, first + n, dtype=np.int64)

    def codes(self, name: str, codes) -> Codes:
        """A column of codes into one of the contract's code lists."""
        return Codes.of(codes, _labels(name))

    def municipality(self, index) -> Codes:
        """Municipality codes; the label list ends with unknown numbers (for dirt)."""
        return Codes(np.asarray(index), municipality_labels())


@functools.cache
def _labels(name: str) -> pa.Array:
    return pa.array(list(CODE_LISTS[name]), pa.string())


@functools.cache
def municipality_labels() -> pa.Array:
    return pa.array([m.number for m in municipalities()] + list(unknown_municipalities()), pa.string())


@functools.cache
def county_of_municipality() -> np.ndarray:
    return np.array([m.number[:2] for m in municipalities()])


@dataclass(frozen=True)
class Practices:
    """The practices (clinics, units) of one kind in every municipality, as a label list."""

    labels: pa.Array
    offset: np.ndarray  # first label of each municipality
    count: np.ndarray  # practices in each municipality

    def of(self, municipality: np.ndarray, person: np.ndarray, salt: int) -> np.ndarray:
        """Each person's practice in their municipality (the same one year after year)."""
        return self.offset[municipality] + np.floor(golden(person, salt) * self.count[municipality]).astype(np.int64)


@functools.cache
def practices(prefix: str, inhabitants_per_practice: int) -> Practices:
    ms = municipalities()
    count = np.array([max(1, m.population // inhabitants_per_practice) for m in ms], dtype=np.int64)
    labels = [f"{prefix}-{m.number}-{k + 1:03d}" for m, n in zip(ms, count, strict=True) for k in range(n)]
    offset = np.r_[0, np.cumsum(count)[:-1]]
    return Practices(pa.array(labels, pa.string()), offset, count)


def condition_factor(conditions: np.ndarray, factor_of) -> np.ndarray:
    """The product over a person's conditions of `factor_of(condition)`."""
    factor = np.ones(len(conditions))
    for i, condition in enumerate(a.CONDITIONS):
        factor *= np.where(conditions & (1 << i), factor_of(condition), 1.0)
    return factor


def condition_count(conditions: np.ndarray) -> np.ndarray:
    count = np.zeros(len(conditions), dtype=np.int64)
    for i in range(len(a.CONDITIONS)):
        count += (conditions >> i) & 1
    return count


def registered(sc: Scenario, people: slice, year: int):
    """The persons of `people` registered in `year`, their first and last day, and exposure."""
    first, last = sc.pop.window(people, year)
    local = np.flatnonzero(first <= last)
    start, end = year_bounds(year)
    first, last = first[local], last[local]
    return people.start + local, first, last, (last - first + 1) / (end - start + 1)


def _no_state(sc: Scenario, rng) -> None:
    return None


@dataclass(frozen=True)
class Generator:
    """How one source (or family of sources) is generated; `name` names its random streams."""

    name: str
    periods: Callable[[Scenario], list[tuple[str, str]]]
    frames: Callable[..., Iterator[tuple[str, str, Frame]]]  # (scenario, state, people, rng)
    prepare: Callable[[Scenario, np.random.Generator], object] = _no_state


def yearly(source: str, build: Callable[..., Frame], prepare=_no_state) -> Generator:
    """A source delivered once a year: `build(scenario, state, people, year, rng)` makes a year's rows."""

    def frames(sc: Scenario, state, people: slice, rng) -> Iterator[tuple[str, str, Frame]]:
        for year in sc.pop.years:
            yield source, str(year), build(sc, state, people, year, rng)

    return Generator(source, lambda sc: [(source, y) for y in sc.years], frames, prepare)
