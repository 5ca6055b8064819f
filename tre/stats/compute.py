"""The indicators computed from the register store: DuckDB SQL per year, numpy for the hierarchy.

Steps, each one statement over whole tables (no Python loop per row):

1. the population on 1 January (`__tre_stats_pop`): one row per person (canonical identity)
   resident that day, with municipality, sex and age in whole years. Its source is the
   population register's snapshot of the year before (residence at its end is residence on
   1 January) when one was delivered, else the year's own snapshot (then the municipality is
   the one it gives: a person who moved during the year counts where they lived at its end);
2. per distinct numerator (source, codes, how events are dated): one row per person with
   their events in the year (`__tre_stats_num_N`); the latest version of a record that was
   delivered again; for the hours statistic the person's weekly hours (each decision's hours
   weighted by the days it ran in the year, over the days the person had one);
3. per indicator: persons of the population in the indicator's age range, joined to their
   numerator, grouped by municipality, sex and age band (the leaves of the cube);
4. numpy adds the leaves up into counties, the country, both sexes and the parent age bands.
"""

from __future__ import annotations

import datetime as dt
from dataclasses import dataclass, field

import duckdb
import numpy as np

from tre.linkage.store import literal, quote
from tre.output_check.linked import Hierarchy, aggregate
from tre.registers import SOURCES
from tre.stats.indicators import SEX_OF_REGISTER, Indicator, hierarchies

TOP = 2  # the largest contributions kept per cell (the n,k and p% rules need two)


@dataclass
class Cube:
    """One indicator in one year: every cell of region x sex x age, parents included."""

    indicator: Indicator
    year: int
    hierarchies: tuple[Hierarchy, ...]
    population: np.ndarray  # inhabitants on 1 January in the cell (the denominator)
    units: np.ndarray  # persons behind the numerator (each once)
    value: np.ndarray  # events (rate), persons (share), or the sum of weekly hours (mean)
    top: np.ndarray  # shape + (TOP,): the largest persons' contributions, descending, 0-padded
    basis: str = ""  # which population-register snapshot gave the population

    @property
    def shape(self) -> tuple[int, ...]:
        return self.population.shape

    def shown(self) -> np.ndarray:
        """The published statistic per cell (NaN where it is not defined)."""
        with np.errstate(divide="ignore", invalid="ignore"):
            if self.indicator.kind == "mean":
                return np.where(self.units > 0, self.value / self.units, np.nan)
            return np.where(self.population > 0, self.value / self.population * self.indicator.per, np.nan)


@dataclass
class Coverage:
    """What the numerator's rows gave that no cell counts (never published)."""

    events_outside: int = 0  # events of persons not resident on 1 January
    persons_outside: int = 0
    unlinked_rows: int = 0  # rows of the year stored without a person


@dataclass
class YearData:
    year: int
    basis: str
    population: int  # the whole population on 1 January
    cubes: dict[str, Cube] = field(default_factory=dict)
    coverage: dict[str, Coverage] = field(default_factory=dict)


def build_year(con: duckdb.DuckDBPyConnection, indicators: list[Indicator], year: int) -> YearData:
    """Every indicator of `indicators` for `year`, from the register store attached as `registers`."""
    basis = _population(con, year)
    total = con.execute("SELECT count(*) FROM __tre_stats_pop").fetchall()[0][0]
    data = YearData(year, basis, total)
    numerators: dict[tuple, str] = {}
    for indicator in indicators:
        key = (
            indicator.numerator.source,
            tuple(sorted(indicator.numerator.where.items())),
            indicator.numerator.active,
            indicator.numerator.value,
        )
        if key not in numerators:
            numerators[key] = f"__tre_stats_num_{len(numerators)}"
            coverage = _numerator(con, indicator, year, numerators[key])
            for other in indicators:
                if other.numerator == indicator.numerator:
                    data.coverage[other.id] = coverage
        data.cubes[indicator.id] = _cube(con, indicator, year, numerators[key], basis)
    for table in numerators.values():
        con.execute(f"DROP TABLE IF EXISTS {table}")
    con.execute("DROP TABLE IF EXISTS __tre_stats_pop")
    return data


def delivered_years(con: duckdb.DuckDBPyConnection) -> list[int]:
    """The years the population register was delivered for (the years that can be built)."""
    rows = con.execute(
        "SELECT DISTINCT TRY_CAST(period AS INTEGER) FROM registers.__tre_deliveries WHERE source = 'dsf' ORDER BY 1"
    ).fetchall()
    return [r[0] for r in rows if r[0] is not None]


