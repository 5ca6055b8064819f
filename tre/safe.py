"""The researchers' safe-analysis API: `import tre.safe as safe` in a project's kernel.

ACRO-compatible calls (`crosstab`, `pivot_table`, `ols`, `logit`, `hist`, `custom_output`,
`finalise`) that compute the result, check it with `tre.output_check`, protect it (primary
and secondary suppression by default), and queue it with its check report in the project's
`requests/queue/<output-name>/` for review. Each returns the (possibly protected) result and
shows its status: printed when made, and above the table when a notebook displays it.

The kernel has no metadata store: the project comes from the environment the TRE starts the
server with, `TRE_PROJECT_DIR` (the project folder) and `TRE_PROJECT` (its id). The threshold
is the project's, decided centrally: written with the extract (`data/manifest.json`) and set
by the hub as `TRE_OUTPUT_THRESHOLD`; neither the environment nor an argument can lower it
below the manifest's. `Session` takes them as arguments, for scripts and tests.
"""

from __future__ import annotations

import functools
import html
import inspect
import io
import json
import math
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from tre.db import utc_now
from tre.errors import UserError
from tre.output_check import Check, OutputKind, build_table, build_table_report, load_parameters
from tre.output_check.assessments import build_regression_report
from tre.output_check.notebooks import build_file_report, table_fingerprint
from tre.output_check.queue import Queued, list_queue, next_output_name, queue_dir, write_queued_output
from tre.output_check.reports import Report
from tre.output_check.sources import read_pseudonyms, read_released_tables, write_published_table
from tre.output_check.tables import category_label

AGGFUNCS = {None: "count", "count": "count", "size": "count", "sum": "sum", "mean": "mean", "median": "median",
            "min": "min", "max": "max", "std": "std", "var": "var"}  # fmt: skip


class SafeError(UserError):
    """A safe call that cannot be made as asked."""


