"""A consent-based register sample: the diabetes quality register, with consent flags.

Most people with diabetes are registered; most of them consented to registration and
linkage, some did not, and a few withdraw their consent (after which nothing new is
registered). Rows record yearly check-ups with HbA1c.
"""

from __future__ import annotations

import functools
from collections.abc import Iterator

import numpy as np
import pyarrow as pa

from tre.synth import assumptions as a
from tre.synth.frame import NULL_DAY, Codes, Days, Frame, Ids, Keys, expand, uniform_days
from tre.synth.population import NEVER, year_bounds
from tre.synth.scenario import Generator, Scenario, registered

DIAGNOSES = ("E119", "E118", "E115", "E109", "E108", "E105")  # type 2 first, then type 1
DIAGNOSIS_SHARES = (0.8, 0.1, 0.1)


def frames(sc: Scenario, state, people: slice, rng) -> Iterator[tuple[str, str, Frame]]:
    pop = sc.pop
    local = np.arange(people.start, people.stop)
    diabetic = (pop.conditions[local] & a.DIABETES) > 0
    enrolled = diabetic & (rng.random(len(local)) < a.QUALITY_REGISTER_ENROLLED)
    consent = rng.random(len(local)) < a.QUALITY_REGISTER_CONSENT
    period_start, _ = year_bounds(pop.first_year)
    _, period_end = year_bounds(pop.last_year)
    first = np.maximum(pop.entry[local], period_start)
    last = np.minimum(pop.exit[local], period_end)
    withdraws = consent & (rng.random(len(local)) < a.QUALITY_REGISTER_WITHDRAW) & (first < last)
    withdrawn = np.where(withdraws, uniform_days(rng, first + 1, np.maximum(last, first + 1)), NEVER)
    type1 = (pop.conditions[local] & a.CONDITION_BIT["diabetes1"]) > 0
    hba1c_mean = np.where(type1, rng.normal(62, 10, len(local)), rng.normal(53, 10, len(local)))

    for year in pop.years:
        person, first, last, exposure = registered(sc, people, year)
        i = person - people.start
        last = np.minimum(last, withdrawn[i] - 1)  # nothing new after consent is withdrawn
        take = enrolled[i] & (first <= last) & (rng.random(len(person)) < exposure)
        visits = take * (1 + rng.poisson(a.QUALITY_REGISTER_EXTRA_VISITS, len(person)))
        row = expand(np.arange(len(person)), visits)
        who, j = person[row], i[row]
        day = uniform_days(rng, first[row], last[row])
        _, end = year_bounds(year)
        diagnosis = np.searchsorted(np.cumsum(DIAGNOSIS_SHARES), rng.random(len(row)) * 0.9999, side="right")
        hba1c = np.round(np.clip(hba1c_mean[j] + rng.normal(0, 5, len(row)), 30, 150), 1)
        frame = Frame(
            {
                "record_id": Keys("KV", sc.next_keys("kvalitetsregister", len(row))),
                "fnr": Ids(pop.id_index(who, day)),
                "registered_date": Days(day),
                "consent": consent[j],
                "consent_withdrawn_date": Days(np.where(withdrawn[j] <= end, withdrawn[j], NULL_DAY)),
                "diagnosis": Codes(diagnosis + 3 * type1[j], _labels()),
                "hba1c": np.where(rng.random(len(row)) < 0.05, np.nan, hba1c),
            },
            who,
        )
        yield "kvalitetsregister", str(year), frame


@functools.cache
def _labels() -> pa.Array:
    return pa.array(DIAGNOSES, pa.string())


GENERATOR = Generator("kvalitetsregister", lambda sc: [("kvalitetsregister", y) for y in sc.years], frames)
