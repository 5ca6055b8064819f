"""DSF, the Central Population Register: a yearly snapshot and the ID-number history.

The snapshot of a year has one row per person registered at some time in it, with the ID
number they had at its end (or when they died or left), and dates up to the year's end.
The ID history lists that year's changes: D-numbers that became FNRs and replaced FNRs.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from tre.synth.frame import NULL_DAY, Days, Frame, Ids
from tre.synth.population import NEVER, year_bounds
from tre.synth.scenario import Generator, Scenario


def frames(sc: Scenario, state, people: slice, rng) -> Iterator[tuple[str, str, Frame]]:
    pop = sc.pop
    for year in pop.years:
        yield "dsf", str(year), snapshot(sc, people, year)
        yield "dsf_idhistory", str(year), id_history(sc, people, year)


def _until(values: np.ndarray, end: int) -> Days:
    return Days(np.where((values != NEVER) & (values <= end), values, NULL_DAY))


def snapshot(sc: Scenario, people: slice, year: int) -> Frame:
    pop = sc.pop
    first, last = pop.window(people, year)
    person = people.start + np.flatnonzero(first <= last)
    _, end = year_bounds(year)
    return Frame(
        {
            "fnr": Ids(pop.id_index(person, np.minimum(pop.exit[person], end))),
            "birth_date": Days(pop.birth[person]),
            "sex": sc.codes("sex", np.where(pop.male[person], 0, 1)),
            "municipality": sc.municipality(pop.municipality_in(person, year)),
            "marital_status": sc.codes("marital_status", pop.marital[person]),
            "immigration_date": _until(pop.immigration[person], end),
            "emigration_date": _until(pop.emigration[person], end),
            "death_date": _until(pop.death[person], end),
        },
        person,
    )


def id_history(sc: Scenario, people: slice, year: int) -> Frame:
    pop = sc.pop
    start, end = year_bounds(year)
    change = pop.id_change[people]
    person = people.start + np.flatnonzero((change >= start) & (change <= end))
    return Frame(
        {
            "old_id": Ids(person),
            "new_id": Ids(person + pop.size),
            "change_date": Days(pop.id_change[person]),
            "reason": sc.codes("idhistory_reason", pop.id_reason[person]),
        },
        person,
    )


GENERATOR = Generator("dsf", lambda sc: [(name, y) for y in sc.years for name in ("dsf", "dsf_idhistory")], frames)