def _population(con: duckdb.DuckDBPyConnection, year: int) -> str:
    """`__tre_stats_pop`: persons resident on 1 January of `year`; returns the basis used."""
    periods = {
        r[0] for r in con.execute("SELECT period FROM registers.__tre_deliveries WHERE source = 'dsf'").fetchall()
    }
    period = str(year - 1) if str(year - 1) in periods else str(year)
    basis = f"dsf {period} ({'end of the year before' if period != str(year) else 'the year itself'})"
    con.execute(
        """CREATE OR REPLACE TEMP TABLE __tre_stats_pop AS
        WITH latest AS (
            SELECT coalesce(m.canonical_pid, d.pid) AS person, d.municipality, d.sex, d.birth_date,
                   d.death_date, d.emigration_date, d.immigration_date
            FROM registers.dsf d
            JOIN registers.__tre_deliveries v ON v.id = d.__delivery AND v.source = 'dsf' AND v.period = $period
            LEFT JOIN registers.__tre_person_map m ON m.pid = d.pid
            WHERE d.pid IS NOT NULL
            QUALIFY row_number() OVER (PARTITION BY person ORDER BY d.__delivery DESC, d.__line DESC) = 1)
        SELECT person, municipality, sex, date_sub('year', birth_date, $day) AS age FROM latest
        WHERE birth_date < $day
          AND (death_date IS NULL OR death_date >= $day)
          AND (immigration_date IS NULL OR immigration_date < $day)
          AND (emigration_date IS NULL OR emigration_date >= $day OR immigration_date > emigration_date)""",
        {"period": period, "day": dt.date(year, 1, 1)},
    )
    return basis


def _has_updates(con: duckdb.DuckDBPyConnection, source: str) -> bool:
    return bool(
        con.execute(
            "SELECT coalesce(sum(TRY_CAST(json_extract(report, '$.updated_records') AS BIGINT)), 0) "
            "FROM registers.__tre_deliveries WHERE source = $1",
            [source],
        ).fetchall()[0][0]
    )


def _rows_sql(con, indicator: Indicator, params: dict) -> str:
    """The numerator's rows (latest version of each record), filtered by its codes and year."""
    n = indicator.numerator
    source = SOURCES[n.source]
    sql = f"SELECT * FROM registers.{quote(source.name)} r"
    if source.key and _has_updates(con, source.name):
        sql += f" QUALIFY row_number() OVER (PARTITION BY r.{quote(source.key)} ORDER BY r.__delivery DESC, r.__line DESC) = 1"
    conditions = []
    for i, (column, codes) in enumerate(sorted(n.where.items())):
        params[f"codes_{i}"] = list(codes)
        conditions.append(f"list_contains($codes_{i}, r.{quote(column)})")
    if n.active == "overlap":
        conditions.append("r.start_date <= $last AND (r.end_date IS NULL OR r.end_date >= $first)")
    else:
        conditions.append(f"CAST(r.{quote(source.event_date)} AS DATE) BETWEEN $first AND $last")
    return f"SELECT * FROM ({sql}) r WHERE " + " AND ".join(conditions)


def _numerator(con: duckdb.DuckDBPyConnection, indicator: Indicator, year: int, table: str) -> Coverage:
    """`table`: one row per person with their events in the year (and weekly hours for a mean)."""
    params = {"first": dt.date(year, 1, 1), "last": dt.date(year, 12, 31)}
    rows = _rows_sql(con, indicator, params)
    person = "coalesce(m.canonical_pid, r.pid)"
    if indicator.numerator.value == "weekly_hours":
        # Each decision clipped to the year; the days a person had one are the union of the
        # clipped spans (gaps and islands), so overlapping decisions add hours, not days.
        sql = f"""
        WITH d AS (
            SELECT {person} AS person, greatest(r.start_date, $first) AS s,
                   least(coalesce(r.end_date, $last), $last) AS e, r.hours_per_week AS h
            FROM ({rows}) r LEFT JOIN registers.__tre_person_map m ON m.pid = r.pid WHERE r.pid IS NOT NULL),
        ordered AS (
            SELECT *, max(e) OVER (PARTITION BY person ORDER BY s, e ROWS BETWEEN UNBOUNDED PRECEDING AND 1 PRECEDING) AS before
            FROM d WHERE h IS NOT NULL),
        islands AS (
            SELECT *, sum(CASE WHEN before IS NULL OR s > before + 1 THEN 1 ELSE 0 END)
                OVER (PARTITION BY person ORDER BY s, e ROWS UNBOUNDED PRECEDING) AS island FROM ordered),
        spans AS (SELECT person, island, date_diff('day', min(s), max(e)) + 1 AS days FROM islands GROUP BY ALL),
        weighted AS (SELECT person, count(*) AS events, sum(h * (date_diff('day', s, e) + 1)) AS hour_days FROM d WHERE h IS NOT NULL GROUP BY ALL)
        SELECT w.person, w.events, w.hour_days / sum(s.days) AS weekly
        FROM weighted w JOIN spans s USING (person) GROUP BY w.person, w.events, w.hour_days"""
    else:
        sql = f"""SELECT {person} AS person, count(*) AS events, NULL::DOUBLE AS weekly
            FROM ({rows}) r LEFT JOIN registers.__tre_person_map m ON m.pid = r.pid
            WHERE r.pid IS NOT NULL GROUP BY ALL"""
    con.execute(f"CREATE OR REPLACE TEMP TABLE {table} AS {sql}", _used(sql, params))
    outside = con.execute(
        f"SELECT count(*), coalesce(sum(events), 0) FROM {table} n ANTI JOIN __tre_stats_pop p ON p.person = n.person"
    ).fetchall()[0]
    unlinked_sql = f"SELECT count(*) FROM ({rows}) r WHERE r.pid IS NULL"
    unlinked = con.execute(unlinked_sql, _used(unlinked_sql, params)).fetchall()[0][0]
    return Coverage(events_outside=int(outside[1]), persons_outside=int(outside[0]), unlinked_rows=int(unlinked))


