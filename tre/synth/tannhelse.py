"""Public dental service contacts (a § 2-2 registration opt-out service).

The public dental service calls in children and young people (to the year they turn 20)
regularly, and old people with home nursing or in nursing homes; few other adults come.
Decayed, missing and filled teeth rise with age.
"""

from __future__ import annotations

import functools

import numpy as np

from tre.registers import CODE_LISTS
from tre.synth import assumptions as a
from tre.synth.frame import Codes, Days, Frame, Ids, Keys, draw_n, expand, office_days, uniform_days
from tre.synth.population import band
from tre.synth.scenario import Scenario, practices, registered, yearly

CONSULTATION = CODE_LISTS["contact_type"].index("konsultasjon")
CONTACT_TYPE_WEIGHTS = (0.95, 0.03, 0.0, 0.02)  # konsultasjon, telefon, hjemmebesok, gruppe


def contacts(sc: Scenario, state, people: slice, year: int, rng: np.random.Generator) -> Frame:
    pop = sc.pop
    person, first, last, exposure = registered(sc, people, year)
    middle = (first + last) // 2
    age = pop.age(person, middle)
    in_care = (pop.care_onset[person] <= middle) & (age >= 67)
    share = np.where(in_care, a.DENTAL_CARE_SHARE, a.DENTAL_SHARE[band(age, a.DENTAL_AGE_EDGES)])
    users = rng.random(len(person)) < share * exposure
    count = users * (1 + rng.poisson(a.DENTAL_EXTRA_CONTACTS, len(person)))
    row = expand(np.arange(len(person)), count)
    who = person[row]
    day = office_days(uniform_days(rng, first[row], last[row]), first[row], last[row])
    age = pop.age(who, day)
    contact = draw_n(rng, CONTACT_TYPE_WEIGHTS, len(row))
    examined = contact == CONSULTATION
    caries_free = (age < 21) & (rng.random(len(row)) < 0.6)
    dmft = np.where(caries_free, 0, rng.poisson(np.where(age < 21, 0.15 * age, np.minimum(0.35 * age, 28)))).clip(0, 32)
    new_caries = rng.poisson(np.where(age < 21, 0.3, 0.6)).clip(0, 32)
    municipality = pop.municipality_in(who, year)
    return Frame(
        {
            "contact_id": Keys("TH", sc.next_keys("tannhelse", len(who))),
            "fnr": Ids(pop.id_index(who, day)),
            "contact_date": Days(day),
            "provider_id": Codes(_clinics().of(municipality, who, salt=13), _clinics().labels),
            "municipality": sc.municipality(municipality),
            "contact_type": sc.codes("contact_type", contact),
            "dmft": np.where(examined, dmft, np.nan),
            "new_caries": np.where(examined, new_caries, np.nan),
        },
        who,
    )


@functools.cache
def _clinics():
    return practices("TK", 12000)


GENERATOR = yearly("tannhelse", contacts)