class Session:
    """One project's safe-analysis session: where outputs queue, with which parameters."""

    def __init__(
        self,
        project_dir: Path | str,
        project: str,
        *,
        threshold: int | None = None,
        method: str = "suppress",
        clock: Callable = utc_now,
        out=None,
    ):
        self.project_dir = Path(project_dir)
        self.project = project
        self.params = load_parameters(threshold=effective_threshold(self.project_dir, threshold))
        self.method = method
        self.clock = clock
        self.out = out  # where status lines go (default: stdout)
        self._pseudonyms: frozenset[str] | None = None

    # --- what the checks need from the project ----------------------------------------

    @property
    def queue(self) -> Path:
        return queue_dir(self.project_dir)

    def pseudonyms(self) -> frozenset[str]:
        """The extract's pseudonyms, for leak detection (read once per session)."""
        if self._pseudonyms is None:
            path = self.project_dir / "data" / "extract.duckdb"
            self._pseudonyms = read_pseudonyms(path) if path.is_file() else frozenset()
        return self._pseudonyms

    def released(self):
        """The project's released count tables, and the released files not compared (with why)."""
        return read_released_tables(self.project_dir / "released")

    # --- tables -------------------------------------------------------------------------

    def crosstab(
        self,
        index,
        columns,
        values=None,
        rownames=None,
        colnames=None,
        aggfunc=None,
        margins: bool = False,
        margins_name: str = "All",
        dropna: bool = True,
        normalize=False,
        *,
        name: str | None = None,
        method: str | None = None,
    ) -> pd.DataFrame:
        """A cross tabulation (counts, or `aggfunc` of `values`), checked, protected and queued."""
        if normalize:
            raise SafeError("normalize is not supported: compute shares from the protected table this returns")
        rows = _as_series_list(index, rownames, "row")
        cols = _as_series_list(columns, colnames, "col")
        records = pd.concat([s.reset_index(drop=True) for s in rows + cols], axis=1)
        value_name = None
        if values is not None:
            if aggfunc is None:
                raise SafeError("values need an aggfunc (e.g. aggfunc='mean')")
            value_name = "__value"
            records[value_name] = pd.Series(np.asarray(values)).reset_index(drop=True)
        elif aggfunc not in (None, "count", "size"):
            raise SafeError(f"aggfunc={aggfunc!r} needs values")
        dims = [str(s.name) for s in rows + cols]
        arguments = {"index": dims[: len(rows)], "columns": dims[len(rows) :], "aggfunc": aggfunc, "margins": margins}
        options = {"margins": margins, "margins_name": margins_name, "dropna": dropna, "name": name, "method": method}
        return self._table("crosstab", records, dims, len(rows), value_name, aggfunc, arguments, **options)

    def pivot_table(
        self,
        data: pd.DataFrame,
        values=None,
        index=None,
        columns=None,
        aggfunc="mean",
        fill_value=None,
        margins: bool = False,
        dropna: bool = True,
        margins_name: str = "All",
        observed: bool = False,
        sort: bool = True,
        *,
        name: str | None = None,
        method: str | None = None,
    ) -> pd.DataFrame:
        """A spreadsheet-style pivot table of one `values` column, checked, protected and queued."""
        if values is None:
            raise SafeError("pivot_table needs a values column to report statistics about")
        if isinstance(values, list):
            if len(values) != 1:
                raise SafeError("pivot_table takes one values column at a time")
            values = values[0]
        if not isinstance(aggfunc, str):
            raise SafeError("pivot_table takes one aggfunc, given by name (e.g. 'mean', 'sum', 'count')")
        index = [] if index is None else list(index) if isinstance(index, list | tuple) else [index]
        columns = [] if columns is None else list(columns) if isinstance(columns, list | tuple) else [columns]
        if not index:
            raise SafeError("pivot_table needs an index")
        missing = [c for c in [*index, *columns, values] if c not in data.columns]
        if missing:
            raise SafeError(f"no column(s) {', '.join(map(str, missing))} in the data")
        dims = [str(c) for c in index + columns]
        records = data[index + columns].copy()
        records.columns = dims
        records["__value"] = data[values].to_numpy()
        arguments = {
            "values": str(values),
            "index": dims[: len(index)],
            "columns": dims[len(index) :],
            "aggfunc": aggfunc,
            "margins": margins,
        }
        options = {"margins": margins, "margins_name": margins_name, "dropna": dropna, "name": name, "method": method}
        return self._table("pivot_table", records, dims, len(index), "__value", aggfunc, arguments, **options)

    def _table(
        self, call, records, dims, n_rows, value, aggfunc, arguments, *, margins, margins_name, dropna, name, method
    ):
        statistic = AGGFUNCS.get(aggfunc if isinstance(aggfunc, str) or aggfunc is None else "?")
        if statistic is None:
            raise SafeError(f"aggfunc {aggfunc!r} is not supported; one of {', '.join(k for k in AGGFUNCS if k)}")
        if statistic == "count":
            value = None
        if dropna:
            records = records.dropna(subset=dims)
        categories = [_sorted_categories(records[d]) for d in dims]
        table = build_table(
            records, dims, value=value, statistic=statistic, categories=categories, top_n=self.params.nk_n
        )
        method = method or self.method
        released, skipped = self.released()
        report = build_table_report(
            table,
            self.params,
            method=method,
            released=released,
            pseudonyms=self.pseudonyms(),
            inputs=[],
            now=self.clock(),
        )
        report.details["released_not_compared"] = skipped
        data = report.as_dict()
        frame = _wide_frame(
            data,
            dims,
            n_rows,
            margins,
            margins_name,
            categories,
            arguments.get("values") or "count",
            counts=statistic == "count",
        )
        name = name or next_output_name(self.queue)
        value_column = "count" if statistic == "count" else statistic
        files = {
            "table.csv": lambda p: frame.to_csv(p),
            "cells.csv": lambda p: write_published_table(data, "cells", value_column, p.parent),
        }
        queued = self._queue(name, report, files, call, arguments, shown=frame)
        self._mark(frame, queued, report)
        return frame

    # --- regressions --------------------------------------------------------------------

    def ols(self, endog, exog=None, missing: str = "none", hasconst=None, *, name: str | None = None):
        """Ordinary least squares (statsmodels OLS), fitted, checked and queued; returns the results."""
        import statsmodels.api as sm

        results = sm.OLS(endog, exog, missing=missing, hasconst=hasconst).fit()
        return self._regression("ols", results, name)

    def logit(self, endog, exog=None, missing: str = "none", *, name: str | None = None):
        """Logistic regression (statsmodels Logit), fitted, checked and queued; returns the results."""
        import statsmodels.api as sm

        results = sm.Logit(endog, exog, missing=missing).fit(disp=0)
        return self._regression("logit", results, name)

    def _regression(self, call, results, name):
        conf = results.conf_int()
        coefficients = pd.DataFrame(
            {
                "coef": results.params,
                "std err": results.bse,
                "z" if call == "logit" else "t": results.tvalues,
                "P>|z|" if call == "logit" else "P>|t|": results.pvalues,
                "[0.025": conf.iloc[:, 0],
                "0.975]": conf.iloc[:, 1],
            }
        )
        report = build_regression_report(
            coefficients,
            residual_dof=float(results.df_resid),
            observations=int(results.nobs),
            params=self.params,
            pseudonyms=self.pseudonyms(),
            now=self.clock(),
        )
        name = name or next_output_name(self.queue)
        summary = results.summary().as_text()
        files = {
            "coefficients.csv": lambda p: coefficients.to_csv(p),
            "summary.txt": lambda p: p.write_text(summary + "\n", encoding="utf-8"),
        }
        arguments = {
            "dependent": str(results.model.endog_names),
            "independent": [str(x) for x in results.model.exog_names],
            "observations": int(results.nobs),
            "residual_dof": float(results.df_resid),
        }
        queued = self._queue(name, report, files, call, arguments)
        results.tre_output = queued.name
        results.tre_status = str(report.status)
        return results

    # --- figures ------------------------------------------------------------------------

    def hist(
        self, data: pd.DataFrame, column: str, bins=10, range=None, *, title: str | None = None, name: str | None = None
    ):
        """A histogram of `column`, drawn from its checked and protected bin counts.

        Without `range` or explicit bin edges, the edges are widened to round numbers so they
        do not give away the smallest and largest value.
        """
        if column not in data.columns:
            raise SafeError(f"no column {column!r} in the data")
        values = pd.to_numeric(data[column], errors="coerce").dropna().to_numpy(dtype=float)
        if values.size == 0:
            raise SafeError(f"column {column!r} has no numbers to draw")
        widened = False
        if np.ndim(bins) == 0 and range is None:
            edges = _round_edges(values.min(), values.max(), int(bins))
            widened = True
        else:
            _, edges = np.histogram(values, bins=bins, range=range)
        counts, edges = np.histogram(values, bins=edges)
        labels = [
            f"[{_fmt(a)}, {_fmt(b)}{']' if i == len(counts) - 1 else ')'}"
            for i, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True))
        ]
        outside = int(values.size - counts.sum())
        records = pd.DataFrame({column: labels, "n": counts})
        table = build_table(records, [column], count="n", categories=[labels])
        report = build_table_report(
            table,
            self.params,
            method=self.method,
            pseudonyms=self.pseudonyms(),
            kind=OutputKind.FIGURE,
            now=self.clock(),
        )
        report.details["bins"] = [_fmt(e) for e in edges]
        if widened:
            report.details["remedies"] = [
                "bin edges widened to round numbers so they do not reveal the minimum or maximum"
            ]
        if outside:
            report.details["outside_range"] = "some values fall outside the bins"
        data_ = report.as_dict()
        published = [c["published"] for c in data_["cells"] if c["key"][column] != "Total"]
        frame = _as_counts(pd.DataFrame({"bin": labels, "count": published}).set_index("bin"))
        png = _draw_histogram(edges, published, column, title)
        name = name or next_output_name(self.queue)
        files = {
            "figure.png": lambda p: p.write_bytes(png),
            "histogram.csv": lambda p: frame.to_csv(p),
            "table.csv": lambda p: frame.to_csv(p),
            "cells.csv": lambda p: write_published_table(data_, "cells", "count", p.parent),
        }
        arguments = {"column": column, "bins": [_fmt(e) for e in edges], "widened": widened}
        queued = self._queue(name, report, files, "hist", arguments, shown=frame)
        self._mark(frame, queued, report)
        return SafeFigure(queued.name, str(report.status), frame, png, queued.path / "figure.png")

    # --- anything else ------------------------------------------------------------------

    def custom_output(self, filename: str | Path, comment: str = "", *, name: str | None = None) -> bool:
        """Queue a file the API did not make (checked for leaks; a person checks the rest)."""
        path = Path(filename)
        if not path.is_file():
            raise SafeError(f"no such file: {filename}")
        report = build_file_report(path, self.params, self.pseudonyms(), now=self.clock())
        report.details["comment"] = comment
        name = name or next_output_name(self.queue)
        files = {path.name: lambda p: shutil.copyfile(path, p)}
        self._queue(name, report, files, "custom_output", {"filename": path.name, "comment": comment})
        return True

    def finalise(self) -> pd.DataFrame:
        """What is queued for review: one row per output, with its status."""
        rows = [
            {
                "output": m["name"],
                "kind": m["kind"],
                "status": m["status"],
                "created_at": m["created_at"],
                "summary": m["summary"],
            }
            for m in list_queue(self.queue)
        ]
        frame = pd.DataFrame(rows, columns=["output", "kind", "status", "created_at", "summary"])
        counts = frame["status"].value_counts().to_dict() if len(frame) else {}
        shown = ", ".join(f"{n} {s}" for s, n in sorted(counts.items())) or "nothing"
        self._print(f"tre.safe: {len(frame)} output(s) queued for review in {self.queue} ({shown})")
        return frame

    # --- plumbing -----------------------------------------------------------------------

    def _queue(self, name, report: Report, files, call, arguments, shown: pd.DataFrame | None = None) -> Queued:
        arguments = {**arguments, "code": _caller_code(), "cell": _caller_cell()}
        extra = {"shown_fingerprint": table_fingerprint(shown)} if shown is not None else None
        queued = write_queued_output(
            self.queue,
            name,
            kind=report.kind,
            report=report,
            files=files,
            call=call,
            arguments=arguments,
            project=self.project,
            now=self.clock(),
            title=f"{call} {name}",
            extra=extra,
        )
        self._say(queued, call, report)
        return queued

    def _mark(self, frame: pd.DataFrame, queued: Queued, report: Report) -> None:
        frame.attrs["tre_output"] = queued.name
        frame.attrs["tre_status"] = str(report.status)
        frame.attrs["tre_report"] = str(queued.path / "report.html")

    def _say(self, queued: Queued, call: str, report: Report) -> None:
        where = f"requests/queue/{queued.name}"
        if queued.unchanged:
            self._print(f"tre.safe: {queued.name} ({call}) is already queued with the same results: nothing new queued")
            return
        if queued.replaces:
            self._print(
                f"tre.safe: WARNING: an output named {queued.replaces} is already queued with different results; "
                f"this one is queued as {queued.name} (delete the folder requests/queue/<name> you do not want)"
            )
        self._print(f"tre.safe: {queued.name} ({call}) {report.summary()} -- queued for review as {where}")
        advice = protection_advice(report)
        if advice:
            self._print(f"tre.safe: {advice}")
        self._print(f"tre.safe: the check report: {where}/report.html")

    def _print(self, line: str) -> None:
        print(line, file=self.out or sys.stdout)


