"""Health-centre and school-health contacts (a § 2-2 registration opt-out service).

The child health programme's many visits in the first year, fewer later, school-health
contacts through the teens, and the health centre for young people up to 24. Small children
are weighed and measured at most consultations, schoolchildren sometimes.
"""

from __future__ import annotations

import functools

import numpy as np
import pyarrow as pa
from scipy.special import ndtri

from tre.registers import CODE_LISTS
from tre.synth import assumptions as a
from tre.synth.frame import Codes, Days, Frame, Ids, Keys, draw, expand, office_days, uniform_days
from tre.synth.population import band
from tre.synth.scenario import Scenario, golden, practices, registered, yearly

CONTACT_TYPES = CODE_LISTS["contact_type"]  # konsultasjon, telefon, hjemmebesok, gruppe
CONSULTATION = CONTACT_TYPES.index("konsultasjon")
# Contact types for infants, pre-school children, and school age and up.
CONTACT_TYPE_WEIGHTS = np.array([[0.80, 0.05, 0.12, 0.03], [0.90, 0.05, 0.02, 0.03], [0.80, 0.10, 0.0, 0.10]])


def contacts(sc: Scenario, state, people: slice, year: int, rng: np.random.Generator) -> Frame:
    pop = sc.pop
    person, first, last, exposure = registered(sc, people, year)
    age = pop.age(person, (first + last) // 2)
    count = rng.poisson(a.HELSESTASJON_CONTACTS[band(age, a.HELSESTASJON_AGE_EDGES)] * exposure)
    row = expand(np.arange(len(person)), count)
    who = person[row]
    day = office_days(uniform_days(rng, first[row], last[row]), first[row], last[row])
    age = pop.age(who, day)
    service = np.where((age < 6) | (age >= 20), 0, 1)  # helsestasjon, skolehelsetjeneste
    contact = draw(rng, CONTACT_TYPE_WEIGHTS, np.select([age < 1, age < 6], [0, 1], 2))
    female = ~pop.male[who]
    reason = draw(rng, _reason_weights(), np.where(age < 12, 0, 1 + female))
    reason = np.where(rng.random(len(who)) < a.HELSESTASJON_REASON_SHARE, reason, -1)
    measured = (contact == CONSULTATION) & (rng.random(len(who)) < np.where(age < 6, 0.8, 0.3))
    height, weight = growth(rng, who, age, pop.male[who])
    municipality = pop.municipality_in(who, year)
    return Frame(
        {
            "contact_id": Keys("HS", sc.next_keys("helsestasjon", len(who))),
            "fnr": Ids(pop.id_index(who, day)),
            "contact_date": Days(day),
            "service": sc.codes("school_health_service", service),
            "provider_id": Codes(_units().of(municipality, who, salt=11), _units().labels),
            "municipality": sc.municipality(municipality),
            "contact_type": sc.codes("contact_type", contact),
            "reason": Codes(reason, _reason_labels()),
            "weight_kg": np.where(measured, weight, np.nan),
            "height_cm": np.where(measured, height, np.nan),
        },
        who,
    )


def growth(rng, who: np.ndarray, age: np.ndarray, male: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Height (cm) and weight (kg): growth curves, each child keeping their own percentile."""
    median = np.where(
        male, np.interp(age, a.GROWTH_AGES, a.GROWTH_HEIGHT["M"]), np.interp(age, a.GROWTH_AGES, a.GROWTH_HEIGHT["K"])
    )
    height = median * (1 + 0.04 * ndtri(0.01 + 0.98 * golden(who, 21)))
    bmi = np.interp(age, a.GROWTH_AGES, a.GROWTH_BMI) * (1 + 0.12 * ndtri(0.01 + 0.98 * golden(who, 22)))
    weight = bmi * (height / 100) ** 2 * (1 + rng.normal(0, 0.02, len(who)))
    return np.round(height, 1), np.round(weight, 1)


@functools.cache
def _reason_labels() -> pa.Array:
    return pa.array([code for code, _ in a.HELSESTASJON_REASONS], pa.string())


@functools.cache
def _reason_weights() -> np.ndarray:
    """Groups: children under 12, teenage boys, teenage girls (contraception, mental health)."""
    rows = []
    for group in ("child", "boy", "girl"):
        row = []
        for code, weight in a.HELSESTASJON_REASONS:
            if code in ("P74", "P76", "W14") and group == "child" or code == "W14" and group == "boy":
                weight = 0.0
            row.append(weight)
        rows.append(row)
    return np.array(rows)


@functools.cache
def _units():
    return practices("HS", 8000)


GENERATOR = yearly("helsestasjon", contacts)
