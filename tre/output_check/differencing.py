"""Differencing across releases: does subtracting an earlier release reveal a small group?

Every published value of a count table (cell or margin) counts the units of the table's
population that meet its key's restrictions: `{"kommune": "0301"}` for a cell, `{}` for the
grand total (a `Total` coordinate restricts nothing). If the new table's population may be
contained in an earlier release's (nested subpopulations, one extra filter, one category
fewer), then for every pair of values where the earlier one restricts no more than the new
one, the earlier value minus the new one is itself a count of people, and so is the reverse
for the opposite containment. A difference above zero and under the threshold fails, naming
the earlier release. A containment the values contradict (a difference below zero) is ruled
out for that pair of tables: their populations are not nested, and differencing them
reveals nothing exact.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Sequence
from dataclasses import dataclass

import numpy as np

from tre.output_check.kinds import TOTAL


@dataclass(frozen=True)
class PublishedTable:
    """What a reader sees of a count table: published values by key (None: suppressed)."""

    name: str
    dimensions: tuple[str, ...]
    cells: dict[tuple[str, ...], float | None]

    def restrictions(self) -> dict[frozenset, tuple[tuple[str, ...], float]]:
        """Every value a reader knows, by its restrictions; margins derived from full slices too."""
        known: dict[frozenset, tuple[tuple[str, ...], float]] = {}
        for key, value in self.cells.items():
            if value is not None and not np.isnan(value):
                known[_restrict(self.dimensions, key)] = (key, float(value))
        for key, value in self.derived_margins().items():
            known.setdefault(_restrict(self.dimensions, key), (key, value))
        return known

    def derived_margins(self) -> dict[tuple[str, ...], float]:
        """Margins not published but computable because every cell they sum is published."""
        cats = [sorted({k[a] for k in self.cells if k[a] != TOTAL}) for a in range(len(self.dimensions))]
        out = {}
        for pattern in itertools.product((False, True), repeat=len(self.dimensions)):
            if not any(pattern):
                continue
            fixed = [[TOTAL] if t else cats[a] for a, t in enumerate(pattern)]
            for key in itertools.product(*fixed):
                if self.cells.get(key) is not None:
                    continue
                parts = [
                    self.cells.get(tuple(c if not t else o for c, t, o in zip(key, pattern, inner, strict=True)))
                    for inner in itertools.product(*[cats[a] if t else [key[a]] for a, t in enumerate(pattern)])
                ]
                if parts and all(p is not None and not np.isnan(p) for p in parts):
                    out[key] = float(sum(parts))
        return out


@dataclass(frozen=True)
class Difference:
    """A value of the new table that differs from a value of an earlier release by a small group."""

    key: tuple[str, ...]  # in the new table
    release: str
    released_key: dict[str, str]
    containment: str  # "new within earlier" or "earlier within new"

    def message(self, dimensions: Sequence[str]) -> str:
        new = _describe(dict(zip(dimensions, self.key, strict=True)))
        old = _describe(self.released_key)
        relation = (
            "if this table's population lies within that release's"
            if self.containment == "new within earlier"
            else "if that release's population lies within this table's"
        )
        return (
            f"{new} differs from {old} in release {self.release!r} by fewer units than the threshold: "
            f"{relation}, subtracting one from the other reveals a small group"
        )


def find_differences(new: PublishedTable, released: Iterable[PublishedTable], threshold: int) -> list[Difference]:
    """Values of `new` that, with an earlier release, reveal a group under the threshold."""
    found: list[Difference] = []
    mine = new.restrictions()
    for old in released:
        theirs = old.restrictions()
        for containment, pairs in (
            ("new within earlier", _pairs(mine, theirs)),
            ("earlier within new", _pairs(theirs, mine, swap=True)),
        ):
            # (new key, old key, the value that should be larger minus the smaller)
            if any(diff < -1e-9 for _, _, diff in pairs):
                continue  # these populations are not nested this way round
            for new_key, old_key, diff in pairs:
                if 0 < diff < threshold:
                    released_key = dict(zip(old.dimensions, old_key, strict=True))
                    found.append(Difference(new_key, old.name, released_key, containment))
    return found


def _pairs(inner, outer, swap: bool = False):
    """(new key, old key, outer value - inner value) for every inner value whose restrictions
    include all of an outer value's (the outer one counts a superset)."""
    out = []
    for restrictions, (key, value) in inner.items():
        items = sorted(restrictions)
        for r in range(len(items) + 1):
            for subset in itertools.combinations(items, r):
                hit = outer.get(frozenset(subset))
                if hit is None:
                    continue
                other_key, other_value = hit
                out.append((other_key, key, other_value - value) if swap else (key, other_key, other_value - value))
    return out


def _restrict(dimensions: Sequence[str], key: tuple[str, ...]) -> frozenset:
    return frozenset((d, k) for d, k in zip(dimensions, key, strict=True) if k != TOTAL)


def _describe(key: dict[str, str]) -> str:
    shown = ", ".join(f"{d}={v}" for d, v in key.items() if v != TOTAL)
    return f"({shown})" if shown else "(all)"
