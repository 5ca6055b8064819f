"""The § 4-6 indicators as data: `indicators.toml` read, checked, and turned into hierarchies.

Regions are the 357 municipalities of 2024 in their 15 counties in the country; sex is men and
women with both together; each indicator names its age breakdown, a tree of bands whose root
is the population the indicator is about (all ages, 67+, 80+, 0-19 ...).
"""

from __future__ import annotations

import csv
import functools
import re
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from tre.config import PACKAGE_DIR
from tre.errors import ConfigError, Problems
from tre.output_check.linked import Hierarchy
from tre.registers import CODE_LISTS, SOURCES, municipalities

INDICATORS_FILE = Path(__file__).with_name("indicators.toml")
KINDS = ("rate", "share", "mean")
VALUES = ("weekly_hours",)
ACTIVE = ("year", "overlap")
BREAKDOWNS = ("region", "sex", "age")
_ID = re.compile(r"^[a-z][a-z0-9_]{0,40}$")

COUNTRY = "0"
SEXES = {"0": ("Begge kjønn", "Both sexes"), "1": ("Menn", "Men"), "2": ("Kvinner", "Women")}
SEX_OF_REGISTER = {"M": "1", "K": "2"}  # the population register's codes -> published codes


@dataclass(frozen=True)
class Band:
    code: str
    nb: str
    en: str
    min: int | None = None  # whole years on 1 January; None for the root
    max: int | None = None
    parent: str | None = None


@dataclass(frozen=True)
class Ages:
    name: str
    bands: tuple[Band, ...]  # the root first

    @property
    def root(self) -> Band:
        return self.bands[0]

    @property
    def leaves(self) -> tuple[Band, ...]:
        parents = {b.parent for b in self.bands}
        return tuple(b for b in self.bands[1:] if b.code not in parents)

    def hierarchy(self) -> Hierarchy:
        return Hierarchy.build("age", [(b.code, b.parent) for b in self.bands])

    def label(self, code: str, lang: str = "nb") -> str:
        band = next(b for b in self.bands if b.code == code)
        return band.nb if lang == "nb" else band.en


@dataclass(frozen=True)
class Numerator:
    source: str
    where: dict[str, tuple[str, ...]] = field(default_factory=dict)
    active: str = "year"
    value: str | None = None


@dataclass(frozen=True)
class Indicator:
    id: str
    title_nb: str
    title_en: str
    description_nb: str
    description_en: str
    kind: str
    unit_nb: str
    unit_en: str
    ages: Ages
    breakdowns: tuple[str, ...]
    sources: tuple[str, ...]
    numerator: Numerator
    per: int | None = None

    def title(self, lang: str = "nb") -> str:
        return self.title_nb if lang == "nb" else self.title_en

    def unit(self, lang: str = "nb") -> str:
        return self.unit_nb if lang == "nb" else self.unit_en

    @property
    def counts_persons(self) -> bool:
        """Whether the protected numerator is a count of persons (bounded by the population)."""
        return self.kind == "share"


@dataclass(frozen=True)
class Catalogue:
    version: str
    indicators: tuple[Indicator, ...]

    def get(self, indicator_id: str) -> Indicator:
        for indicator in self.indicators:
            if indicator.id == indicator_id:
                return indicator
        known = ", ".join(i.id for i in self.indicators)
        raise ConfigError(f"unknown indicator {indicator_id!r}; known: {known}")


def load_catalogue(path: Path = INDICATORS_FILE) -> Catalogue:
    """The indicators of `path`, checked as a whole: every problem named at once."""
    try:
        data = tomllib.loads(Path(path).read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"cannot read the indicator file {path}: {e.__class__.__name__}") from None
    except tomllib.TOMLDecodeError as e:
        raise ConfigError(f"the indicator file {path} is not valid TOML ({e}): fix it") from None
    problems: list[str] = []
    if not isinstance(data.get("version"), str) or not data.get("version"):
        problems.append("no `version` (a text such as 2026.1)")
    ages = {}
    for name, table in (data.get("ages") or {}).items():
        try:
            ages[name] = _ages(name, table)
        except (KeyError, TypeError, ValueError) as e:
            problems.append(f"ages.{name}: {e}")
    indicators = []
    seen = set()
    for n, raw in enumerate(data.get("indicator") or []):
        where = f"indicator {raw.get('id', n + 1)!r}" if isinstance(raw, dict) else f"indicator {n + 1}"
        found = _indicator_problems(raw, ages) if isinstance(raw, dict) else ["is not a table"]
        if isinstance(raw, dict) and raw.get("id") in seen:
            found.append("its id is used twice")
        if found:
            problems += [f"{where}: {p}" for p in found]
            continue
        seen.add(raw["id"])
        indicators.append(_indicator(raw, ages))
    if not indicators and not problems:
        problems.append("declares no indicator")
    if problems:
        raise Problems(f"indicator file {Path(path).name}", problems)
    return Catalogue(data["version"], tuple(indicators))


def _ages(name: str, table: dict) -> Ages:
    root = table["root"]
    bands = [Band(str(root["code"]), str(root["nb"]), str(root["en"]))]
    for b in table["bands"]:
        bands.append(
            Band(
                str(b["code"]),
                str(b["nb"]),
                str(b["en"]),
                int(b["min"]),
                int(b["max"]),
                str(b.get("parent", root["code"])),
            )
        )
    ages = Ages(name, tuple(bands))
    ages.hierarchy()  # a tree, one root
    leaves = sorted(ages.leaves, key=lambda b: b.min)
    for a, b in zip(leaves, leaves[1:], strict=False):
        if b.min != a.max + 1:
            raise ValueError(f"the bands {a.code} and {b.code} leave a gap or overlap")
    by_code = {b.code: b for b in bands}
    for band in bands[1:]:
        kids = [b for b in bands if b.parent == band.code]
        if kids and (min(k.min for k in kids) != band.min or max(k.max for k in kids) != band.max):
            raise ValueError(f"the bands under {band.code} do not cover {band.min}-{band.max}")
        if band.parent not in by_code:
            raise ValueError(f"band {band.code} has an unknown parent {band.parent}")
    return ages


