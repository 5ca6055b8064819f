"""Reservation messages (§ 2-2): activate or deactivate an opt-out, time-stamped.

About 1.5 % of people opt out of registration and about as many of release with their FNR
(some of both), at some time while they are registered; one in five later withdraws the
opt-out. Each year's delivery has that year's messages.
"""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np

from tre.registers import CODE_LISTS
from tre.synth import assumptions as a
from tre.synth.frame import Frame, Ids, Keys, Seconds, uniform_days
from tre.synth.population import year_bounds
from tre.synth.scenario import Generator, Scenario

KINDS = CODE_LISTS["reservation_kind"]  # registration, release_with_fnr
ACTIVATE, DEACTIVATE = (
    CODE_LISTS["reservation_action"].index("activate"),
    CODE_LISTS["reservation_action"].index("deactivate"),
)


def frames(sc: Scenario, state, people: slice, rng) -> Iterator[tuple[str, str, Frame]]:
    pop = sc.pop
    period_start, _ = year_bounds(pop.first_year)
    _, period_end = year_bounds(pop.last_year)
    first = np.maximum(pop.entry[people], period_start)
    last = np.minimum(pop.exit[people], period_end)
    local = np.flatnonzero(first <= last)
    person, first, last = people.start + local, first[local], last[local]

    u = rng.random(len(person))
    both, one = a.RESERVATION_BOTH, a.RESERVATION_ONE
    registration = u < both + one
    release = (u < both) | ((u >= both + one) & (u < both + 2 * one))
    owner = np.r_[np.flatnonzero(registration), np.flatnonzero(release)]
    kind = np.r_[np.zeros(registration.sum(), dtype=np.int64), np.ones(release.sum(), dtype=np.int64)]
    activated = uniform_days(rng, first[owner], last[owner])
    activated_at = activated * 86400 + rng.integers(0, 86400, len(owner))
    withdraws = (rng.random(len(owner)) < a.RESERVATION_DEACTIVATE_SHARE) & (activated < last[owner])
    later = uniform_days(rng, activated + 1, np.maximum(last[owner], activated + 1))
    deactivated_at = later * 86400 + rng.integers(0, 86400, len(owner))

    who = np.r_[person[owner], person[owner[withdraws]]]
    kind = np.r_[kind, kind[withdraws]]
    action = np.r_[np.full(len(owner), ACTIVATE), np.full(withdraws.sum(), DEACTIVATE)]
    at = np.r_[activated_at, deactivated_at[withdraws]]
    order = np.argsort(at, kind="stable")
    who, kind, action, at = who[order], kind[order], action[order], at[order]
    for year in pop.years:
        start, end = year_bounds(year)
        rows = np.flatnonzero((at >= start * 86400) & (at < (end + 1) * 86400))
        frame = Frame(
            {
                "message_id": Keys("RM", sc.next_keys("reservasjon", len(rows))),
                "fnr": Ids(pop.id_index(who[rows], at[rows] // 86400)),
                "kind": sc.codes("reservation_kind", kind[rows]),
                "action": sc.codes("reservation_action", action[rows]),
                "effective_time": Seconds(at[rows]),
            },
            who[rows],
        )
        yield "reservasjon", str(year), frame


GENERATOR = Generator("reservasjon", lambda sc: [("reservasjon", y) for y in sc.years], frames)
