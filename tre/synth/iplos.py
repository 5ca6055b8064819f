"""IPLOS: municipal care decisions with functional-ability scores; and historic IPLOS (§ 6-1).

About 7 % of people receive care, most of them old. A recipient has 1 + Poisson(1.2)
decisions from the day their care began; a decision runs until it ends, or until the person
dies or leaves. A year's delivery holds every decision active in it, with the same decision
id year after year; an end date appears once it has passed.

Historic IPLOS 2006-2016 is one delivery keyed by an old pseudonym, with a key table from
pseudonym to ID number (the number the person had when the period began).
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from tre.registers import CODE_LISTS, SOURCES
from tre.synth import assumptions as a
from tre.synth.frame import NULL_DAY, Codes, Days, Frame, Ids, Keys, draw, expand
from tre.synth.population import NEVER, day_number, year_bounds
from tre.synth.scenario import Generator, Scenario

SERVICES = CODE_LISTS["iplos_service"]
SCORE_COLUMNS = [c.name for c in SOURCES["iplos"].columns if c.name.startswith("f_")]
HISTORIC_SCORE_COLUMNS = [c.name for c in SOURCES["iplos_historisk"].columns if c.name.startswith("f_")]
COGNITIVE = {"f_memory", "f_communication", "f_own_health"}
HISTORIC = f"{a.HISTORIC_IPLOS_YEARS[0]}-{a.HISTORIC_IPLOS_YEARS[1]}"


def _periods(sc: Scenario) -> list[tuple[str, str]]:
    return [("iplos", y) for y in sc.years] + [("iplos_historisk", HISTORIC), ("iplos_historisk_nokkel", HISTORIC)]


def _pseudonym_offset(sc: Scenario, rng) -> int:
    """The secret offset of the historic pseudonyms (different for each seed)."""
    return int(rng.integers(0, 2**63))


def frames(sc: Scenario, offset: int, people: slice, rng) -> Iterator[tuple[str, str, Frame]]:
    decisions = _decisions(sc, people, rng)
    for year in sc.pop.years:
        yield "iplos", str(year), _year(sc, decisions, year)
    history, key_table = _historic(sc, people, offset, rng)
    yield "iplos_historisk", HISTORIC, history
    yield "iplos_historisk_nokkel", HISTORIC, key_table


def _decisions(sc: Scenario, people: slice, rng) -> dict:
    """Every decision of the recipients among `people`, over the whole period."""
    pop = sc.pop
    _, period_end = year_bounds(pop.last_year)
    local = np.arange(people.start, people.stop)
    onset = pop.care_onset[local]
    recipient = local[(onset <= np.minimum(pop.exit[local], period_end))]
    count = 1 + rng.poisson(a.IPLOS_EXTRA_DECISIONS, len(recipient))
    who = expand(recipient, count)
    first_of_person = np.cumsum(count) - count
    later = np.ones(len(who), dtype=bool)
    later[first_of_person] = False
    start = pop.care_onset[who] + np.where(later, np.floor(rng.exponential(1.5 * 365, len(who))), 0).astype(np.int64)
    keep = start <= np.minimum(pop.exit[who], period_end)
    who, start = who[keep], start[keep]

    later = later[keep]

    age = pop.age(who, start)
    service = draw(rng, _service_weights(), (age >= 67).astype(np.int64))
    # A recipient's first decision lasts (care goes on); later ones may be short stays or end.
    short_stay = SERVICES.index("sykehjem_korttid")
    service = np.where(~later & (service == short_stay), SERVICES.index("hjemmesykepleie"), service)
    end = np.full(len(who), NEVER, dtype=np.int64)
    short = service == short_stay
    low, high = a.IPLOS_SHORT_STAY_DAYS
    end = np.where(short, start + rng.integers(low, high + 1, len(who)), end)
    ends = later & ~short & (rng.random(len(who)) < a.IPLOS_DECISION_END_SHARE)
    end = np.where(ends, start + 30 + np.floor(rng.exponential(2 * 365, len(who))).astype(np.int64), end)
    end = np.minimum(end, pop.exit[who])  # care ends when the person dies or leaves
    return {
        "person": who,
        "id": sc.next_keys("iplos", len(who)),
        "service": service,
        "start": start,
        "end": end,
        "hours": hours_per_week(rng, service),
        "scores": scores(rng, sc, who, age, SCORE_COLUMNS),
    }


@functools.cache
def _service_weights() -> np.ndarray:
    return np.array([[young for _, (young, _), _ in a.IPLOS_SERVICES], [old for _, (_, old), _ in a.IPLOS_SERVICES]])


def hours_per_week(rng, service: np.ndarray) -> np.ndarray:
    """Hours decided per week (lognormal around the service's median), NaN for services without."""
    median = np.array([np.nan if h is None else h for _, _, h in a.IPLOS_SERVICES])[service]
    hours = np.round(median * np.exp(rng.normal(0, 0.6, len(service))) * 2) / 2
    return np.clip(hours, 0.5, 168)


def scores(rng, sc: Scenario, who: np.ndarray, age: np.ndarray, columns: list[str]) -> dict:
    """IPLOS functional-ability scores 1-5 (9: not relevant): worse with age and dementia."""
    dementia = (sc.pop.conditions[who] & a.CONDITION_BIT["dementia"]) > 0
    severity = np.clip(0.15 + 0.35 * (age - 60) / 40 + rng.normal(0, 0.15, len(who)), 0, 1)
    result = {}
    for name in columns:
        s = severity + np.where(dementia, 0.45 if name in COGNITIVE else 0.15, 0)
        score = np.clip(np.rint(1 + 4 * s + rng.normal(0, 0.6, len(who))), 1, 5).astype(np.int64) - 1
        result[name] = np.where(rng.random(len(who)) < a.IPLOS_NOT_RELEVANT_SHARE, 5, score)  # code 5 is "9"
    return result


def _year(sc: Scenario, d: dict, year: int) -> Frame:
    start, end = year_bounds(year)
    rows = np.flatnonzero((d["start"] <= end) & (d["end"] >= start))
    who = d["person"][rows]
    decision_end = d["end"][rows]
    columns = {
        "decision_id": Keys("IV", d["id"][rows]),
        "fnr": Ids(sc.pop.id_index(who, np.minimum(np.maximum(d["start"][rows], start), end))),
        "municipality": sc.municipality(sc.pop.municipality_in(who, year)),
        "service": sc.codes("iplos_service", d["service"][rows]),
        "start_date": Days(d["start"][rows]),
        "end_date": Days(np.where(decision_end <= end, decision_end, NULL_DAY)),
        "hours_per_week": d["hours"][rows],
    }
    for name in SCORE_COLUMNS:
        columns[name] = sc.codes("iplos_score", d["scores"][name][rows])
    return Frame(columns, who)


def _historic(sc: Scenario, people: slice, offset: int, rng) -> tuple[Frame, Frame]:
    pop = sc.pop
    first_year, last_year = a.HISTORIC_IPLOS_YEARS
    local = np.arange(people.start, min(people.stop, pop.first_residents))
    onset = pop.care_onset[local]
    person = local[onset < day_number(last_year + 1)]
    onset_year = _year_of(pop.care_onset[person])
    exit_year = np.where(pop.exit[person] == NEVER, 9999, _year_of(np.minimum(pop.exit[person], 10**6)))
    begin = np.maximum(np.maximum(onset_year, first_year), _year_of(pop.birth[person]))
    finish = np.minimum(last_year, exit_year)
    years = np.clip(finish - begin + 1, 0, None)
    person, begin, years = person[years > 0], begin[years > 0], years[years > 0]
    pseudonyms = pseudonym_strings(person, offset)

    which = expand(np.arange(len(person)), years)
    rank = np.arange(len(which)) - np.repeat(np.cumsum(years) - years, years)
    year = begin[which] + rank
    # A main service each year, and a second one (a different service) half the time.
    age = (year - _year_of(pop.birth[person[which]])).astype(float)
    main = draw(rng, _service_weights(), (age >= 67).astype(np.int64))
    second = rng.random(len(which)) < 0.5
    other = (main + 1 + rng.integers(0, len(SERVICES) - 1, len(which))) % len(SERVICES)
    which = np.r_[which, which[second]]
    year, age = np.r_[year, year[second]], np.r_[age, age[second]]
    service = np.r_[main, other[second]]
    who = person[which]
    columns = {
        "old_pseudonym": Codes(which, pseudonyms),
        "year": year.astype(np.int64),
        "municipality": sc.municipality(pop.municipality[0, who]),
        "service": sc.codes("iplos_service", service),
        "hours_per_week": hours_per_week(rng, service),
    }
    for name, values in scores(rng, sc, who, age, HISTORIC_SCORE_COLUMNS).items():
        columns[name] = sc.codes("iplos_score", values)
    history = Frame(columns, who)
    key_table = Frame({"old_pseudonym": Codes(np.arange(len(person)), pseudonyms), "fnr": Ids(person)}, person)
    return history, key_table


def _year_of(days: np.ndarray) -> np.ndarray:
    return days.astype("datetime64[D]").astype("datetime64[Y]").astype(np.int64) + 1970


_HEX = np.frombuffer(b"0123456789abcdef", dtype=np.uint8)


def pseudonym_strings(person: np.ndarray, offset: int) -> pa.Array:
    """Opaque 16-hex-digit pseudonyms: an odd multiplier mod 2^64 is a bijection, so they are unique."""
    with np.errstate(over="ignore"):
        values = (person.astype(np.uint64) + np.uint64(1)) * np.uint64(0x9E3779B97F4A7C15) + np.uint64(offset)
    raw = values.astype(">u8").view(np.uint8).reshape(-1, 8)
    text = np.empty((len(person), 16), dtype=np.uint8)
    text[:, 0::2] = _HEX[raw >> 4]
    text[:, 1::2] = _HEX[raw & 15]
    return pa.array(text.reshape(-1).view("S16"), pa.binary()).cast(pa.string())


GENERATOR = Generator("iplos", _periods, frames, _pseudonym_offset)
