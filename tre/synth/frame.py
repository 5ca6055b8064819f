"""A chunk of one delivery before it becomes an Arrow table, and the helpers that draw events.

A `Frame` keeps columns in the cheapest form to make and to change: numbers and day numbers
as numpy arrays, strings as codes into a label list (`Codes`), ID numbers as indices into the
population's IDs (`Ids`), record ids as running numbers (`Keys`). The dirt module edits frames;
`to_table` turns one into the contract's Arrow types.
"""

from __future__ import annotations

from dataclasses import dataclass, field

import numpy as np
import pyarrow as pa
import pyarrow.compute as pc

from tre.registers import Source

NULL_DAY = np.iinfo(np.int64).min  # a missing DATE / TIMESTAMP

ARROW_TYPES = {
    "VARCHAR": pa.string(),
    "DATE": pa.date32(),
    "TIMESTAMP": pa.timestamp("s"),
    "INTEGER": pa.int32(),
    "DOUBLE": pa.float64(),
    "BOOLEAN": pa.bool_(),
}


def arrow_schema(source: Source) -> pa.Schema:
    """The Arrow schema of a source's deliveries, in the contract's column order."""
    return pa.schema([pa.field(c.name, ARROW_TYPES[c.type], nullable=not c.required) for c in source.columns])


@dataclass
class Codes:
    """Strings as codes into `labels`; -1 is null."""

    codes: np.ndarray
    labels: pa.Array

    @classmethod
    def of(cls, codes, labels) -> Codes:
        return cls(np.asarray(codes), labels if isinstance(labels, pa.Array) else pa.array(list(labels), pa.string()))


@dataclass
class Ids:
    """ID numbers as indices into the population's IDs, with some replaced by other strings."""

    index: np.ndarray
    replaced_rows: np.ndarray = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    replaced_values: list = field(default_factory=list)


@dataclass
class Keys:
    """Record ids: a prefix and a running number, zero-padded."""

    prefix: str
    numbers: np.ndarray
    width: int = 10


@dataclass
class Days:
    """DATE values as day numbers; NULL_DAY is null."""

    values: np.ndarray


@dataclass
class Seconds:
    """TIMESTAMP values as seconds since 1970; NULL_DAY is null."""

    values: np.ndarray


@dataclass
class Frame:
    """Rows of one delivery chunk. `person` says whose row each is (for dirt)."""

    columns: dict
    person: np.ndarray

    def __len__(self) -> int:
        return len(self.person)

    def take(self, rows: np.ndarray) -> Frame:
        return Frame({k: _take(v, rows) for k, v in self.columns.items()}, self.person[rows])

    def append(self, other: Frame) -> Frame:
        return Frame(
            {k: _concat(v, other.columns[k]) for k, v in self.columns.items()}, np.r_[self.person, other.person]
        )


def _take(column, rows):
    if isinstance(column, Codes):
        return Codes(column.codes[rows], column.labels)
    if isinstance(column, Ids):
        if len(column.replaced_rows):
            raise ValueError("take the rows before replacing ID numbers")
        return Ids(column.index[rows])
    if isinstance(column, Keys):
        return Keys(column.prefix, column.numbers[rows], column.width)
    if isinstance(column, Days | Seconds):
        return type(column)(column.values[rows])
    return column[rows]


def _concat(first, second):
    if isinstance(first, Codes):
        return Codes(np.r_[first.codes, second.codes], first.labels)
    if isinstance(first, Ids):
        return Ids(np.r_[first.index, second.index])
    if isinstance(first, Keys):
        return Keys(first.prefix, np.r_[first.numbers, second.numbers], first.width)
    if isinstance(first, Days | Seconds):
        return type(first)(np.r_[first.values, second.values])
    return np.r_[first, second]


def to_table(frame: Frame, source: Source, ids: pa.StringArray) -> pa.Table:
    """The frame as an Arrow table typed as the contract says, columns in contract order."""
    if set(frame.columns) != set(source.column_names):
        raise AssertionError(f"{source.name}: frame columns differ from the contract")
    arrays = [_arrow(frame.columns[c.name], ARROW_TYPES[c.type], ids) for c in source.columns]
    return pa.Table.from_arrays(arrays, schema=arrow_schema(source))


