"""KUHR: reimbursement claims from GPs, emergency clinics, physiotherapists and others.

About three GP contacts a person-year (more with age, for women, and with chronic conditions
such as diabetes), 16 % of people at an emergency clinic (legevakt) in a year, ICPC-2
diagnoses by age and sex, and tariff codes that follow the contact type and the time of day
("d" codes weekdays 08-16, "k" codes evenings, nights and weekends).
"""

from __future__ import annotations

import functools
from dataclasses import dataclass

import numpy as np
import pyarrow as pa

from tre.registers import CODE_LISTS
from tre.synth import assumptions as a
from tre.synth.frame import Codes, Frame, Ids, Keys, Seconds, draw, expand, office_days, uniform_days, weekday
from tre.synth.population import band, year_bounds
from tre.synth.scenario import Scenario, condition_factor, practices, yearly

PROVIDERS = CODE_LISTS["provider_type"]
CONTACT_TYPES = CODE_LISTS["kuhr_contact_type"]
GP, LEGEVAKT = PROVIDERS.index("fastlege"), PROVIDERS.index("legevakt")


@dataclass
class KuhrState:
    propensity: np.ndarray  # each person's own tendency to see the GP (mean 1)
    gp_scale: dict  # year -> factor that makes the mean GP_CONTACTS_PER_PERSON_YEAR
    legevakt_scale: dict  # year -> factor that makes LEGEVAKT_USER_SHARE use a clinic


def prepare(sc: Scenario, rng: np.random.Generator) -> KuhrState:
    pop = sc.pop
    shape = a.GP_PROPENSITY_SHAPE
    state = KuhrState(rng.gamma(shape, 1 / shape, pop.size).astype(np.float32), {}, {})
    everyone = np.arange(pop.size)
    for year in pop.years:
        first, last = pop.window(slice(None), year)
        registered = first <= last
        exposure = _exposure(first, last, year)
        person = everyone[registered]
        age = pop.age(person, first[registered])
        rate = _gp_rate(pop, person, age) * state.propensity[registered]
        state.gp_scale[year] = (
            a.GP_CONTACTS_PER_PERSON_YEAR * exposure[registered].sum() / rate.dot(exposure[registered])
        )
        relative = a.LEGEVAKT_RELATIVE[band(age, a.LEGEVAKT_AGE_EDGES)]
        state.legevakt_scale[year] = a.LEGEVAKT_USER_SHARE * registered.sum() / relative.dot(exposure[registered])
    return state


def _exposure(first, last, year) -> np.ndarray:
    start, end = year_bounds(year)
    return np.clip(last - first + 1, 0, None) / (end - start + 1)


def _gp_rate(pop, person, age) -> np.ndarray:
    sex_rate = np.where(
        pop.male[person],
        a.GP_RELATIVE_RATE["M"][band(age, a.GP_AGE_EDGES)],
        a.GP_RELATIVE_RATE["K"][band(age, a.GP_AGE_EDGES)],
    )
    return sex_rate * condition_factor(pop.conditions[person], lambda c: c.gp_factor)