class SafeFigure:
    """A figure made by `hist`: the image, the checked table it was drawn from, and the status."""

    def __init__(self, name: str, status: str, table: pd.DataFrame, png: bytes, path: Path):
        self.name, self.status, self.table, self.png, self.path = name, status, table, png, path

    def __repr__(self) -> str:
        return f"<SafeFigure {self.name}: {self.status}, {self.path}>"

    def _repr_mimebundle_(self, include=None, exclude=None):
        # the table travels with the image, so a notebook check sees what the figure shows
        return {"image/png": self.png, "text/html": status_html(self.table), "text/plain": repr(self)}


HIDDEN = "hidden"  # how a protected table shows a suppressed cell


def status_html(frame: pd.DataFrame) -> str:
    """A safe table's HTML with its status above it and a link to its check report, marked so
    a notebook check can find it; hidden cells show as `hidden`."""
    name, status = frame.attrs.get("tre_output"), frame.attrs.get("tre_status")
    # (to_html's na_rep does not reach pandas' <NA> of nullable integers: mark by hand)
    table_html = frame.astype(object).where(frame.notna(), HIDDEN).to_html()
    if not name:
        return table_html
    colour = {"pass": "#2e7d32", "protected": "#1565c0", "fail": "#c62828", "review": "#ef6c00"}.get(status, "#555")
    report = frame.attrs.get("tre_report")
    link = ""
    if report:
        # Relative to the kernel's working folder (the notebook's): JupyterLab opens it in a tab.
        href = os.path.relpath(report, os.getcwd())
        link = f' &middot; <a href="{html.escape(href)}" target="_blank">check report</a>'
    hidden = int(frame.isna().sum().sum())
    note = f" &middot; {hidden} cell(s) {HIDDEN} to protect people" if hidden else ""
    return (
        f'<div data-tre-output="{html.escape(name)}"><p>tre.safe output <code>{html.escape(name)}</code>: '
        f'<b style="color:{colour}">{html.escape(str(status))}</b> (queued for review){note}{link}</p>'
        f"{table_html}</div>"
    )