def _arrow(column, type_: pa.DataType, ids: pa.StringArray) -> pa.Array:
    if isinstance(column, Codes):
        indices = pa.array(column.codes.astype(np.int32), mask=column.codes < 0)
        return pa.DictionaryArray.from_arrays(indices, column.labels).cast(pa.string())
    if isinstance(column, Ids):
        values = ids.take(pa.array(column.index, type=pa.int64()))
        if len(column.replaced_rows):
            order = np.argsort(column.replaced_rows)
            mask = np.zeros(len(column.index), dtype=bool)
            mask[column.replaced_rows] = True
            replacements = pa.array([column.replaced_values[i] for i in order], pa.string())
            values = pc.replace_with_mask(values, pa.array(mask), replacements)
        return values
    if isinstance(column, Keys):
        digits = pc.utf8_lpad(pc.cast(pa.array(column.numbers, type=pa.int64()), pa.string()), column.width, "0")
        return pc.binary_join_element_wise(column.prefix, digits, "")
    if isinstance(column, Days):
        return pa.array(column.values.astype(np.int32), mask=column.values == NULL_DAY).view(pa.date32())
    if isinstance(column, Seconds):
        return pa.array(column.values.astype(np.int64), mask=column.values == NULL_DAY).view(pa.timestamp("s"))
    values = np.asarray(column)
    if pa.types.is_integer(type_):
        if values.dtype.kind == "f":
            return pa.array(np.nan_to_num(values).astype(np.int32), mask=np.isnan(values))
        return pa.array(values.astype(np.int32))
    if pa.types.is_floating(type_):
        return pa.array(values.astype(np.float64), mask=np.isnan(values))
    return pa.array(values, type=type_)


# --- drawing events -----------------------------------------------------------------------


def expand(person: np.ndarray, counts: np.ndarray) -> np.ndarray:
    """Each person repeated by their count: one entry per event."""
    return np.repeat(person, counts)


def uniform_days(rng: np.random.Generator, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """A day drawn uniformly between first and last (inclusive) for each row."""
    return first + np.floor(rng.random(len(first)) * (last - first + 1)).astype(np.int64)


def weekday(days: np.ndarray) -> np.ndarray:
    """0 = Monday ... 6 = Sunday (1 January 1970 was a Thursday)."""
    return (days + 3) % 7


def office_days(days: np.ndarray, first: np.ndarray, last: np.ndarray) -> np.ndarray:
    """Move weekend days to the Friday before, or the Monday after when Friday is too early."""
    wd = weekday(days)
    back = np.where(wd == 5, 1, np.where(wd == 6, 2, 0))
    forward = np.where(wd == 5, 2, np.where(wd == 6, 1, 0))
    moved = np.where(days - back >= first, days - back, np.where(days + forward <= last, days + forward, days))
    return moved


def draw(rng: np.random.Generator, weights: np.ndarray, group: np.ndarray) -> np.ndarray:
    """One category per row, with the weights of the row's group: `weights` is (groups, categories)."""
    cumulative = np.cumsum(np.asarray(weights, dtype=float), axis=1)
    cumulative /= np.where(cumulative[:, -1:] > 0, cumulative[:, -1:], 1)
    u = rng.random(len(group))
    result = np.zeros(len(group), dtype=np.int64)
    for g in np.unique(group):
        rows = np.flatnonzero(group == g)
        result[rows] = np.searchsorted(cumulative[g], u[rows], side="right")
    return np.minimum(result, cumulative.shape[1] - 1)


def draw_n(rng: np.random.Generator, weights, n: int) -> np.ndarray:
    """`n` categories drawn with the same weights."""
    cumulative = np.cumsum(np.asarray(weights, dtype=float))
    cumulative /= cumulative[-1]
    return np.minimum(np.searchsorted(cumulative, rng.random(n), side="right"), len(cumulative) - 1)