def claims(sc: Scenario, state: KuhrState, people: slice, year: int, rng: np.random.Generator) -> Frame:
    pop = sc.pop
    first, last = pop.window(people, year)
    local = np.flatnonzero(first <= last)
    person = people.start + local
    first, last = first[local], last[local]
    exposure = _exposure(first, last, year)
    age = pop.age(person, first)

    # How many contacts of each kind each person has this year.
    counts = np.zeros((len(PROVIDERS), len(person)), dtype=np.int64)
    gp_mean = state.gp_scale[year] * _gp_rate(pop, person, age) * state.propensity[person] * exposure
    counts[GP] = rng.poisson(gp_mean)
    legevakt_chance = state.legevakt_scale[year] * a.LEGEVAKT_RELATIVE[band(age, a.LEGEVAKT_AGE_EDGES)] * exposure
    users = rng.random(len(person)) < np.minimum(legevakt_chance, 0.9)
    counts[LEGEVAKT] = users * (1 + rng.poisson(a.LEGEVAKT_EXTRA_CONTACTS, len(person)))
    for name, (shares, extra) in a.OTHER_PROVIDERS.items():
        chance = np.array(shares)[band(age, a.PROVIDER_AGE_EDGES)] * exposure
        users = rng.random(len(person)) < chance
        counts[PROVIDERS.index(name)] = users * (1 + rng.poisson(extra, len(person)))

    row = np.concatenate([expand(np.arange(len(person)), c) for c in counts])
    provider = np.repeat(np.arange(len(PROVIDERS)), counts.sum(axis=1))
    who = person[row]
    day = uniform_days(rng, first[row], last[row])
    office = provider != LEGEVAKT
    day = np.where(office, office_days(day, first[row], last[row]), day)
    row_age = pop.age(who, day)

    group = np.where(provider == GP, len(PROVIDERS) + (row_age >= 80), provider)
    contact = draw(rng, _contact_type_weights(), group)
    seconds, daytime = _times(rng, day, provider)
    base = _tariff_base()[provider, contact, np.where(daytime, 0, 1)]
    add_ons = _add_ons(rng, provider, contact, daytime)
    tariff = base * 8 + add_ons
    labels, refunds = _tariff_labels()

    sex = np.where(pop.male[who], 0, 1)
    diagnosis_group = provider * 6 + band(row_age, a.ICPC2_AGE_EDGES) * 2 + sex
    icpc2 = draw(rng, _diagnosis_weights(), diagnosis_group)
    icpc2 = _chronic_codes(rng, icpc2, provider == GP, pop.conditions[who])

    municipality = pop.municipality_in(who, year)
    provider_labels, provider_offset, provider_practices = _practices()
    practice = np.zeros(len(row), dtype=np.int64)
    for p in range(len(PROVIDERS)):
        rows = np.flatnonzero(provider == p)
        practice[rows] = provider_offset[p] + provider_practices[p].of(municipality[rows], who[rows], salt=p)
    return Frame(
        {
            "claim_id": Keys("KR", sc.next_keys("kuhr", len(row))),
            "fnr": Ids(pop.id_index(who, day)),
            "contact_time": Seconds(day * 86400 + seconds),
            "provider_type": sc.codes("provider_type", provider),
            "provider_id": Codes(practice, provider_labels),
            "municipality": sc.municipality(municipality),
            "contact_type": sc.codes("kuhr_contact_type", contact),
            "tariff_codes": Codes(tariff, labels),
            "icpc2": Codes(icpc2, _diagnosis_labels()),
            "refund_nok": refunds[tariff],
        },
        who,
    )


@functools.cache
def _contact_type_weights() -> np.ndarray:
    """Rows: each provider, then GP patients aged 80+ (more home visits)."""
    weights = [a.CONTACT_TYPE_SHARES[p] for p in PROVIDERS]
    old = list(a.CONTACT_TYPE_SHARES["fastlege"])
    home = CONTACT_TYPES.index("sykebesok")
    old[home] = a.OLD_GP_HOME_VISIT_SHARE
    return np.array([*weights, a.CONTACT_TYPE_SHARES["fastlege"], old])


