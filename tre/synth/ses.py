"""Socioeconomic data: highest education, household income decile, main activity, per year.

One row per person aged 16 or more registered at some time in the year. Education is a
person's own (reached step by step while young); income deciles are true deciles of a score
from education, activity, age and a personal term, over everyone in that year's file.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from tre.synth import assumptions as a
from tre.synth.frame import Frame, Ids
from tre.synth.population import NEVER, band, year_bounds
from tre.synth.scenario import Scenario, yearly

UNKNOWN_EDUCATION = a.EDUCATION_LEVELS.index("ukjent")
EDUCATION_EFFECT = np.array([0.0, 0.4, 0.8, 1.2, 0.0])
EMPLOYMENT_EFFECT = np.array([1.0, -0.8, -1.0, -0.2, -0.6, -0.7])


@dataclass
class SesState:
    education: np.ndarray  # the highest level each person reaches
    activity: np.ndarray  # a fixed uniform number per person: where they fall in the activity shares
    personal: np.ndarray  # the personal income term
    thresholds: dict  # year -> income score at the 10th, 20th ... 90th percentile


def prepare(sc: Scenario, rng: np.random.Generator) -> SesState:
    pop = sc.pop
    start0, _ = year_bounds(pop.first_year)
    old = (start0 - pop.birth) / 365.25 >= 75
    immigrant = pop.immigration != NEVER
    group = np.where(immigrant, 2, np.where(old, 1, 0))
    shares = np.array([a.EDUCATION_SHARES[k] for k in ("younger", "older", "immigrant")])
    cumulative = np.cumsum(shares, axis=1)
    education = (rng.random(pop.size)[:, None] > cumulative[group]).sum(axis=1)
    state = SesState(
        np.minimum(education, len(a.EDUCATION_LEVELS) - 1),
        rng.random(pop.size),
        rng.normal(0, 0.8, pop.size),
        {},
    )
    everyone = np.arange(pop.size)
    for year in pop.years:
        person = _in_file(sc, everyone, year)
        _, _, score = _attributes(sc, state, person, year)
        state.thresholds[year] = np.quantile(score, np.arange(1, 10) / 10) if len(score) else np.zeros(9)
    return state


def _in_file(sc: Scenario, person: np.ndarray, year: int) -> np.ndarray:
    pop = sc.pop
    first, last = pop.window(slice(person[0], person[-1] + 1) if len(person) else slice(0, 0), year)
    _, end = year_bounds(year)
    keep = (first <= last) & ((end - pop.birth[person]) / 365.25 >= a.SES_MIN_AGE)
    return person[keep]


def _attributes(sc: Scenario, state: SesState, person: np.ndarray, year: int):
    pop = sc.pop
    _, end = year_bounds(year)
    age = (end - pop.birth[person]) / 365.25
    reached = state.education[person]
    cap = np.select([age < 19, age < 22, age < 25], [0, 1, 2], len(a.EDUCATION_LEVELS))
    education = np.where(reached == UNKNOWN_EDUCATION, reached, np.minimum(reached, cap))
    cumulative = np.cumsum(a.EMPLOYMENT_SHARES, axis=1)
    cumulative /= cumulative[:, -1:]
    rows = cumulative[band(age, a.EMPLOYMENT_AGE_EDGES)]
    activity = np.minimum((state.activity[person][:, None] > rows).sum(axis=1), len(a.EMPLOYMENTS) - 1)
    score = (
        EDUCATION_EFFECT[education]
        + EMPLOYMENT_EFFECT[activity]
        - 0.5 * ((age - 50) / 25) ** 2
        + state.personal[person]
    )
    return education, activity, score


def rows(sc: Scenario, state: SesState, people: slice, year: int, rng) -> Frame:
    pop = sc.pop
    person = _in_file(sc, np.arange(people.start, people.stop), year)
    education, activity, score = _attributes(sc, state, person, year)
    _, end = year_bounds(year)
    return Frame(
        {
            "fnr": Ids(pop.id_index(person, np.minimum(pop.exit[person], end))),
            "year": np.full(len(person), year),
            "education": sc.codes("education", education),
            "income_decile": 1 + np.searchsorted(state.thresholds[year], score, side="right"),
            "employment": sc.codes("employment", activity),
        },
        person,
    )


GENERATOR = yearly("ses", rows, prepare)
