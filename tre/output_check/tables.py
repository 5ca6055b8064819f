"""Tables as the engine sees them: 1 to 3 dimensions, every cell and every margin.

A `Table` holds, for each cell of the *extended* table (each dimension's categories plus one
`Total` index at the end), the true count of units and, for magnitude tables, the sum of the
contributors' values, their largest contributions (for the dominance rules), and how many
contributions were negative or missing. It is built once from records, so margins are
computed from the true cells (NPR keeps totals) and every rule reads the same numbers.
"""

from __future__ import annotations

import datetime as dt
import itertools
from collections.abc import Iterator, Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tre.errors import UserError
from tre.output_check.kinds import TOTAL

MAX_DIMENSIONS = 3
ADDITIVE = ("count", "sum", "rate")  # statistics whose margins are sums of their cells
STATISTICS = ("count", "sum", "mean", "median", "min", "max", "std", "var", "rate")


class TableError(UserError):
    """A table the engine cannot read: wrong columns, labels or values."""


@dataclass(frozen=True)
class Table:
    dimensions: tuple[str, ...]
    categories: tuple[tuple[str, ...], ...]
    statistic: str  # what a published cell shows: one of STATISTICS
    count: np.ndarray  # units per extended cell
    value: np.ndarray  # the statistic per extended cell (== count for frequency tables)
    total: np.ndarray | None = None  # sum of contributions (magnitude tables)
    top: np.ndarray | None = None  # largest contributions, descending, NaN-padded: shape + (m,)
    negative: np.ndarray | None = None  # negative contributions per cell
    missing: np.ndarray | None = None  # missing contributions per cell
    denominator: np.ndarray | None = None  # rate tables: the denominator per cell
    contributors_known: bool = True  # False: cells came aggregated; dominance cannot be evaluated
    units: np.ndarray | None = None  # distinct units (persons) per extended cell, when known
    unit_top: np.ndarray | None = None  # count tables: the largest numbers of records of one unit
    structural_zeros: np.ndarray | None = None  # interior cells declared empty by definition
    source: TableSource | None = field(default=None, compare=False, repr=False)  # to rebuild (merging)

    @property
    def shape(self) -> tuple[int, ...]:
        return self.count.shape

    @property
    def is_magnitude(self) -> bool:
        return self.total is not None

    @property
    def unit_counts(self) -> np.ndarray:
        """Units per extended cell: distinct units when they are known, else the count."""
        return self.count if self.units is None else self.units

    @property
    def is_additive(self) -> bool:
        return self.statistic in ADDITIVE or self.statistic == "mean"

    def interior(self) -> np.ndarray:
        """True for cells, False for margins."""
        return interior_mask(self.shape)

    def key(self, index: tuple[int, ...]) -> dict[str, str]:
        """The cell's key: dimension -> category, or "Total" for a margin."""
        return {
            dim: (cats[i] if i < len(cats) else TOTAL)
            for dim, cats, i in zip(self.dimensions, self.categories, index, strict=True)
        }

    def cells(self) -> Iterator[tuple[int, ...]]:
        """Every extended cell, interior cells first in row-major order, then margins."""
        inside = self.interior()
        indices = list(np.ndindex(*self.shape))
        yield from (i for i in indices if inside[i])
        yield from (i for i in indices if not inside[i])


def interior_mask(shape: tuple[int, ...]) -> np.ndarray:
    mask = np.ones(shape, dtype=bool)
    for axis, n in enumerate(shape):
        index = [slice(None)] * len(shape)
        index[axis] = n - 1
        mask[tuple(index)] = False
    return mask


def total_patterns(ndim: int) -> Iterator[tuple[bool, ...]]:
    """Every way of taking the margin over a subset of the axes (False: a category)."""
    return itertools.product((False, True), repeat=ndim)


def extend_sum(interior: np.ndarray) -> np.ndarray:
    """`interior` with a margin appended on every axis: every subtotal and the grand total."""
    ext = np.zeros(tuple(n + 1 for n in interior.shape), dtype=interior.dtype)
    for pattern in total_patterns(interior.ndim):
        axes = tuple(a for a, t in enumerate(pattern) if t)
        where = tuple(slice(-1, None) if t else slice(0, -1) for t in pattern)
        ext[where] = interior.sum(axis=axes, keepdims=True) if axes else interior
    return ext


