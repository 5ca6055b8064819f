"""The synthetic population: who lives where, when they arrive and leave, and their ID numbers.

Everything is a numpy array over persons (index = person). Dates are day numbers (days since
1970-01-01). The population starts with `persons` residents on 1 January of the first year
and changes year by year: deaths, emigration, births, immigration, moves between
municipalities. Immigrants are first registered with a D-number and most later get an FNR;
a few residents get a new FNR; both changes make up the ID history.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tre.idnumbers import generate_synthetic
from tre.registers import municipalities
from tre.synth import assumptions as a

NEVER = 10**7  # a day number for "does not happen in the period"
ALWAYS = -(10**7)  # a day number for "before the period began"
DAYS_PER_YEAR = 365.25

ID_CHANGE_REASONS = ("d_to_fnr", "fnr_change")  # codes 0 and 1 of Population.id_reason


def day_number(year: int, month: int = 1, day: int = 1) -> int:
    return (dt.date(year, month, day) - dt.date(1970, 1, 1)).days


def year_bounds(year: int) -> tuple[int, int]:
    """First and last day number of a calendar year."""
    return day_number(year), day_number(year + 1) - 1


def band(values: np.ndarray, edges: np.ndarray) -> np.ndarray:
    """The band each value falls in, for bands starting at `edges` (the first covers below too)."""
    return np.clip(np.searchsorted(edges, values, side="right") - 1, 0, len(edges) - 1)


@dataclass
class Population:
    first_year: int
    last_year: int
    birth: np.ndarray  # day numbers
    male: np.ndarray  # bool
    entry: np.ndarray  # birth or immigration day within the period, ALWAYS for first residents
    death: np.ndarray  # day or NEVER
    emigration: np.ndarray  # day or NEVER
    immigration: np.ndarray  # day of immigration, before or within the period, or NEVER
    municipality: np.ndarray  # (years, persons) index into municipalities(); -1 before entry
    marital: np.ndarray  # index into CODE_LISTS["marital_status"]
    conditions: np.ndarray  # bits of assumptions.CONDITIONS
    care_onset: np.ndarray  # first day of municipal care, or NEVER
    id_change: np.ndarray  # day the ID number changed, or NEVER
    id_reason: np.ndarray  # index into ID_CHANGE_REASONS, -1 without a change
    id_keys: np.ndarray  # int64, 2 × persons: the first ID of each person, then the ID after the change
    ghost_keys: np.ndarray  # valid synthetic FNRs that belong to nobody (for "unknown FNR" dirt)
    first_residents: int  # persons 0 .. first_residents-1 lived here when the period began

    def __post_init__(self):
        self.exit = np.minimum(self.death, self.emigration)
        self.ids = id_strings(self.id_keys)

    @property
    def size(self) -> int:
        return len(self.birth)

    @property
    def years(self) -> range:
        return range(self.first_year, self.last_year + 1)

    def window(self, people: slice, year: int) -> tuple[np.ndarray, np.ndarray]:
        """First and last day (inclusive) each person of `people` is registered in `year`.

        Where the first day is after the last, the person is not registered that year.
        """
        start, end = year_bounds(year)
        return np.maximum(self.entry[people], start), np.minimum(self.exit[people], end)

    def id_index(self, person: np.ndarray, days: np.ndarray) -> np.ndarray:
        """Index into `ids` of the number each person had on each day."""
        return person + self.size * (days >= self.id_change[person])

    def age(self, person: np.ndarray, days: np.ndarray) -> np.ndarray:
        """Age in years (fractional) on each day."""
        return (days - self.birth[person]) / DAYS_PER_YEAR

    def municipality_in(self, person: np.ndarray, year: int) -> np.ndarray:
        return self.municipality[year - self.first_year, person]


def id_strings(keys: np.ndarray) -> pa.StringArray:
    """11-digit ID strings for integer keys (leading zeros kept)."""
    return pc.utf8_lpad(pc.cast(pa.array(keys, type=pa.int64()), pa.string()), 11, "0")


def municipality_weights() -> np.ndarray:
    population = np.array([m.population for m in municipalities()], dtype=float)
    return population / population.sum()


def allocate_municipalities(rng: np.random.Generator, persons: int) -> np.ndarray:
    """A municipality for each first resident, in proportion to the 2024 populations.

    With at least as many persons as municipalities, every municipality gets at least one
    (Utsira's 215 inhabitants would otherwise round to nobody at small scale).
    """
    weights = municipality_weights()
    if persons < len(weights):
        return rng.choice(len(weights), size=persons, p=weights).astype(np.int16)
    exact = weights * persons
    counts = np.maximum(np.floor(exact).astype(np.int64), 1)
    surplus = counts.sum() - persons
    if surplus < 0:  # hand out the rest by largest remainder
        counts[np.argsort(-(exact - np.floor(exact)), kind="stable")[:-surplus]] += 1
    while surplus > 0:  # the floor of one overshot: take from the largest
        largest = np.argsort(-counts, kind="stable")[: int(surplus)]
        take = np.minimum(counts[largest] - 1, 1)
        counts[largest] -= take
        surplus -= int(take.sum())
    return rng.permutation(np.repeat(np.arange(len(weights), dtype=np.int16), counts))


def mortality(age: np.ndarray, male: np.ndarray) -> np.ndarray:
    q80 = np.where(male, a.MORTALITY_Q80["M"], a.MORTALITY_Q80["K"])
    q = q80 * np.exp(a.MORTALITY_SLOPE * (age - 80))
    q = np.where(age < 1, np.maximum(q, a.MORTALITY_INFANT), q)
    return np.minimum(q, a.MORTALITY_CAP)


class _Growing:
    """Per-person arrays that grow as people are born and immigrate."""

    def __init__(self, **columns):
        self.blocks = {name: [np.asarray(values)] for name, values in columns.items()}

    def add(self, **columns):
        for name, values in columns.items():
            self.blocks[name].append(np.asarray(values))

    def get(self, name: str) -> np.ndarray:
        blocks = self.blocks[name]
        if len(blocks) > 1:
            blocks[:] = [np.concatenate(blocks)]
        return blocks[0]


def build_population(
    rng: np.random.Generator, persons: int, first_year: int, last_year: int, ghosts: int
) -> Population:
    """Simulate the population over the period; `ghosts` extra FNRs are made for nobody."""
    start0, _ = year_bounds(first_year)
    birth, male = _first_residents(rng, persons, start0)
    n = persons
    age0 = (start0 - birth) / DAYS_PER_YEAR
    immigrant = rng.random(n) < a.RESIDENT_IMMIGRANT_SHARE[band(age0, a.RESIDENT_IMMIGRANT_EDGES)]
    d_only = (age0 >= 20) & (age0 < 60) & (rng.random(n) < a.RESIDENT_D_NUMBER_SHARE)
    immigrant |= d_only
    # A first resident lived here when the period began: one born on its eve arrived that day.
    arrived = np.minimum(birth + 1 + np.floor(rng.random(n) * (start0 - 1 - birth)).astype(np.int64), start0 - 1)
    people = _Growing(
        birth=birth,
        male=male,
        entry=np.full(n, ALWAYS, dtype=np.int64),
        death=np.full(n, NEVER, dtype=np.int64),
        emigration=np.full(n, NEVER, dtype=np.int64),
        immigration=np.where(immigrant, arrived, NEVER),
        starts_with_d=d_only,
        gets_fnr=np.zeros(n, dtype=bool),
        municipality=allocate_municipalities(rng, persons),
    )
    weights = municipality_weights()
    by_year = []
    for year in range(first_year, last_year + 1):
        start, end = year_bounds(year)
        days = end - start + 1
        entry, exit = people.get("entry"), np.minimum(people.get("death"), people.get("emigration"))
        present = np.flatnonzero((entry < start) & (exit >= start))
        _deaths_and_emigration(rng, people, present, start, days)
        if year > first_year:
            movers = present[rng.random(len(present)) < a.MOVING_PER_PERSON_YEAR]
            municipality = people.get("municipality")
            municipality[movers] = rng.choice(len(weights), size=len(movers), p=weights)
        _births(rng, people, len(present), start, days, weights)
        _immigrants(rng, people, len(present), start, days, weights)
        by_year.append(people.get("municipality").copy())

    size = len(people.get("birth"))
    municipality = np.full((len(by_year), size), -1, dtype=np.int16)
    for i, m in enumerate(by_year):
        municipality[i, : len(m)] = m
    birth, male = people.get("birth"), people.get("male")
    entry, death, emigration = people.get("entry"), people.get("death"), people.get("emigration")
    exit = np.minimum(death, emigration)
    period_end = year_bounds(last_year)[1]

    # ID changes: D-numbers that become FNRs, and a few new FNRs.
    id_change = np.full(size, NEVER, dtype=np.int64)
    id_reason = np.full(size, -1, dtype=np.int8)
    starts_with_d = people.get("starts_with_d")
    gets_fnr = people.get("gets_fnr")
    delay = rng.integers(a.D_TO_FNR_DELAY_DAYS[0], a.D_TO_FNR_DELAY_DAYS[1] + 1, size)
    change = entry + delay
    d_to_fnr = gets_fnr & (change <= np.minimum(exit, period_end))
    id_change[d_to_fnr], id_reason[d_to_fnr] = change[d_to_fnr], 0
    first_day = np.maximum(entry, start0)
    last_day = np.minimum(exit, period_end)
    years = last_year - first_year + 1
    fnr_change = ~starts_with_d & (last_day > first_day) & (rng.random(size) < a.FNR_CHANGES_PER_PERSON_YEAR * years)
    when = first_day + 1 + np.floor(rng.random(size) * np.maximum(last_day - first_day, 1)).astype(np.int64)
    id_change[fnr_change], id_reason[fnr_change] = when[fnr_change], 1

    id_keys, ghost_keys = _id_numbers(rng, birth, male, starts_with_d, id_reason >= 0, ghosts)
    age_then = (np.maximum(entry, start0) - birth) / DAYS_PER_YEAR
    return Population(
        first_year=first_year,
        last_year=last_year,
        birth=birth,
        male=male,
        entry=entry,
        death=death,
        emigration=emigration,
        immigration=people.get("immigration"),
        municipality=municipality,
        marital=_marital(rng, age_then),
        conditions=_conditions(rng, age_then),
        care_onset=np.full(size, NEVER, dtype=np.int64),  # set by assign_care below
        id_change=id_change,
        id_reason=id_reason,
        id_keys=id_keys,
        ghost_keys=ghost_keys,
        first_residents=persons,
    )


def _first_residents(rng, n: int, start0: int) -> tuple[np.ndarray, np.ndarray]:
    weights = a.AGE_GROUP_POPULATION / a.AGE_GROUP_POPULATION.sum()
    group = rng.choice(len(weights), size=n, p=weights)
    age_days = np.floor((group + rng.random(n)) * 5 * DAYS_PER_YEAR).astype(np.int64)
    male = rng.random(n) < a.AGE_GROUP_MALE_SHARE[group]
    return start0 - 1 - age_days, male


def _deaths_and_emigration(rng, people: _Growing, present: np.ndarray, start: int, days: int) -> None:
    birth, male = people.get("birth")[present], people.get("male")[present]
    age = (start - birth) / DAYS_PER_YEAR
    dies = rng.random(len(present)) < mortality(age, male)
    arrived = people.get("immigration")[present]
    recent = (arrived != NEVER) & (arrived > start - 5 * 365)
    leave = a.EMIGRATION_RATE[band(age, a.EMIGRATION_AGE_EDGES)] * np.where(recent, a.EMIGRATION_IMMIGRANT_FACTOR, 1)
    leaves = rng.random(len(present)) < leave
    death_day = start + rng.integers(0, days, len(present))
    leave_day = start + rng.integers(0, days, len(present))
    # Whichever comes first ends the stay; the other does not happen.
    dies_first = dies & (~leaves | (death_day <= leave_day))
    leaves_first = leaves & ~dies_first
    people.get("death")[present[dies_first]] = death_day[dies_first]
    people.get("emigration")[present[leaves_first]] = leave_day[leaves_first]


def _newcomers(people: _Growing, birth, male, entry, immigration, starts_with_d, gets_fnr, municipality) -> None:
    n = len(birth)
    people.add(
        birth=birth,
        male=male,
        entry=entry,
        death=np.full(n, NEVER, dtype=np.int64),
        emigration=np.full(n, NEVER, dtype=np.int64),
        immigration=immigration,
        starts_with_d=starts_with_d,
        gets_fnr=gets_fnr,
        municipality=municipality.astype(np.int16),
    )


def _births(rng, people, residents: int, start: int, days: int, weights) -> None:
    n = rng.poisson(residents * a.BIRTHS_PER_PERSON_YEAR)
    born = start + rng.integers(0, days, n)
    _newcomers(
        people,
        birth=born,
        male=rng.random(n) < a.MALE_SHARE_AT_BIRTH,
        entry=born,
        immigration=np.full(n, NEVER, dtype=np.int64),
        starts_with_d=np.zeros(n, dtype=bool),
        gets_fnr=np.zeros(n, dtype=bool),
        municipality=rng.choice(len(weights), size=n, p=weights),
    )


def _immigrants(rng, people, residents: int, start: int, days: int, weights) -> None:
    n = rng.poisson(residents * a.IMMIGRATION_PER_PERSON_YEAR)
    low, high, share = (np.array(x, dtype=float) for x in zip(*a.IMMIGRANT_AGES, strict=True))
    group = rng.choice(len(share), size=n, p=share / share.sum())
    age_days = np.floor((low[group] + rng.random(n) * (high[group] + 1 - low[group])) * DAYS_PER_YEAR)
    arrival = start + rng.integers(0, days, n)
    with_d = rng.random(n) < a.NEW_IMMIGRANT_D_NUMBER_SHARE
    _newcomers(
        people,
        birth=arrival - age_days.astype(np.int64),
        male=rng.random(n) < 0.52,
        entry=arrival,
        immigration=arrival,
        starts_with_d=with_d,
        gets_fnr=with_d & (rng.random(n) < a.D_TO_FNR_SHARE),
        municipality=rng.choice(len(weights), size=n, p=weights),
    )


def _id_numbers(rng, birth, male, starts_with_d, changes, ghosts: int) -> tuple[np.ndarray, np.ndarray]:
    """Unique synthetic numbers: first IDs, IDs after a change, and ghosts, in two calls.

    All FNRs come from one call and all D-numbers from another, so every number is unique
    (a D-number's day is shifted by 40 and can never equal an FNR).
    """
    size = len(birth)
    birth_dates = birth.astype("datetime64[D]")
    sexes = np.where(male, "M", "K")
    fnr_first = np.flatnonzero(~starts_with_d)
    second = np.flatnonzero(changes)
    ghost_birth = (np.datetime64("1930-01-01") + rng.integers(0, 90 * 365, ghosts).astype("timedelta64[D]")).astype(
        "datetime64[D]"
    )
    ghost_sex = np.where(rng.random(ghosts) < 0.5, "M", "K")
    fnrs = generate_synthetic(
        rng,
        np.concatenate([birth_dates[fnr_first], birth_dates[second], ghost_birth]),
        np.concatenate([sexes[fnr_first], sexes[second], ghost_sex]),
    ).astype(np.int64)
    d_first = np.flatnonzero(starts_with_d)
    d_numbers = generate_synthetic(rng, birth_dates[d_first], sexes[d_first], d_number=True).astype(np.int64)

    keys = np.zeros(2 * size, dtype=np.int64)
    keys[fnr_first] = fnrs[: len(fnr_first)]
    keys[d_first] = d_numbers
    keys[size:] = keys[:size]
    keys[size + second] = fnrs[len(fnr_first) : len(fnr_first) + len(second)]
    return keys, fnrs[len(fnr_first) + len(second) :]


def _marital(rng, age: np.ndarray) -> np.ndarray:
    cumulative = np.cumsum(a.MARITAL_SHARES, axis=1)
    cumulative /= cumulative[:, -1:]
    rows = cumulative[band(age, a.MARITAL_AGE_EDGES)]
    return (rng.random(len(age))[:, None] > rows).sum(axis=1).astype(np.int8)


def _conditions(rng, age: np.ndarray) -> np.ndarray:
    bits = np.zeros(len(age), dtype=np.uint16)
    group = band(age, a.CONDITION_AGE_EDGES)
    for i, condition in enumerate(a.CONDITIONS):
        has = rng.random(len(age)) < np.array(condition.prevalence)[group]
        bits |= (has.astype(np.uint16) << i).astype(np.uint16)
    return bits


def care_need(pop: Population, person: np.ndarray, days: np.ndarray) -> np.ndarray:
    """Relative chance of receiving municipal care: age, and dementia."""
    relative = a.IPLOS_RELATIVE[band(pop.age(person, days), a.IPLOS_AGE_EDGES)]
    dementia = (pop.conditions[person] & a.CONDITION_BIT["dementia"]) > 0
    return relative * np.where(dementia, a.IPLOS_DEMENTIA_FACTOR, 1.0)


def assign_care(rng: np.random.Generator, pop: Population) -> None:
    """When each person's municipal care began: prevalent recipients, then yearly onsets.

    Calibrated so that about IPLOS_SHARE of the people registered in a year receive care in
    it: prevalent recipients at the start, then each year enough new ones to keep the share.
    """
    start0, _ = year_bounds(pop.first_year)
    residents = np.arange(pop.first_residents)
    prevalent_count = a.IPLOS_SHARE / (1 + a.IPLOS_YEARLY_ONSET) * len(residents)
    need = care_need(pop, residents, np.full(len(residents), start0))
    prevalent = residents[rng.random(len(residents)) < calibrated(need, prevalent_count)]
    age_days = start0 - pop.birth[prevalent]
    back = np.floor(rng.random(len(prevalent)) * np.minimum(age_days, a.IPLOS_ONSET_YEARS_OLD * 365)).astype(np.int64)
    pop.care_onset[prevalent] = start0 - 1 - back
    everyone = np.arange(pop.size)
    for year in pop.years:
        start, _ = year_bounds(year)
        first, last = pop.window(slice(None), year)
        registered = first <= last
        # New recipients make up for those who died or left: the share stays about the same.
        receiving = np.count_nonzero(registered & (pop.care_onset < start))
        new = max(a.IPLOS_SHARE * np.count_nonzero(registered) - receiving, 0.0)
        candidates = everyone[registered & (pop.care_onset == NEVER)]
        need = care_need(pop, candidates, np.full(len(candidates), start))
        chance = calibrated(need, new)
        onset = candidates[rng.random(len(candidates)) < chance]
        span = last[onset] - first[onset] + 1
        pop.care_onset[onset] = first[onset] + np.floor(rng.random(len(onset)) * span).astype(np.int64)


def calibrated(weight: np.ndarray, expected: float, cap: float = 0.95) -> np.ndarray:
    """Chances proportional to `weight`, capped at `cap`, that add up to `expected`.

    With the k largest weights at the cap, the rest scale by (expected - k*cap) / (their sum):
    the right k is the one where that scale keeps the capped ones at or above the cap and the
    others below it.
    """
    weight = np.asarray(weight, dtype=float)
    if not len(weight) or weight.sum() <= 0 or expected <= 0:
        # Nobody to choose, or nobody wanted (a small population whose care recipients already
        # make up the share): no chances at all.
        return np.zeros(len(weight))
    if expected >= cap * np.count_nonzero(weight):
        return np.where(weight > 0, cap, 0.0)
    ordered = np.sort(weight)[::-1]
    capped = np.arange(len(ordered))  # k = how many are capped
    rest = np.cumsum(ordered[::-1])[::-1]  # sum(ordered[k:]), without cancelling a tiny tail away
    left = expected - capped * cap  # what the uncapped ones add up to, with k capped
    with np.errstate(divide="ignore", invalid="ignore"):
        scaled = ordered / rest * left  # a weight's share of the rest first: no overflow
    # The right k is the smallest whose largest uncapped chance stays within the cap: the ones
    # before it then lie above the cap (so they are rightly capped). It exists: the last
    # positive weight alone, scaled to what is left of `expected`, is below the cap, because
    # `expected` is below the cap times the number of positive weights.
    below = (rest > 0) & (scaled <= cap * (1 + 1e-12))
    k = int(np.flatnonzero(below)[0])
    with np.errstate(over="ignore"):  # a weight far above a tiny rest is capped anyway
        return np.minimum(weight / rest[k] * left[k], cap)
