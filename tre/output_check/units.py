"""Units: which person (or other declared unit) each record of a researcher's data belongs to.

The checks count and weigh *units*, not records: a cell of six contacts of one patient is one
person. `tre.safe` therefore needs, for every record it tabulates, its unit:

- an explicit `unit=` (a Series aligned with the data, or a column name of the data);
- a unit column in the data frame given (`pivot_table(data)`, `hist(data)`): a column the
  extract declares as a unit column (`pseudonym`; `data/manifest.json` lists them per table),
  or any column whose values are all the project's pseudonyms;
- for Series (`crosstab(cohort.age_group, cohort.sex)`, regressions), the rows' labels: every
  frame that `tre.connect()` returns with a unit column gets row labels from a range of its own
  (from `LABEL_BASE` up, far from the 0, 1, 2 ... that `reset_index`, `merge` or a new frame
  give), and the registry maps each label back to its unit. A filter, sort, `pd.cut` or new
  column keeps the labels, so the units follow the rows; an operation that makes new labels
  loses them, and the call then counts records and goes to review, saying why.

The registry lives in the kernel (one per process); nothing here reads central data.
"""

from __future__ import annotations

import json
import sys
import threading
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd

DEFAULT_UNIT_COLUMNS = ("pseudonym",)
LABEL_BASE = 10**12  # the first row label given to a frame with units
LABEL_BLOCK = 10**10  # labels per frame (a frame of more rows takes several blocks)
PANDAS_RESULTS = ("df", "fetchdf", "fetch_df", "to_df")


@dataclass(frozen=True)
class Units:
    """The unit of every record, as codes into `names` (-1: a record without a unit)."""

    codes: np.ndarray
    names: np.ndarray  # the distinct unit identifiers (pseudonyms), as text
    how: str  # how they were found, for the report: "unit=", "column pseudonym", "row labels"

    def __len__(self) -> int:
        return len(self.codes)

    def values(self) -> np.ndarray:
        """The unit of every record as text (None where unknown)."""
        out = np.empty(len(self.codes), dtype=object)
        known = self.codes >= 0
        out[known] = self.names[self.codes[known]]
        out[~known] = None
        return out

    def take(self, positions: np.ndarray) -> Units:
        return Units(self.codes[positions], self.names, self.how)


def units_from_values(values: Iterable, how: str) -> Units:
    """Units from one identifier per record (None/NaN: unknown)."""
    series = pd.Series(list(values) if not isinstance(values, pd.Series | np.ndarray) else values, dtype=object)
    missing = series.isna().to_numpy()
    codes, names = pd.factorize(series.where(~missing).astype(str).where(~missing), use_na_sentinel=True)
    codes = np.asarray(codes, dtype=np.int64)
    return Units(codes, np.asarray(names, dtype=object), how)