def _used(sql: str, params: dict) -> dict:
    return {k: v for k, v in params.items() if f"${k}" in sql}


def _band_sql(indicator: Indicator) -> str:
    cases = " ".join(f"WHEN p.age BETWEEN {b.min} AND {b.max} THEN {literal(b.code)}" for b in indicator.ages.leaves)
    return f"CASE {cases} END"


def _cube(con: duckdb.DuckDBPyConnection, indicator: Indicator, year: int, numerator: str, basis: str) -> Cube:
    leaves = indicator.ages.leaves
    low, high = min(b.min for b in leaves), max(b.max for b in leaves)
    if indicator.kind == "mean":
        units, value, top = "count(n.weekly)", "coalesce(sum(n.weekly), 0)", f"max(n.weekly, {TOP})"
    elif indicator.kind == "rate":
        units, value, top = "count(n.person)", "coalesce(sum(n.events), 0)", f"max(n.events, {TOP})"
    else:
        units, value, top = "count(n.person)", "count(n.person)", "NULL"
    rows = con.execute(
        f"""SELECT p.municipality, p.sex, {_band_sql(indicator)} AS band, count(*) AS population,
                   {units} AS units, {value} AS value, {top} AS top
            FROM __tre_stats_pop p LEFT JOIN {numerator} n ON n.person = p.person
            WHERE p.age BETWEEN {int(low)} AND {int(high)}
            GROUP BY ALL"""
    ).fetchall()
    hs = hierarchies(indicator)
    shape = tuple(len(h.codes) for h in hs)
    population, units_a, value_a = np.zeros(shape), np.zeros(shape), np.zeros(shape)
    top_a = np.zeros(shape + (TOP,))
    region_index = {c: i for i, c in enumerate(hs[0].codes)}
    sex_index = {k: hs[1].index(v) for k, v in SEX_OF_REGISTER.items()}
    band_index = {c: i for i, c in enumerate(hs[2].codes)}
    for municipality, sex, band, pop, n, v, t in rows:
        cell = (region_index.get(municipality), sex_index.get(sex), band_index.get(band))
        if None in cell:  # the population register's codes are checked at ingest; never expected
            raise ValueError(f"population register row outside the cube: {municipality!r}/{sex!r}/{band!r}")
        population[cell] += pop
        units_a[cell] += n
        value_a[cell] += v
        if t:
            top_a[cell][: len(t)] = sorted((float(x) for x in t if x is not None), reverse=True)[:TOP]
    return Cube(
        indicator=indicator,
        year=year,
        hierarchies=hs,
        population=aggregate(population, hs),
        units=aggregate(units_a, hs),
        value=aggregate(value_a, hs),
        top=aggregate_top(top_a, hs),
        basis=basis,
    )


def aggregate_top(top: np.ndarray, hierarchies: tuple[Hierarchy, ...]) -> np.ndarray:
    """The largest contributions of every parent: the largest among its children's."""
    out = top.copy()
    for axis, h in enumerate(hierarchies):
        for node in sorted(h.internal, key=lambda i: h.height[i]):
            kids = np.take(out, list(h.children[node]), axis=axis)  # children along `axis`
            merged = np.moveaxis(kids, axis, -2)
            merged = merged.reshape(*merged.shape[:-2], -1)
            best = -np.sort(-merged, axis=-1)[..., : top.shape[-1]]
            index = [slice(None)] * out.ndim
            index[axis] = node
            out[tuple(index)] = best
    return out