_REASONS = {
    Check.MINIMUM_THRESHOLD: "too small",
    Check.NK: "dominated by a few contributors",
    Check.P_PERCENT: "dominated by a few contributors",
    Check.DIFFERENCING: "would give away a small group by difference with a released table",
    Check.CLASS_DISCLOSURE: "would tell everything about a group",
}


def protection_advice(report: Report, shown: int = 4) -> str:
    """Which cells were too small (or dominated), which were hidden to protect them, and what
    would help: for the researcher, in words."""
    cells = report.cells
    primary = [c for c in cells if c["status"] == "primary" and c["published"] is None]
    secondary = [c for c in cells if c["status"] == "secondary"]
    if not primary and not secondary:
        return ""

    def names(group):
        listed = "; ".join(", ".join(f"{d}={v}" for d, v in c["key"].items()) for c in group[:shown])
        return listed + (f"; and {len(group) - shown} more" if len(group) > shown else "")

    parts = []
    by_reason: dict[str, list] = {}
    for c in primary:
        reason = next((_REASONS[Check(x)] for x in c["checks"] if x in _REASONS), "failing a check")
        by_reason.setdefault(reason, []).append(c)
    for reason, group in by_reason.items():
        parts.append(f"{len(group)} cell(s) hidden as {reason} ({names(group)})")
    if secondary:
        parts.append(f"{len(secondary)} more hidden to protect them ({names(secondary)})")
    return (
        "; ".join(parts)
        + ". To show more: merge small categories (method='merge'), or use coarser bands (wider age groups, "
        "regions instead of municipalities, years instead of months)"
    )