class LabelRegistry:
    """Row labels -> units, for the frames `tre.connect()` returned (one registry per kernel)."""

    def __init__(self):
        self._starts: list[int] = []
        self._blocks: list[np.ndarray] = []
        self._next = LABEL_BASE
        self._lock = threading.Lock()

    def register(self, units: np.ndarray) -> pd.RangeIndex:
        """Labels for `len(units)` rows, each mapped to its unit (text)."""
        units = np.asarray(units, dtype=object)
        blocks = max(1, -(-len(units) // LABEL_BLOCK))
        with self._lock:
            start = self._next
            self._next += blocks * LABEL_BLOCK
            self._starts.append(start)
            self._blocks.append(units)
        return pd.RangeIndex(start, start + len(units))

    def lookup(self, labels: pd.Index) -> np.ndarray | None:
        """The unit of every label, or None when any label is not one this registry gave."""
        if not self._starts or len(labels) == 0 or not pd.api.types.is_integer_dtype(labels.dtype):
            return None
        values = np.asarray(labels, dtype=np.int64)
        starts = np.asarray(self._starts, dtype=np.int64)
        block = np.searchsorted(starts, values, side="right") - 1
        if (block < 0).any():
            return None
        offset = values - starts[block]
        sizes = np.array([len(b) for b in self._blocks], dtype=np.int64)
        if (offset >= sizes[block]).any():
            return None
        out = np.empty(len(values), dtype=object)
        for b in np.unique(block):
            where = block == b
            out[where] = self._blocks[int(b)][offset[where]]
        return out


REGISTRY = LabelRegistry()


def declared_unit_columns(manifest: Path) -> tuple[str, ...]:
    """The unit columns an extract declares (its manifest's `units`: table -> column), and
    `pseudonym` always; a missing or unreadable manifest declares only `pseudonym`."""
    names = list(DEFAULT_UNIT_COLUMNS)
    try:
        declared = json.loads(Path(manifest).read_text(encoding="utf-8")).get("units") or {}
    except (OSError, ValueError, AttributeError):
        declared = {}
    values = declared.values() if isinstance(declared, dict) else declared if isinstance(declared, list) else []
    for value in values:
        if isinstance(value, str) and value and value not in names:
            names.append(value)
    return tuple(names)


def find_unit_column(frame: pd.DataFrame, declared: Sequence[str], pseudonyms: frozenset[str]) -> str | None:
    """The frame's unit column: a declared unit column, else a column of the project's pseudonyms."""
    for name in declared:
        if name in frame.columns and frame[name].notna().any():
            return name
    if not pseudonyms or frame.empty:
        return None
    for name in frame.columns:
        column = frame[name]
        if column.dtype.kind not in "OSU" and not isinstance(column.dtype, pd.StringDtype):
            continue
        present = column.dropna()
        if present.empty or str(present.iloc[0]) not in pseudonyms:
            continue
        if present.astype(str).isin(pseudonyms).all():
            return str(name)
    return None


def resolve_units(
    index: pd.Index,
    registry: LabelRegistry,
    pseudonyms: frozenset[str],
) -> Units | None:
    """The units of rows with these labels: registered labels, or labels that are pseudonyms."""
    found = registry.lookup(index)
    if found is not None:
        return units_from_values(found, "row labels from tre.connect()")
    if pseudonyms and len(index) and index.dtype.kind in "OSU":
        labels = pd.Series(index.astype(str))
        if labels.isin(pseudonyms).all():
            return units_from_values(labels.to_numpy(dtype=object), "row labels (pseudonyms)")
    return None


# --- the connection tre.connect() gives a kernel ---------------------------------------------


class TracedConnection:
    """A DuckDB connection (or relation) whose pandas results carry their rows' units.

    Everything is passed through to DuckDB. A call is made from a frame that sees the caller's
    variables, so DuckDB still finds the data frames a query names (`select * from cohort`).
    """

    def __init__(self, inner, tracer: Tracer):
        object.__setattr__(self, "_inner", inner)
        object.__setattr__(self, "_tracer", tracer)

    def __getattr__(self, name):
        attr = getattr(self._inner, name)
        if not callable(attr):
            return attr
        tracer = self._tracer

        def call(*args, **kwargs):
            args = tuple(_unwrap(a) for a in args)
            kwargs = {k: _unwrap(v) for k, v in kwargs.items()}
            result = _call_as_caller(attr, args, kwargs, sys._getframe(1))
            if name in PANDAS_RESULTS and isinstance(result, pd.DataFrame):
                return tracer.annotate(result)
            return tracer.wrap(result, self)

        call.__name__ = name
        call.__doc__ = getattr(attr, "__doc__", None)
        return call

    def __setattr__(self, name, value):
        setattr(self._inner, name, value)

    def __dir__(self):
        return dir(self._inner)

    def __repr__(self):
        return repr(self._inner)

    def __str__(self):
        return str(self._inner)

    def __len__(self):
        return len(self._inner)

    def __iter__(self):
        return iter(self._inner)

    def __getitem__(self, key):
        return self._tracer.wrap(self._inner[_unwrap(key)], self)

    def __enter__(self):
        self._inner.__enter__()
        return self

    def __exit__(self, *exc):
        return self._inner.__exit__(*exc)

    def _repr_html_(self):
        method = getattr(self._inner, "_repr_html_", None)
        return method() if method else None


class Tracer:
    """Gives frames with a unit column their registered row labels."""

    def __init__(
        self,
        registry: LabelRegistry,
        declared: Sequence[str],
        pseudonyms: Callable[[], frozenset[str]],
        raw_types: tuple[type, ...],
    ):
        self.registry = registry
        self.declared = tuple(declared)
        self._pseudonyms = pseudonyms
        self._cache: frozenset[str] | None = None
        self.raw_types = raw_types  # what DuckDB returns that should stay traced

    def pseudonyms(self) -> frozenset[str]:
        if self._cache is None:
            self._cache = self._pseudonyms()
        return self._cache

    def wrap(self, result, parent: TracedConnection):
        if result is parent._inner:
            return parent
        if isinstance(result, self.raw_types):
            return TracedConnection(result, self)
        return result

    def annotate(self, frame: pd.DataFrame) -> pd.DataFrame:
        column = find_unit_column(frame, self.declared, frozenset())
        if column is None and any(frame[c].dtype.kind == "O" for c in frame.columns):
            column = find_unit_column(frame, (), self.pseudonyms())
        if column is None:
            return frame
        units = frame[column].to_numpy(dtype=object)
        frame.index = self.registry.register(units)
        frame.attrs["tre_unit_column"] = column
        return frame


def _unwrap(value):
    return object.__getattribute__(value, "_inner") if isinstance(value, TracedConnection) else value


def _call_as_caller(function, args, kwargs, caller):
    """`function(*args, **kwargs)` run in a frame with the caller's globals and locals: DuckDB
    looks up the data frames a query names in the frame that calls it."""
    namespace = dict(caller.f_locals)
    namespace.update(__tre_function=function, __tre_args=args, __tre_kwargs=kwargs)
    return eval("__tre_function(*__tre_args, **__tre_kwargs)", caller.f_globals, namespace)  # noqa: S307