def _indicator_problems(raw: dict, ages: dict) -> list[str]:
    problems = []
    for key in ("id", "title_nb", "title_en", "description_nb", "description_en", "kind", "unit_nb", "unit_en", "ages"):
        if not isinstance(raw.get(key), str) or not raw.get(key):
            problems.append(f"no {key!r}")
    if problems:
        return problems
    if not _ID.fullmatch(raw["id"]):
        problems.append("id must be lowercase letters, digits and '_', starting with a letter")
    if raw["kind"] not in KINDS:
        problems.append(f"kind must be one of {', '.join(KINDS)}")
    if raw["kind"] in ("rate", "share") and raw.get("per") not in (100, 1000, 10000, 100000):
        problems.append("a rate or share needs `per` (100, 1000, 10000 or 100000)")
    if raw["ages"] not in ages:
        problems.append(f"unknown ages {raw['ages']!r}")
    breakdowns = raw.get("breakdowns", [])
    if set(breakdowns) - set(BREAKDOWNS) or not breakdowns:
        problems.append(f"breakdowns must be among {', '.join(BREAKDOWNS)}")
    for source in raw.get("sources", []):
        if source not in SOURCES:
            problems.append(f"unknown source {source!r}")
    numerator = raw.get("numerator")
    if not isinstance(numerator, dict):
        return problems + ["no [indicator.numerator]"]
    source = SOURCES.get(numerator.get("source", ""))
    if source is None:
        return problems + [f"numerator: unknown source {numerator.get('source')!r}"]
    if source.central_only or source.consent_based or "municipality" not in source.column_names:
        problems.append(f"numerator: {source.name} is not a source of municipal statistics")
    for column, codes in (numerator.get("where") or {}).items():
        if column not in source.column_names:
            problems.append(f"numerator: {source.name} has no column {column!r}")
            continue
        known = CODE_LISTS.get(source.column(column).codes or "", ())
        unknown = [c for c in codes if c not in known]
        if unknown:
            problems.append(f"numerator: unknown {column} code(s) {', '.join(map(str, unknown))}")
    active = numerator.get("active", "year")
    if active not in ACTIVE:
        problems.append(f"numerator: active must be one of {', '.join(ACTIVE)}")
    if active == "overlap" and "end_date" not in source.column_names:
        problems.append(f"numerator: {source.name} has no decisions that run (no end_date)")
    if (raw["kind"] == "mean") != ("value" in numerator):
        problems.append("a mean needs numerator.value, and only a mean has one")
    if "value" in numerator and numerator["value"] not in VALUES:
        problems.append(f"numerator: value must be one of {', '.join(VALUES)}")
    if numerator.get("value") == "weekly_hours" and "hours_per_week" not in source.column_names:
        problems.append(f"numerator: {source.name} has no hours_per_week")
    return problems


def _indicator(raw: dict, ages: dict) -> Indicator:
    n = raw["numerator"]
    return Indicator(
        id=raw["id"],
        title_nb=raw["title_nb"],
        title_en=raw["title_en"],
        description_nb=raw["description_nb"],
        description_en=raw["description_en"],
        kind=raw["kind"],
        unit_nb=raw["unit_nb"],
        unit_en=raw["unit_en"],
        ages=ages[raw["ages"]],
        breakdowns=tuple(raw["breakdowns"]),
        sources=tuple(raw.get("sources", [])),
        numerator=Numerator(
            source=n["source"],
            where={k: tuple(v) for k, v in (n.get("where") or {}).items()},
            active=n.get("active", "year"),
            value=n.get("value"),
        ),
        per=raw.get("per"),
    )


# --- regions and sexes -----------------------------------------------------------------------


@dataclass(frozen=True)
class Region:
    code: str
    name: str
    level: str  # "land", "fylke", "kommune"
    parent: str | None


@functools.cache
def counties() -> dict[str, str]:
    with open(PACKAGE_DIR / "data" / "fylker-2024.csv", encoding="utf-8", newline="") as f:
        return {row["fylkesnummer"]: row["fylkesnavn"] for row in csv.DictReader(f)}


@functools.cache
def regions() -> tuple[Region, ...]:
    """The country, its 15 counties and 357 municipalities of 2024, the country first."""
    out = [Region(COUNTRY, "Hele landet", "land", None)]
    out += [Region(code, name, "fylke", COUNTRY) for code, name in counties().items()]
    out += [Region(m.number, m.name, "kommune", m.number[:2]) for m in municipalities()]
    return tuple(out)


def region(code: str) -> Region:
    for r in regions():
        if r.code == code:
            return r
    raise KeyError(code)


@functools.cache
def region_hierarchy() -> Hierarchy:
    return Hierarchy.build("region", [(r.code, r.parent) for r in regions()])


@functools.cache
def sex_hierarchy() -> Hierarchy:
    return Hierarchy.build("sex", [("0", None), ("1", "0"), ("2", "0")])


def hierarchies(indicator: Indicator) -> tuple[Hierarchy, Hierarchy, Hierarchy]:
    return region_hierarchy(), sex_hierarchy(), indicator.ages.hierarchy()
