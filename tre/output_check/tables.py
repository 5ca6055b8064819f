"""Tables as the engine sees them: 1 to 3 dimensions, every cell and every margin.

A `Table` holds, for each cell of the *extended* table (each dimension's categories plus one
`Total` index at the end), the true count of units and, for magnitude tables, the sum of the
contributors' values, their largest contributions (for the dominance rules), and how many
contributions were negative or missing. It is built once from records, so margins are
computed from the true cells (NPR keeps totals) and every rule reads the same numbers.
"""

from __future__ import annotations

import itertools
import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tre.errors import UserError
from tre.output_check.kinds import TOTAL

MAX_DIMENSIONS = 3
ADDITIVE = ("count", "sum", "rate")  # statistics whose margins are sums of their cells
STATISTICS = ("count", "sum", "mean", "median", "min", "max", "std", "var", "rate")
_DATE = re.compile(r"^\d{4}-\d{2}-\d{2}$")


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

    @property
    def shape(self) -> tuple[int, ...]:
        return self.count.shape

    @property
    def is_magnitude(self) -> bool:
        return self.total is not None

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

    def date_dimensions(self) -> list[int]:
        """Axes whose categories are exact dates (YYYY-MM-DD)."""
        return [a for a, cats in enumerate(self.categories) if cats and all(_DATE.match(c) for c in cats)]


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
) -> Table:
    """A table from records in long form.

    Each row is one unit (or `count` units) in the cell its `dimensions` name. With `value`,
    each row is a contributor to a magnitude table; rows that stand for more than one unit
    mean the contributions are not known one by one, so the dominance rules cannot run.
    With `denominator`, the table is a rate table (count per `denominator`). Categories
    keep the order given, else the order they first appear in.
    """
    dimensions = tuple(dimensions)
    statistic = statistic or ("rate" if denominator else "sum" if value else "count")
    _check_columns(records, dimensions, count, value, statistic, denominator)
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
    if value:
        values = _numbers(records, value, "value")
        present = ~np.isnan(values)
        for name, data in (("total", np.where(present, values, 0.0)), ("negative", (values < 0) * 1.0)):
            inner = np.zeros(inner_shape)
            np.add.at(inner, tuple(codes), data)
            fields[name] = extend_sum(inner)
        inner = np.zeros(inner_shape)
        np.add.at(inner, tuple(codes), (~present) * units)
        fields["missing"] = extend_sum(inner).astype(np.int64)
        fields["negative"] = fields["negative"].astype(np.int64)
        fields["top"] = _largest(codes, values, inner_shape, max(top_n, 2))
        fields["contributors_known"] = count is None or bool((units <= 1).all())
    if denominator:
        d = _numbers(records, denominator, "denominator")
        inner = np.zeros(inner_shape)
        np.add.at(inner, tuple(codes), d)
        fields["denominator"] = extend_sum(inner)

    frame = pd.DataFrame({f"__c{a}": c for a, c in enumerate(codes)})
    if value:
        frame["__v"] = _numbers(records, value, "value")
    value_array = _statistic(statistic, ext_count, fields, frame, inner_shape)
    return Table(
        dimensions=dimensions,
        categories=categories,
        statistic=statistic,
        count=ext_count,
        value=value_array,
        **fields,
    )


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
    top = np.full(ext_shape + (m,), np.nan)
    present = ~np.isnan(values)
    vals = values[present]
    cs = [c[present] for c in codes]
    for pattern in total_patterns(len(inner_shape)):
        idx = tuple(np.full(len(vals), inner_shape[a]) if t else cs[a] for a, t in enumerate(pattern))
        flat = np.ravel_multi_index(idx, ext_shape) if idx else np.zeros(len(vals), dtype=np.int64)
        order = np.lexsort((-vals, flat))
        flat_sorted, vals_sorted = flat[order], vals[order]
        starts = np.r_[0, np.flatnonzero(np.diff(flat_sorted)) + 1]
        group_start = np.repeat(starts, np.diff(np.r_[starts, len(flat_sorted)]))
        rank = np.arange(len(flat_sorted)) - group_start
        keep = rank < m
        top.reshape(-1, m)[flat_sorted[keep], rank[keep]] = vals_sorted[keep]
    return top


def category_label(value) -> str:
    """A category as the text it is shown and matched by (1.0 -> '1', missing -> '(missing)')."""
    if value is None or (isinstance(value, float) and np.isnan(value)) or value is pd.NA:
        return "(missing)"
    if isinstance(value, float) and value.is_integer():
        return str(int(value))
    return str(value)


def _numbers(records: pd.DataFrame, column: str, what: str) -> np.ndarray:
    converted = pd.to_numeric(records[column], errors="coerce")
    bad = converted.isna() & records[column].notna() & (records[column].astype(str).str.strip() != "")
    if bad.any():
        raise TableError(f"{what} column {column!r} has {int(bad.sum())} value(s) that are not numbers")
    return converted.to_numpy(dtype=float)


def _check_columns(records, dimensions, count, value, statistic, denominator) -> None:
    problems = []
    if not dimensions:
        problems.append("a table needs at least one dimension")
    if len(dimensions) > MAX_DIMENSIONS:
        problems.append(
            f"{len(dimensions)} dimensions ({', '.join(dimensions)}): at most {MAX_DIMENSIONS} are supported; "
            "merge categories or split the table"
        )
    for column in (*dimensions, count, value, denominator):
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