@dataclass(frozen=True)
class TableSource:
    """What a table was built from, so a remedy (merging) can build it again from records."""

    records: pd.DataFrame
    dimensions: tuple[str, ...]
    options: dict


def build_table(
    records: pd.DataFrame,
    dimensions: Sequence[str],
    *,
    count: str | None = None,
    value: str | None = None,
    statistic: str | None = None,
    denominator: str | None = None,
    categories: Sequence[Sequence[str]] | None = None,
    top_n: int = 2,
    unit: str | None = None,
    structural_zeros: Sequence[dict] = (),
) -> Table:
    """A table from records in long form.

    Each row is one unit (or `count` units) in the cell its `dimensions` name. With `value`,
    each row is a contributor to a magnitude table; rows that stand for more than one unit
    mean the contributions are not known one by one, so the dominance rules cannot run.
    With `denominator`, the table is a rate table (count per `denominator`). Categories
    keep the order given, else the order they first appear in.

    With `unit`, the column naming each record's unit (the person it is about): the table
    then counts distinct units per cell (margins included: a person in two cells is one
    person in their margin), and the dominance rules weigh each unit's total contribution
    (its records, for a count table). `structural_zeros` are cells (a dict of dimension ->
    category; dimensions left out match every category) that are empty by definition.
    """
    dimensions = tuple(dimensions)
    statistic = statistic or ("rate" if denominator else "sum" if value else "count")
    _check_columns(records, dimensions, count, value, statistic, denominator, unit)
    labels = {d: records[d].map(category_label) for d in dimensions}
    if categories is None:
        categories = tuple(tuple(pd.unique(labels[d])) for d in dimensions)
    else:
        categories = tuple(tuple(category_label(c) for c in cats) for cats in categories)
    _check_labels(dimensions, categories)
    codes = []
    for d, cats in zip(dimensions, categories, strict=True):
        code = pd.Categorical(labels[d], categories=list(cats)).codes.astype(np.int64)
        if (code < 0).any():
            raise TableError(f"dimension {d!r} has values outside its categories")
        codes.append(code)
    inner_shape = tuple(len(c) for c in categories)

    units = _numbers(records, count, "count") if count else np.ones(len(records))
    if count and ((units < 0).any() or (units != np.round(units)).any()):
        raise TableError(f"count column {count!r} must hold whole numbers of 0 or more")
    n = np.zeros(inner_shape)
    np.add.at(n, tuple(codes), units)
    ext_count = extend_sum(n).astype(np.int64)

    fields: dict = {}
    values = _numbers(records, value, "value") if value else None
    unit_codes = _unit_codes(records[unit]) if unit else None
    if value:
        present = ~np.isnan(values)
        for name, data in (("total", np.where(present, values, 0.0)), ("negative", (values < 0) * 1.0)):
            inner = np.zeros(inner_shape)
            np.add.at(inner, tuple(codes), data)
            fields[name] = extend_sum(inner)
        inner = np.zeros(inner_shape)
        np.add.at(inner, tuple(codes), (~present) * units)
        fields["missing"] = extend_sum(inner).astype(np.int64)
        fields["negative"] = fields["negative"].astype(np.int64)
        fields["contributors_known"] = unit is not None or count is None or bool((units <= 1).all())
    m = max(top_n, 2)
    if unit_codes is not None:
        weights = np.where(np.isnan(values), 0.0, values) if value else units
        distinct, top = _per_unit(codes, unit_codes, weights, inner_shape, m)
        fields["units"] = distinct
        fields["top" if value else "unit_top"] = top
    elif value:
        fields["top"] = _largest(codes, values, inner_shape, m)
    if denominator:
        d = _numbers(records, denominator, "denominator")
        inner = np.zeros(inner_shape)
        np.add.at(inner, tuple(codes), d)
        fields["denominator"] = extend_sum(inner)
    if structural_zeros:
        fields["structural_zeros"] = _structural_zeros(dimensions, categories, structural_zeros, ext_count)

    frame = pd.DataFrame({f"__c{a}": c for a, c in enumerate(codes)})
    if value:
        frame["__v"] = values
    value_array = _statistic(statistic, ext_count, fields, frame, inner_shape)
    options = dict(count=count, value=value, statistic=statistic, denominator=denominator, top_n=top_n, unit=unit,
                   structural_zeros=tuple(structural_zeros))  # fmt: skip
    return Table(
        dimensions=dimensions,
        categories=categories,
        statistic=statistic,
        count=ext_count,
        value=value_array,
        source=TableSource(records, dimensions, options),
        **fields,
    )