def _register_display() -> None:
    """In IPython, show every safe table with its status (other DataFrames as usual)."""
    try:
        from IPython import get_ipython
    except ImportError:
        return
    shell = get_ipython()
    if shell is None:
        return
    formatter = shell.display_formatter.formatters["text/html"]

    def show(frame):
        return status_html(frame) if frame.attrs.get("tre_output") else frame._repr_html_()

    formatter.for_type(pd.DataFrame, show)


def _as_series_list(axis, names, prefix) -> list[pd.Series]:
    if isinstance(axis, pd.DataFrame):
        items = [axis[c] for c in axis.columns]
    elif isinstance(axis, list | tuple) and axis and not np.isscalar(axis[0]):
        items = [s if isinstance(s, pd.Series) else pd.Series(s) for s in axis]
    else:
        items = [axis if isinstance(axis, pd.Series) else pd.Series(axis)]
    out = []
    for i, s in enumerate(items):
        label = names[i] if names is not None and i < len(names) else s.name if s.name is not None else f"{prefix}_{i}"
        out.append(s.rename(str(label)))
    return out


def _sorted_categories(series: pd.Series) -> list[str]:
    if isinstance(series.dtype, pd.CategoricalDtype):
        return [str(c) for c in series.cat.categories]
    values = pd.unique(series.dropna())
    try:
        values = sorted(values)
    except TypeError:
        values = sorted(values, key=str)
    return [category_label(v) for v in values]


def _wide_frame(data, dims, n_rows, margins, margins_name, categories, label, counts=False) -> pd.DataFrame:
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
    return _as_counts(wide) if counts else _whole_numbers(wide)


def _as_counts(frame: pd.DataFrame) -> pd.DataFrame:
    """Counts stay whole numbers; a hidden cell is missing (pandas' <NA>), not a float NaN."""
    return frame.astype("Int64")


def _whole_numbers(frame: pd.DataFrame) -> pd.DataFrame:
    values = frame.to_numpy(dtype=float, na_value=np.nan)
    if not np.isnan(values).any() and np.allclose(values, np.round(values)):
        return frame.astype("int64")
    return frame


def _round_edges(low: float, high: float, bins: int) -> np.ndarray:
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


def _fmt(x: float) -> str:
    return f"{x:g}"


def _draw_histogram(edges, published, column, title) -> bytes:
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


def _caller_code() -> str | None:
    """The line of the researcher's code that made the call (for the reviewers)."""
    for frame in inspect.stack()[3:8]:
        if frame.filename != __file__ and frame.code_context:
            return frame.code_context[0].strip()
    return None


MAX_CELL = 20_000  # characters of the notebook cell kept for the reviewers


