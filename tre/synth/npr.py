"""NPR: specialist health care episodes (outpatient visits, day treatment, inpatient stays).

The chance of being a patient rises with age and with chronic conditions; chronically ill
patients' internal-medicine episodes often carry their condition (E11 for type 2 diabetes) as
main or secondary diagnosis. Some deaths follow an inpatient stay that ends on the day of death.
"""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa

from tre.registers import CODE_LISTS
from tre.synth import assumptions as a
from tre.synth.frame import Codes, Days, Frame, Ids, Keys, draw, expand, uniform_days
from tre.synth.population import band, year_bounds
from tre.synth.scenario import Scenario, condition_count, county_of_municipality, yearly

SPECIALTIES = CODE_LISTS["npr_specialty"]
CARE_LEVELS = CODE_LISTS["npr_care_level"]  # dognopphold, dagbehandling, poliklinikk
INPATIENT = CARE_LEVELS.index("dognopphold")


def episodes(sc: Scenario, state, people: slice, year: int, rng: np.random.Generator) -> Frame:
    pop = sc.pop
    first, last = pop.window(people, year)
    local = np.flatnonzero(first <= last)
    person = people.start + local
    first, last = first[local], last[local]
    start, end = year_bounds(year)
    exposure = (last - first + 1) / (end - start + 1)
    age = pop.age(person, first)
    chance = a.NPR_PATIENT_SHARE[band(age, a.NPR_AGE_EDGES)]
    chance = chance * a.NPR_CONDITION_FACTOR ** condition_count(pop.conditions[person])
    patient = rng.random(len(person)) < np.minimum(chance, 0.95) * exposure
    count = patient * (1 + rng.poisson(a.NPR_EXTRA_EPISODES, len(person)))
    row = expand(np.arange(len(person)), count)
    admitted = uniform_days(rng, first[row], last[row])

    # Deaths in hospital: a stay that ends on the day of death.
    died = np.flatnonzero((pop.death[person] >= start) & (pop.death[person] <= end))
    died = died[rng.random(len(died)) < a.NPR_DEATH_IN_HOSPITAL_SHARE]
    stay = 1 + rng.geometric(0.25, len(died))
    row = np.r_[row, died]
    admitted = np.r_[admitted, np.maximum(pop.death[person[died]] - stay, first[died])]
    final = np.r_[np.zeros(len(row) - len(died), dtype=bool), np.ones(len(died), dtype=bool)]

    who = person[row]
    row_age = pop.age(who, admitted)
    female = ~pop.male[who]
    specialty = draw(rng, _specialty_weights(), (row_age >= 16) * 2 + female)
    specialty = np.where(final, SPECIALTIES.index("indremedisin"), specialty)
    level_weights, mean_stay = _care_levels()
    level = np.where(final, INPATIENT, draw(rng, level_weights, specialty))
    length = rng.geometric(1 / mean_stay[specialty])
    discharged = np.where(level == INPATIENT, admitted + length, admitted)
    discharged = np.where(final, pop.death[who], np.minimum(discharged, pop.exit[who]))

    main, secondary = _diagnoses(rng, specialty, who, pop.conditions[who], row_age)
    municipality = pop.municipality_in(who, year)
    return Frame(
        {
            "episode_id": Keys("NP", sc.next_keys("npr", len(who))),
            "fnr": Ids(pop.id_index(who, admitted)),
            "hospital": Codes(_hospital(rng, municipality), _hospital_labels()),
            "specialty": sc.codes("npr_specialty", specialty),
            "care_level": sc.codes("npr_care_level", level),
            "admission_date": Days(admitted),
            "discharge_date": Days(discharged),
            "icd10_main": Codes(main, _icd10_labels()),
            "icd10_secondary": Codes(secondary, _icd10_labels()),
        },
        who,
    )


