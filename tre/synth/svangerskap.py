"""Pregnancy and maternity-care contacts (a § 2-2 registration opt-out service).

Pregnancies by the mother's age (fertility around 2023), each with about nine check-ups
between gestational weeks 6 and 40; blood pressure at consultations, higher in late
pregnancy for the few with pre-eclampsia. A year's delivery has the contacts dated in it.
"""

from __future__ import annotations

import functools

import numpy as np

from tre.registers import CODE_LISTS
from tre.synth import assumptions as a
from tre.synth.frame import Codes, Days, Frame, Ids, Keys, draw_n, expand
from tre.synth.population import band, year_bounds
from tre.synth.scenario import Scenario, practices, registered, yearly

CONSULTATION = CODE_LISTS["contact_type"].index("konsultasjon")
CONTACT_TYPE_WEIGHTS = (0.90, 0.08, 0.02, 0.0)  # konsultasjon, telefon, hjemmebesok, gruppe
PREGNANCY_DAYS = 280


def contacts(sc: Scenario, state, people: slice, year: int, rng: np.random.Generator) -> Frame:
    pop = sc.pop
    person, first, last, _ = registered(sc, people, year)
    start, end = year_bounds(year)
    women = ~pop.male[person]
    person, first, last = person[women], first[women], last[women]
    # Pregnancies with check-ups in this year were conceived from 280 days before it to its end.
    span = end - start + 1 + PREGNANCY_DAYS
    age = pop.age(person, np.full(len(person), start))
    chance = a.FERTILITY[band(age, a.FERTILITY_AGE_EDGES)] * (age >= 15) * span / 365
    pregnant = np.flatnonzero(rng.random(len(person)) < chance)
    conceived = start - PREGNANCY_DAYS + rng.integers(0, span, len(pregnant))
    preeclampsia = rng.random(len(pregnant)) < a.PREECLAMPSIA_SHARE
    visits = a.MATERNITY_VISITS + rng.poisson(1, len(pregnant))

    row = expand(np.arange(len(pregnant)), visits)
    week = 6 + rng.random(len(row)) * 34
    day = conceived[row] + np.floor(week * 7).astype(np.int64)
    mother = pregnant[row]
    keep = (day >= first[mother]) & (day <= last[mother])
    row, week, day, mother = row[keep], week[keep], day[keep], mother[keep]
    who = person[mother]

    contact = draw_n(rng, CONTACT_TYPE_WEIGHTS, len(row))
    late = preeclampsia[row] & (week > 20)
    measured = contact == CONSULTATION
    systolic = np.rint(rng.normal(112, 10, len(row)) + 25 * late).clip(80, 220)
    diastolic = np.rint(rng.normal(70, 8, len(row)) + 15 * late).clip(40, 140)
    municipality = pop.municipality_in(who, year)
    return Frame(
        {
            "contact_id": Keys("SV", sc.next_keys("svangerskap", len(who))),
            "fnr": Ids(pop.id_index(who, day)),
            "contact_date": Days(day),
            "provider_id": Codes(_units().of(municipality, who, salt=12), _units().labels),
            "municipality": sc.municipality(municipality),
            "contact_type": sc.codes("contact_type", contact),
            "gestational_week": np.floor(week),
            "systolic_bp": np.where(measured, systolic, np.nan),
            "diastolic_bp": np.where(measured, diastolic, np.nan),
        },
        who,
    )


@functools.cache
def _units():
    return practices("JM", 10000)


GENERATOR = yearly("svangerskap", contacts)