def _times(rng, day: np.ndarray, provider: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Seconds after midnight (whole minutes), and whether that is daytime on a weekday."""
    n = len(day)
    u = rng.random(n)
    slot = rng.random(n)
    weekend = weekday(day) >= 5
    # (from hour, to hour) per row: GPs mostly in office hours, other practices 08-18,
    # emergency clinics mostly evenings, nights and weekends.
    start = np.full(n, 8.0)
    stop = np.where(provider == GP, np.where(slot < 0.95, 16.0, 20.0), 18.0)
    start = np.where((provider == GP) & (slot >= 0.95), 16.0, start)
    legevakt = provider == LEGEVAKT
    start = np.where(legevakt, np.where(weekend, 0.0, np.select([slot < 0.2, slot < 0.75], [8.0, 16.0], 0.0)), start)
    stop = np.where(legevakt, np.where(weekend, 24.0, np.select([slot < 0.2, slot < 0.75], [16.0, 23.0], 8.0)), stop)
    minutes = np.floor((start + u * (stop - start)) * 60).astype(np.int64)
    daytime = ~weekend & (minutes >= 8 * 60) & (minutes < 16 * 60)
    return minutes * 60, daytime


@functools.cache
def _tariff_base() -> np.ndarray:
    """(provider, contact type, day=0/evening=1) -> index of the base code string, -1 if none."""
    bases = _tariff_bases()
    table = np.full((len(PROVIDERS), len(CONTACT_TYPES), 2), 0, dtype=np.int64)
    for (provider, contact), (day_code, evening_code) in a.TARIFFS.items():
        p, c = PROVIDERS.index(provider), CONTACT_TYPES.index(contact)
        table[p, c] = bases.index(day_code), bases.index(evening_code)
    return table


@functools.cache
def _tariff_bases() -> list[str]:
    return sorted({code for pair in a.TARIFFS.values() for code in pair})


def _add_ons(rng, provider, contact, daytime) -> np.ndarray:
    """Bit mask of ADD_ON_CODES: daytime GP and emergency-clinic visits only (2dd: GPs only)."""
    eligible = (
        ((provider == GP) | (provider == LEGEVAKT))
        & np.isin(contact, [CONTACT_TYPES.index("konsultasjon"), CONTACT_TYPES.index("sykebesok")])
        & daytime
    )
    mask = np.zeros(len(provider), dtype=np.int64)
    for bit, (code, share) in enumerate(a.ADD_ON_CODES):
        has = eligible & (rng.random(len(provider)) < share)
        if code == "2dd":
            has &= provider == GP
        mask |= has.astype(np.int64) << bit
    return mask


@functools.cache
def _tariff_labels() -> tuple[pa.Array, np.ndarray]:
    """All base × add-on combinations as space-separated strings, and their refunds."""
    labels, refunds = [], []
    for base in _tariff_bases():
        for mask in range(8):
            codes = base.split() + [code for bit, (code, _) in enumerate(a.ADD_ON_CODES) if mask >> bit & 1]
            labels.append(" ".join(codes))
            refunds.append(round(sum(a.REFUNDS[c] for c in codes), 2))
    return pa.array(labels, pa.string()), np.array(refunds)


_DIAGNOSIS_TABLES = {
    "fastlege": a.GP_DIAGNOSES,
    "legevakt": a.LEGEVAKT_DIAGNOSES,
    "fysioterapeut": a.PHYSIO_DIAGNOSES,
    "kiropraktor": a.CHIROPRACTOR_DIAGNOSES,
    "psykolog": a.PSYCHOLOGIST_DIAGNOSES,
    "tannlege": a.DENTIST_DIAGNOSES,
}


@functools.cache
def _diagnosis_codes() -> list[str]:
    codes = {row[0] for table in _DIAGNOSIS_TABLES.values() for row in table} | {c.icpc2 for c in a.CONDITIONS}
    return sorted(codes)


def _diagnosis_labels() -> pa.Array:
    return pa.array(_diagnosis_codes(), pa.string())


@functools.cache
def _diagnosis_weights() -> np.ndarray:
    """(provider × age band × sex, code) weights; groups numbered provider*6 + band*2 + sex."""
    codes = _diagnosis_codes()
    weights = np.zeros((len(PROVIDERS) * 6, len(codes)))
    for p, provider in enumerate(PROVIDERS):
        for code, weight, child, adult, old, sex in _DIAGNOSIS_TABLES[provider]:
            for b, factor in enumerate((child, adult, old)):
                for s, letter in enumerate(("M", "K")):
                    if sex is None or sex == letter:
                        weights[p * 6 + b * 2 + s, codes.index(code)] = weight * factor
    # A group with no weights at all (e.g. chiropractors' children) falls back to the adult one.
    for g in range(len(weights)):
        if weights[g].sum() == 0:
            weights[g] = weights[(g // 6) * 6 + 2 + g % 2]
    return weights


def _chronic_codes(rng, icpc2: np.ndarray, gp: np.ndarray, conditions: np.ndarray) -> np.ndarray:
    """Part of a chronically ill person's GP contacts are for their condition (T90 for diabetes)."""
    codes = _diagnosis_codes()
    decided = ~gp
    for i, condition in enumerate(a.CONDITIONS):
        takes = ~decided & ((conditions >> i) & 1 == 1) & (rng.random(len(icpc2)) < condition.gp_share)
        icpc2 = np.where(takes, codes.index(condition.icpc2), icpc2)
        decided |= takes
    return icpc2


@functools.cache
def _practices() -> tuple[pa.Array, np.ndarray, list]:
    """One label list of every provider's practices, each provider's offset into it."""
    each = [practices(a.PROVIDER_PREFIX[p], a.INHABITANTS_PER_PRACTICE[p]) for p in PROVIDERS]
    offsets = np.r_[0, np.cumsum([len(x.labels) for x in each])[:-1]]
    labels = pa.concat_arrays([x.labels for x in each])
    return labels, offsets, each


GENERATOR = yearly("kuhr", claims, prepare)
