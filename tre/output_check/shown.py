"""What `tre.safe` shows and publishes, built the same way in the kernel and centrally.

The kernel builds the table a researcher sees (`table.csv`), the histogram's bins and its
figure from the checked report; the central recompute builds them again from the output's
evidence and compares, byte for byte, so an output whose published files are not what the
central check publishes fails.
"""

from __future__ import annotations

import io
import math

import numpy as np
import pandas as pd

from tre.output_check.tables import category_label


def sorted_categories(series: pd.Series) -> list[str]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        return [str(c) for c in series.cat.categories]
    values = pd.unique(series.dropna())
    try:
        values = sorted(values)
    except TypeError:
        values = sorted(values, key=str)
    return [category_label(v) for v in values]


def build_wide_frame(data, dims, n_rows, margins, margins_name, categories, label, counts=False) -> pd.DataFrame:
    """The published cells as pandas shows a crosstab: rows by the index dimensions."""
    cells = [c for c in data["cells"] if c["status"] != "merged"]
    total = "Total"
    rows = []
    for c in cells:
        key = [c["key"][d] for d in dims]
        if not margins and total in key:
            continue
        rows.append([margins_name if k == total else k for k in key] + [c["published"]])
    frame = pd.DataFrame(rows, columns=[*dims, "__published"])
    frame["__published"] = pd.to_numeric(frame["__published"])
    order = [list(cats) + ([margins_name] if margins else []) for cats in categories]
    for d, cats in zip(dims, order, strict=True):
        frame[d] = pd.Categorical(frame[d], categories=cats, ordered=True)
    row_dims, col_dims = dims[:n_rows], dims[n_rows:]
    if not col_dims:
        wide = frame.set_index(row_dims)["__published"].sort_index().to_frame(label)
    else:
        wide = frame.pivot_table(
            index=row_dims,
            columns=col_dims,
            values="__published",
            aggfunc="first",
            observed=True,
            dropna=False,
            sort=True,
        )
    wide.index = wide.index.astype(str) if not isinstance(wide.index, pd.MultiIndex) else wide.index
    if isinstance(wide.columns, pd.CategoricalIndex):
        wide.columns = wide.columns.astype(str)
    wide.columns.name = col_dims[0] if len(col_dims) == 1 else wide.columns.name
    if len(row_dims) == 1:
        wide.index.name = row_dims[0]
    return as_counts(wide) if counts else _whole_numbers(wide)


def as_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Counts stay whole numbers; a hidden cell is missing (pandas' <NA>), not a float NaN."""
    return frame.astype("Int64")


def _whole_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    values = frame.to_numpy(dtype=float, na_value=np.nan)
    if not np.isnan(values).any() and np.allclose(values, np.round(values)):
        return frame.astype("int64")
    return frame


def round_edges(low: float, high: float, bins: int) -> np.ndarray:
    """`bins` equal bins whose edges are round numbers covering [low, high]: the smallest
    round width (1, 2, 2.5 or 5 times a power of ten) that reaches from below `low` past `high`."""
    bins = max(1, bins)
    span = max(high - low, 1e-9)
    power = 10 ** math.floor(math.log10(span / bins))
    for width in (power * f for f in (1, 2, 2.5, 5, 10, 20, 25, 50, 100)):
        start = math.floor(low / width) * width
        if start + width * bins > high:
            return start + width * np.arange(bins + 1)
    raise AssertionError("no round bin width found")  # 100 x power x bins always covers the span


def fmt(x: float) -> str:
    return f"{x:g}"


def draw_histogram(edges, published, column, title) -> bytes:
    from matplotlib.figure import Figure

    figure = Figure(figsize=(6, 4), dpi=100)
    ax = figure.subplots()
    widths = np.diff(edges)
    heights = [0 if v is None else v for v in published]
    ax.bar(edges[:-1], heights, width=widths, align="edge", edgecolor="black", color="#4c72b0")
    for left, width, value in zip(edges[:-1], widths, published, strict=True):
        if value is None:
            ax.bar(left, 0, width=width, align="edge")
            ax.annotate("suppressed", (left + width / 2, 0), ha="center", va="bottom", rotation=90, fontsize=8)
    ax.set_xlabel(column)
    ax.set_ylabel("count")
    if title:
        ax.set_title(title)
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png")
    return buffer.getvalue()