def _caller_cell() -> str | None:
    """The whole notebook cell that made the call, when it runs in IPython (for the reviewers:
    the code around the call shows how the data were prepared). IPython keeps each cell's
    source in linecache under a name that is no file; a script's lines are not taken."""
    import linecache

    for frame in inspect.stack()[3:8]:
        if frame.filename == __file__:
            continue
        entry = linecache.cache.get(frame.filename)
        if entry is None or entry[1] is not None or os.path.exists(frame.filename):
            return None  # a file on disk (mtime known): a script, not a cell
        return "".join(entry[2])[:MAX_CELL] or None
    return None


# --- the module-level, ACRO-style calls ------------------------------------------------------


def session() -> Session:
    """The session of this kernel's project, from TRE_PROJECT_DIR and TRE_PROJECT."""
    project_dir = os.environ.get("TRE_PROJECT_DIR")
    project = os.environ.get("TRE_PROJECT")
    if not project_dir or not project:
        raise SafeError(
            "tre.safe needs TRE_PROJECT_DIR and TRE_PROJECT (the TRE sets them when it starts your server); "
            "outside the TRE, use tre.safe.Session(project_dir, project)"
        )
    threshold = os.environ.get("TRE_OUTPUT_THRESHOLD", "").strip()
    if threshold and not (threshold.isdigit() and int(threshold) >= 1):
        raise SafeError(f"TRE_OUTPUT_THRESHOLD must be a whole number above 0, got {threshold[:20]!r}")
    return _session_for(project_dir, project, int(threshold) if threshold else None)


def central_threshold(project_dir: Path) -> int | None:
    """The project's threshold as the TRE decided it centrally, written with its extract into
    `data/manifest.json` (read-only for the project); None without one."""
    try:
        manifest = json.loads((Path(project_dir) / "data" / "manifest.json").read_text(encoding="utf-8"))
        value = manifest["disclosure"]["threshold"]
    except (OSError, ValueError, KeyError, TypeError):
        return None
    return value if isinstance(value, int) and not isinstance(value, bool) and value >= 1 else None


def effective_threshold(project_dir: Path, asked: int | None) -> int | None:
    """The threshold a session checks with: the central one, or a stricter one asked for (by
    the environment the server was started with, or a script); never a lower one."""
    central = central_threshold(project_dir)
    if central is None:
        return asked
    return max(central, asked or 0)


@functools.cache
def _session_for(project_dir: str, project: str, threshold: int | None) -> Session:
    _register_display()
    return Session(project_dir, project, threshold=threshold)


def crosstab(index, columns, values=None, rownames=None, colnames=None, aggfunc=None, margins=False, margins_name="All",
             dropna=True, normalize=False, *, name=None, method=None) -> pd.DataFrame:  # fmt: skip
    return session().crosstab(
        index,
        columns,
        values,
        rownames,
        colnames,
        aggfunc,
        margins,
        margins_name,
        dropna,
        normalize,
        name=name,
        method=method,
    )


def pivot_table(data, values=None, index=None, columns=None, aggfunc="mean", fill_value=None, margins=False, dropna=True,
                margins_name="All", observed=False, sort=True, *, name=None, method=None) -> pd.DataFrame:  # fmt: skip
    return session().pivot_table(
        data,
        values,
        index,
        columns,
        aggfunc,
        fill_value,
        margins,
        dropna,
        margins_name,
        observed,
        sort,
        name=name,
        method=method,
    )


def ols(endog, exog=None, missing="none", hasconst=None, *, name=None):
    return session().ols(endog, exog, missing, hasconst, name=name)


def logit(endog, exog=None, missing="none", *, name=None):
    return session().logit(endog, exog, missing, name=name)


def hist(data, column, bins=10, range=None, *, title=None, name=None) -> SafeFigure:
    return session().hist(data, column, bins, range, title=title, name=name)


def custom_output(filename, comment="", *, name=None) -> bool:
    return session().custom_output(filename, comment, name=name)


def finalise() -> pd.DataFrame:
    return session().finalise()


crosstab.__doc__ = Session.crosstab.__doc__
pivot_table.__doc__ = Session.pivot_table.__doc__
ols.__doc__ = Session.ols.__doc__
logit.__doc__ = Session.logit.__doc__
hist.__doc__ = Session.hist.__doc__
custom_output.__doc__ = Session.custom_output.__doc__
finalise.__doc__ = Session.finalise.__doc__

__all__ = ["Session", "SafeError", "SafeFigure", "crosstab", "custom_output", "finalise", "hist", "logit", "ols",
           "pivot_table", "session", "status_html"]  # fmt: skip