def rebuild_table(table: Table, relabel: dict[str, dict[str, str]], categories) -> Table | None:
    """`table` built again from its records with labels of some dimensions replaced (merging),
    or None when it was not built from records."""
    if table.source is None:
        return None
    records = table.source.records.copy()
    for dim, mapping in relabel.items():
        records[dim] = records[dim].map(category_label).map(lambda v, m=mapping: m.get(v, v))
    return build_table(records, table.source.dimensions, categories=categories, **table.source.options)


def _unit_codes(column: pd.Series) -> np.ndarray:
    """A code per record's unit; records without a unit share one code (counted as one unit)."""
    codes, uniques = pd.factorize(column, use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    return np.where(codes < 0, len(uniques), codes)


def _ext_flats(codes, inner_shape) -> Iterator[np.ndarray]:
    """For every way of taking margins, each record's extended cell as a flat index."""
    ext_shape = tuple(s + 1 for s in inner_shape)
    n = len(codes[0]) if codes else 0
    for pattern in total_patterns(len(inner_shape)):
        idx = tuple(np.full(n, inner_shape[a]) if t else codes[a] for a, t in enumerate(pattern))
        yield np.ravel_multi_index(idx, ext_shape) if idx else np.zeros(n, dtype=np.int64)


def _per_unit(codes, unit_codes, weights, inner_shape, m) -> tuple[np.ndarray, np.ndarray]:
    """Distinct units per extended cell, and the m largest unit totals of `weights` in each."""
    ext_shape = tuple(s + 1 for s in inner_shape)
    size = int(np.prod(ext_shape))
    span = int(unit_codes.max()) + 1 if len(unit_codes) else 1
    distinct = np.zeros(size, dtype=np.int64)
    top = np.full((size, m), np.nan)
    for flat in _ext_flats(codes, inner_shape):
        keys, inverse = np.unique(flat * span + unit_codes, return_inverse=True)
        cells = keys // span
        distinct += np.bincount(cells, minlength=size)
        totals = np.bincount(inverse.ravel(), weights=weights, minlength=len(keys))
        _put_top(top, cells, totals, m)
    return distinct.reshape(ext_shape), top.reshape(ext_shape + (m,))


def _put_top(top: np.ndarray, cells: np.ndarray, values: np.ndarray, m: int) -> None:
    """Write the m largest `values` of each cell into `top` (cells x m), descending."""
    order = np.lexsort((-values, cells))
    cells_sorted, values_sorted = cells[order], values[order]
    starts = np.r_[0, np.flatnonzero(np.diff(cells_sorted)) + 1] if len(cells_sorted) else np.array([], int)
    group_start = np.repeat(starts, np.diff(np.r_[starts, len(cells_sorted)]))
    rank = np.arange(len(cells_sorted)) - group_start
    keep = rank < m
    top[cells_sorted[keep], rank[keep]] = values_sorted[keep]


def _structural_zeros(dimensions, categories, declared, count) -> np.ndarray:
    """The extended mask of cells declared empty by definition; refuses one that holds units."""
    mask = np.zeros(count.shape, dtype=bool)
    inner = tuple(slice(0, len(c)) for c in categories)
    for zero in declared:
        unknown = sorted(set(map(str, zero)) - set(dimensions))
        if unknown or not zero:
            raise TableError(
                f"structural zero {_describe(zero)}: name categories of the table's dimensions "
                f"({', '.join(dimensions)})"
            )
        where = []
        for d, cats in zip(dimensions, categories, strict=True):
            if d not in zero:
                where.append(slice(0, len(cats)))
                continue
            label = category_label(zero[d])
            where.append(cats.index(label) if label in cats else None)
        if any(w is None for w in where):
            continue  # a category the table does not have: nothing to mark
        mask[tuple(where)] = True
    if (count[inner][mask[inner]] > 0).any():
        raise TableError(
            "a cell declared a structural zero holds records: it is not empty by definition; "
            "remove it from structural_zeros"
        )
    return mask


def _describe(key: dict) -> str:
    return "(" + ", ".join(f"{k}={v}" for k, v in key.items()) + ")"


def _statistic(statistic, count, fields, frame, inner_shape) -> np.ndarray:
    if statistic == "count":
        return count.astype(float)
    if statistic == "sum":
        return fields["total"]
    if statistic == "rate":
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(fields["denominator"] > 0, count / fields["denominator"], np.nan)
    if statistic == "mean":
        present = count - fields["missing"]
        with np.errstate(divide="ignore", invalid="ignore"):
            return np.where(present > 0, fields["total"] / present, np.nan)
    # order statistics and spreads: from the contributors of each cell and each margin
    out = np.full(count.shape, np.nan)
    for pattern in total_patterns(len(inner_shape)):
        by = [f"__c{a}" for a, t in enumerate(pattern) if not t]
        if by:
            agg = frame.groupby(by, sort=False)["__v"].agg(statistic)
            index = (
                [agg.index.get_level_values(i).to_numpy() for i in range(len(by))]
                if len(by) > 1
                else [agg.index.to_numpy()]
            )
        else:
            agg = pd.Series([frame["__v"].agg(statistic)])
            index = []
        where, it = [], iter(index)
        for a, t in enumerate(pattern):
            where.append(np.full(len(agg), inner_shape[a]) if t else next(it))
        out[tuple(where)] = agg.to_numpy(dtype=float)
    return out


def _largest(codes, values, inner_shape, m) -> np.ndarray:
    """The m largest contributions of every extended cell, descending, NaN-padded."""
    ext_shape = tuple(s + 1 for s in inner_shape)
    size = int(np.prod(ext_shape))
    top = np.full((size, m), np.nan)
    present = ~np.isnan(values)
    for flat in _ext_flats([c[present] for c in codes], inner_shape):
        _put_top(top, flat, values[present], m)
    return top.reshape(ext_shape + (m,))


def category_label(value) -> str:
    """A category as the text it is shown and matched by (1.0 -> '1', missing -> '(missing)',
    a date or a timestamp at midnight -> '2024-03-05', another timestamp -> '2024-03-05 14:30:00')."""
    if value is None or value is pd.NA or value is pd.NaT:
        return "(missing)"
    if isinstance(value, float | np.floating):
        if np.isnan(value):
            return "(missing)"
        if float(value).is_integer():
            return str(int(value))
        return str(value)
    if isinstance(value, np.datetime64):
        if np.isnat(value):
            return "(missing)"
        value = pd.Timestamp(value)
    if isinstance(value, dt.datetime):
        stamp = pd.Timestamp(value)
        if stamp.tz is None and stamp == stamp.normalize():
            return stamp.strftime("%Y-%m-%d")
        return str(stamp)
    if isinstance(value, dt.date):
        return value.isoformat()
    return str(value)


def _numbers(records: pd.DataFrame, column: str, what: str) -> np.ndarray:
    converted = pd.to_numeric(records[column], errors="coerce")
    bad = converted.isna() & records[column].notna() & (records[column].astype(str).str.strip() != "")
    if bad.any():
        raise TableError(f"{what} column {column!r} has {int(bad.sum())} value(s) that are not numbers")
    return converted.to_numpy(dtype=float)


def _check_columns(records, dimensions, count, value, statistic, denominator, unit=None) -> None:
    problems = []
    if not dimensions:
        problems.append("a table needs at least one dimension")
    if len(dimensions) > MAX_DIMENSIONS:
        problems.append(
            f"{len(dimensions)} dimensions ({', '.join(dimensions)}): at most {MAX_DIMENSIONS} are supported; "
            "merge categories or split the table"
        )
    for column in (*dimensions, count, value, denominator, unit):
        if column and column not in records.columns:
            problems.append(f"no column {column!r} (columns: {', '.join(map(str, records.columns))})")
    if statistic not in STATISTICS:
        problems.append(f"unknown statistic {statistic!r}; one of {', '.join(STATISTICS)}")
    if statistic not in ("count", "rate") and not value:
        problems.append(f"a {statistic} table needs a value column")
    if len(set(dimensions)) != len(dimensions):
        problems.append("a dimension is named twice")
    if problems:
        raise TableError("; ".join(problems))


def _check_labels(dimensions, categories) -> None:
    for d, cats in zip(dimensions, categories, strict=True):
        if TOTAL in cats:
            raise TableError(
                f"dimension {d!r} has a category {TOTAL!r}: give the cells only; margins are computed from them"
            )
        if not cats:
            raise TableError(f"dimension {d!r} has no categories: the table is empty")