@functools.cache
def _specialty_weights() -> np.ndarray:
    """Groups: child boy, child girl, adult man, adult woman (gynaecology for women only)."""
    rows = []
    for group in ("child", "adult"):
        for female in (False, True):
            weights = a.NPR_SPECIALTY_WEIGHTS[group]
            rows.append([weights.get(s, 0) if s != "gynekologi" or female else 0 for s in SPECIALTIES])
    return np.array(rows)


@functools.cache
def _care_levels() -> tuple[np.ndarray, np.ndarray]:
    """Care-level weights (dognopphold, dagbehandling, poliklinikk) and mean stay per specialty."""
    weights, stay = [], []
    for s in SPECIALTIES:
        (outpatient, day, inpatient), mean = a.NPR_CARE_LEVELS[s]
        weights.append([inpatient, day, outpatient])
        stay.append(mean)
    return np.array(weights), np.array(stay, dtype=float)


@functools.cache
def _icd10_codes() -> list[str]:
    codes = {code for table in a.NPR_DIAGNOSES.values() for code, _ in table}
    return sorted(codes | {c.icd10 for c in a.CONDITIONS})


def _icd10_labels() -> pa.Array:
    return pa.array(_icd10_codes(), pa.string())


@functools.cache
def _icd10_weights() -> np.ndarray:
    codes = _icd10_codes()
    weights = np.zeros((len(SPECIALTIES), len(codes)))
    for s, specialty in enumerate(SPECIALTIES):
        for code, weight in a.NPR_DIAGNOSES[specialty]:
            weights[s, codes.index(code)] = weight
    return weights


def _diagnoses(rng, specialty, who, conditions, age) -> tuple[np.ndarray, np.ndarray]:
    """Main and secondary ICD-10 codes; a chronic condition often shows in internal medicine."""
    codes = _icd10_codes()
    main = draw(rng, _icd10_weights(), specialty)
    # Pregnancy codes only for women of childbearing age: others get a urinary infection.
    pregnancy = np.array([c.startswith("O") for c in codes])[main] & ((age < 15) | (age > 50))
    main = np.where(pregnancy, codes.index("N390"), main)
    secondary = np.full(len(main), -1)
    internal = specialty == SPECIALTIES.index("indremedisin")
    for i, condition in enumerate(a.CONDITIONS):
        has = (conditions >> i) & 1 == 1
        as_main = has & internal & (rng.random(len(main)) < 0.35)
        main = np.where(as_main & (secondary < 0), codes.index(condition.icd10), main)
        as_secondary = has & (secondary < 0) & ~as_main & (rng.random(len(main)) < 0.4)
        secondary = np.where(as_secondary, codes.index(condition.icd10), secondary)
    secondary = np.where(secondary == main, -1, secondary)
    return main, secondary


@functools.cache
def _hospital_labels() -> pa.Array:
    names = sorted({h for hs in a.HOSPITALS_BY_COUNTY.values() for h in hs})
    return pa.array(names, pa.string())


@functools.cache
def _hospital_choices() -> tuple[np.ndarray, np.ndarray]:
    """Per municipality: its hospitals' label indices (padded by repetition) and how many."""
    names = _hospital_labels().to_pylist()
    counties = county_of_municipality()
    width = max(len(h) for h in a.HOSPITALS_BY_COUNTY.values())
    table = np.zeros((len(counties), width), dtype=np.int64)
    count = np.zeros(len(counties), dtype=np.int64)
    for m, county in enumerate(counties):
        hospitals = a.HOSPITALS_BY_COUNTY[county]
        count[m] = len(hospitals)
        table[m] = [names.index(hospitals[k % len(hospitals)]) for k in range(width)]
    return table, count


def _hospital(rng, municipality: np.ndarray) -> np.ndarray:
    table, count = _hospital_choices()
    local = table[municipality, np.floor(rng.random(len(municipality)) * count[municipality]).astype(np.int64)]
    regional = _hospital_labels().to_pylist().index(a.REGIONAL_HOSPITAL)
    return np.where(rng.random(len(municipality)) < a.REGIONAL_SHARE, regional, local)


GENERATOR = yearly("npr", episodes)
