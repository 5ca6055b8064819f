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
import json
import os
import shutil
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pandas as pd

from tre.db import utc_now
from tre.errors import UserError
from tre.output_check import Check
from tre.output_check.ledger import LedgerTable
from tre.output_check.ledger_store import mirror_dir, read_ledger
from tre.output_check.notebooks import build_file_report, table_fingerprint
from tre.output_check.outputs import (
    UNIT,
    VALUE,
    EvidenceError,
    Made,
    X,
    Y,
    build_hist_output,
    build_regression_output,
    build_table_output,
    evidence_files,
)
from tre.output_check.parameters import load_parameters
from tre.output_check.queue import Queued, list_queue, next_output_name, queue_dir, write_queued_output
from tre.output_check.reports import Report
from tre.output_check.shown import fmt, sorted_categories
from tre.output_check.sources import read_pseudonyms, read_released_tables
from tre.output_check.tables import category_label
from tre.output_check.units import (
    REGISTRY,
    LabelRegistry,
    declared_unit_columns,
    find_unit_column,
    resolve_units,
    units_from_values,
)

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
        registry: LabelRegistry = REGISTRY,
    ):
        self.project_dir = Path(project_dir)
        self.project = project
        self.params = load_parameters(threshold=effective_threshold(self.project_dir, threshold))
        self.method = method
        self.clock = clock
        self.out = out  # where status lines go (default: stdout)
        self.registry = registry  # row labels -> units of the frames tre.connect() returned
        self._pseudonyms: frozenset[str] | None = None

    # --- what the checks need from the project ----------------------------------------

    @property
    def queue(self) -> Path:
        return queue_dir(self.project_dir)

    def pseudonyms(self) -> frozenset[str]:
        """The extract's pseudonyms, for leak detection and units (read once per session)."""
        if self._pseudonyms is None:
            path = self.project_dir / "data" / "extract.duckdb"
            self._pseudonyms = read_pseudonyms(path) if path.is_file() else frozenset()
        return self._pseudonyms

    def unit_columns(self) -> tuple[str, ...]:
        """The columns the extract declares as units (data/manifest.json), `pseudonym` always."""
        return declared_unit_columns(self.project_dir / "data" / "manifest.json")

    def ledger(self) -> list[LedgerTable]:
        """The project's release ledger, as the release copied it into released/.ledger/."""
        return read_ledger(mirror_dir(self.project_dir))

    def released(self, ledger: list[LedgerTable] | None = None):
        """The project's released count tables the ledger does not hold (compared value by
        value), and the released files not compared (with why)."""
        tables, skipped = read_released_tables(self.project_dir / "released")
        known = {t.name for t in (self.ledger() if ledger is None else ledger) if t.audited}
        return [t for t in tables if t.name not in known], skipped

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
        unit=None,
        structural_zeros=None,
    ) -> pd.DataFrame:
        """A cross tabulation (counts, or `aggfunc` of `values`), checked, protected and queued.

        Cells count persons, not records: each record's person is found from the rows' labels
        (frames from `tre.connect()` carry them) or given as `unit=` (a Series or array, one per
        record). `structural_zeros` lists cells empty by definition, e.g.
        `[{"sex": "M", "pregnant": "yes"}]`: they are not class disclosure and never suppressed.
        """
        if normalize:
            raise SafeError("normalize is not supported: compute shares from the protected table this returns")
        rows = _as_series_list(index, rownames, "row")
        cols = _as_series_list(columns, colnames, "col")
        if len({len(s) for s in rows + cols}) > 1:
            raise SafeError("index and columns must have the same length (one value per record)")
        records = pd.concat([s.reset_index(drop=True) for s in rows + cols], axis=1)
        value_name = None
        if values is not None:
            if aggfunc is None:
                raise SafeError("values need an aggfunc (e.g. aggfunc='mean')")
            value_name = VALUE
            records[value_name] = pd.Series(np.asarray(values)).reset_index(drop=True)
        elif aggfunc not in (None, "count", "size"):
            raise SafeError(f"aggfunc={aggfunc!r} needs values")
        units, unknown = self._units(unit, len(records), index=rows[0].index, others=[s.index for s in rows + cols])
        dims = [str(s.name) for s in rows + cols]
        arguments = {"index": dims[: len(rows)], "columns": dims[len(rows) :], "aggfunc": aggfunc, "margins": margins}
        options = {"margins": margins, "margins_name": margins_name, "dropna": dropna, "name": name, "method": method}
        return self._table(
            "crosstab", records, dims, len(rows), value_name, aggfunc, arguments, units, unknown,
            structural_zeros=structural_zeros, label=None, **options,
        )  # fmt: skip

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
        unit=None,
        structural_zeros=None,
    ) -> pd.DataFrame:
        """A spreadsheet-style pivot table of one `values` column, checked, protected and queued.

        Persons are counted and weighed by the data's unit column (`pseudonym`, or `unit=`, a
        column name or a Series); `structural_zeros` as for `crosstab`.
        """
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
        records = data[index + columns].copy().reset_index(drop=True)
        records.columns = dims
        records[VALUE] = data[values].to_numpy()
        units, unknown = self._units(unit, len(records), data=data)
        arguments = {
            "values": str(values),
            "index": dims[: len(index)],
            "columns": dims[len(index) :],
            "aggfunc": aggfunc,
            "margins": margins,
        }
        options = {"margins": margins, "margins_name": margins_name, "dropna": dropna, "name": name, "method": method}
        return self._table(
            "pivot_table", records, dims, len(index), VALUE, aggfunc, arguments, units, unknown,
            structural_zeros=structural_zeros, label=str(values), **options,
        )  # fmt: skip

    def _table(
        self, call, records, dims, n_rows, value, aggfunc, arguments, units, unknown, *, margins, margins_name,
        dropna, name, method, structural_zeros, label,
    ):  # fmt: skip
        statistic = AGGFUNCS.get(aggfunc if isinstance(aggfunc, str) or aggfunc is None else "?")
        if statistic is None:
            raise SafeError(f"aggfunc {aggfunc!r} is not supported; one of {', '.join(k for k in AGGFUNCS if k)}")
        if any(d.startswith("__") for d in dims):
            raise SafeError("dimension names starting with '__' are reserved: rename the column")
        keep = records[dims].notna().all(axis=1).to_numpy() if dropna else np.ones(len(records), dtype=bool)
        records = records[keep]
        categories = [sorted_categories(records[d]) for d in dims]
        evidence = pd.DataFrame({d: records[d].map(category_label).to_numpy(dtype=object) for d in dims})
        if statistic != "count":
            evidence[VALUE] = pd.to_numeric(records[value], errors="coerce").to_numpy(dtype=float)
        if units is not None:
            evidence[UNIT] = units.values()[keep]
        spec = {
            "call": call,
            "dimensions": dims,
            "n_rows": n_rows,
            "categories": categories,
            "statistic": statistic,
            "unit": units is not None,
            "units_how": units.how if units is not None else None,
            "units_unknown": unknown,
            "method": method or self.method,
            "margins": bool(margins),
            "margins_name": str(margins_name),
            "label": label or "count",
            "structural_zeros": _structural_zeros(structural_zeros),
        }
        ledger = self.ledger()
        released, skipped = self.released(ledger)
        try:
            made = build_table_output(
                evidence, spec, self.params, ledger=ledger, released=released, pseudonyms=self.pseudonyms(),
                now=self.clock(),
            )  # fmt: skip
        except EvidenceError as e:
            raise SafeError(str(e).replace("the evidence does not make its table: ", "")) from None
        made.report.details["released_not_compared"] = skipped
        name = name or next_output_name(self.queue)
        queued = self._queue(name, made, evidence, spec, call, arguments)
        frame = made.frame
        self._mark(frame, queued, made.report)
        return frame

    # --- regressions --------------------------------------------------------------------

    def ols(self, endog, exog=None, missing: str = "none", hasconst=None, *, name: str | None = None, unit=None):
        """Ordinary least squares (statsmodels OLS), fitted, checked and queued; returns the results.

        Every dummy (and interaction, and the reference level of a categorical) needs
        enough persons on both sides; persons come from the rows' labels or `unit=`.
        """
        return self._regression("ols", endog, exog, missing, hasconst, name, unit)

    def logit(self, endog, exog=None, missing: str = "none", *, name: str | None = None, unit=None):
        """Logistic regression (statsmodels Logit), fitted, checked and queued; returns the results."""
        return self._regression("logit", endog, exog, missing, None, name, unit)

    def _regression(self, call, endog, exog, missing, hasconst, name, unit):
        if exog is None:
            raise SafeError(f"{call} needs exog (the regressors; add a constant with sm.add_constant)")
        exog_frame = exog if isinstance(exog, pd.DataFrame) else pd.DataFrame(np.asarray(exog))
        if isinstance(exog, pd.Series):
            exog_frame = exog.to_frame()
        endog_series = endog if isinstance(endog, pd.Series) else pd.Series(np.asarray(endog).ravel())
        if len(endog_series) != len(exog_frame):
            raise SafeError("endog and exog must have one row per observation each")
        names = [str(c) for c in exog_frame.columns]
        records = pd.DataFrame({Y: pd.to_numeric(endog_series, errors="coerce").to_numpy(dtype=float)})
        for i, column in enumerate(exog_frame.columns):
            records[f"x{i}"] = pd.to_numeric(exog_frame[column], errors="coerce").to_numpy(dtype=float)
        units, unknown = self._units(unit, len(records), index=exog_frame.index, others=[endog_series.index])
        if units is not None:
            records[UNIT] = units.values()
        spec = {
            "call": call,
            "dependent": str(endog_series.name) if endog_series.name is not None else "y",
            "independent": names,
            "missing": missing,
            "hasconst": hasconst,
            "unit": units is not None,
            "units_how": units.how if units is not None else None,
            "units_unknown": unknown,
        }
        try:
            made = build_regression_output(
                records, spec, self.params, pseudonyms=self.pseudonyms(), index=exog_frame.index, now=self.clock()
            )
        except EvidenceError as e:
            raise SafeError(str(e)) from None
        results = made.results
        name = name or next_output_name(self.queue)
        arguments = {
            "dependent": spec["dependent"],
            "independent": names,
            "observations": int(results.nobs),
            "residual_dof": float(results.df_resid),
        }
        queued = self._queue(name, made, records, spec, call, arguments)
        results.tre_output = queued.name
        results.tre_status = str(made.report.status)
        return results

    # --- figures ------------------------------------------------------------------------

    def hist(
        self,
        data: pd.DataFrame,
        column: str,
        bins=10,
        range=None,
        *,
        title: str | None = None,
        name: str | None = None,
        unit=None,
    ):
        """A histogram of `column`, drawn from its checked and protected bin counts (of persons).

        Without `range` or explicit bin edges, the edges are widened to round numbers so they
        do not give away the smallest and largest value.
        """
        if column not in data.columns:
            raise SafeError(f"no column {column!r} in the data")
        records = pd.DataFrame({X: pd.to_numeric(data[column], errors="coerce").to_numpy(dtype=float)})
        if records[X].notna().sum() == 0:
            raise SafeError(f"column {column!r} has no numbers to draw")
        units, unknown = self._units(unit, len(records), data=data)
        if units is not None:
            records[UNIT] = units.values()
        spec = {
            "call": "hist",
            "column": str(column),
            "bins": bins if np.ndim(bins) == 0 else [float(b) for b in bins],
            "range": None if range is None else [float(r) for r in range],
            "title": title,
            "unit": units is not None,
            "units_how": units.how if units is not None else None,
            "units_unknown": unknown,
            "method": self.method,
        }
        made = build_hist_output(records, spec, self.params, pseudonyms=self.pseudonyms(), now=self.clock())
        name = name or next_output_name(self.queue)
        edges = made.extra["edges"]
        arguments = {"column": column, "bins": [fmt(e) for e in edges], "widened": made.extra["widened"]}
        queued = self._queue(name, made, records, spec, "hist", arguments)
        frame = made.frame
        self._mark(frame, queued, made.report)
        return SafeFigure(queued.name, str(made.report.status), frame, made.extra["png"], queued.path / "figure.png")

    # --- anything else ------------------------------------------------------------------

    def custom_output(self, filename: str | Path, comment: str = "", *, name: str | None = None) -> bool:
        """Queue a file the API did not make: checked for leaks and the statistics it holds
        (minima, percentiles, means without their n, ...); a person checks the rest."""
        path = Path(filename)
        if not path.is_file():
            raise SafeError(f"no such file: {filename}")
        report = build_file_report(path, self.params, self.pseudonyms(), now=self.clock())
        report.details["comment"] = comment
        name = name or next_output_name(self.queue)
        files = {path.name: lambda p: shutil.copyfile(path, p)}
        arguments = {"filename": path.name, "comment": comment, "code": _caller_code(), "cell": _caller_cell()}
        queued = write_queued_output(
            self.queue, name, kind=report.kind, report=report, files=files, call="custom_output",
            arguments=arguments, project=self.project, now=self.clock(), title=f"custom_output {name}",
        )  # fmt: skip
        self._say(queued, "custom_output", report)
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

    def _units(self, unit, n: int, *, data: pd.DataFrame | None = None, index=None, others=()):
        """The unit of each of `n` records, or (None, why not) in a project with persons."""
        if unit is not None:
            if isinstance(unit, str):
                if data is None or unit not in data.columns:
                    raise SafeError(f"unit={unit!r}: give a column of the data, or a Series with one unit per record")
                values = data[unit].to_numpy(dtype=object)
            else:
                values = np.asarray(unit, dtype=object).ravel()
            if len(values) != n:
                raise SafeError(f"unit= has {len(values)} values for {n} records: give one unit per record")
            return units_from_values(values, "unit="), None
        pseudonyms = self.pseudonyms()
        if data is not None:
            column = find_unit_column(data, self.unit_columns(), pseudonyms)
            if column is not None:
                return units_from_values(data[column].to_numpy(dtype=object), f"column {column}"), None
            index = data.index
        if index is not None and all(len(o) == len(index) and o.equals(index) for o in others):
            found = resolve_units(index, self.registry, pseudonyms)
            if found is not None:
                return found, None
        if not pseudonyms:
            return None, None  # no persons in this project's data: records are what is counted
        return None, (
            "the persons behind these records are not known (the rows have no pseudonym column and no row "
            "labels from tre.connect()), so records were counted and a cell may be one person's records; "
            "pass unit=<the pseudonym column>"
        )

    def _queue(self, name, made: Made, records: pd.DataFrame, spec: dict, call, arguments) -> Queued:
        arguments = {**arguments, "code": _caller_code(), "cell": _caller_cell()}
        extra = {"shown_fingerprint": table_fingerprint(made.frame)} if made.frame is not None else None
        contents = {**made.files, **evidence_files(records, spec)}
        files = {filename: (lambda p, data=data: p.write_bytes(data)) for filename, data in contents.items()}
        queued = write_queued_output(
            self.queue,
            name,
            kind=made.report.kind,
            report=made.report,
            files=files,
            call=call,
            arguments=arguments,
            project=self.project,
            now=self.clock(),
            title=f"{call} {name}",
            extra=extra,
        )
        self._say(queued, call, made.report)
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


def _structural_zeros(declared) -> list[dict]:
    """Structural zeros as a list of {dimension: category} (labels as text)."""
    if declared is None:
        return []
    if isinstance(declared, dict):
        declared = [declared]
    out = []
    for zero in declared:
        if not isinstance(zero, dict) or not zero:
            raise SafeError("structural_zeros: give cells as dicts of dimension -> category, e.g. [{'sex': 'M'}]")
        out.append({str(k): category_label(v) for k, v in zero.items()})
    return out


def _caller_code() -> str | None:
    """The line of the researcher's code that made the call (for the reviewers)."""
    for frame in inspect.stack()[1:12]:
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
             dropna=True, normalize=False, *, name=None, method=None, unit=None,
             structural_zeros=None) -> pd.DataFrame:  # fmt: skip
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
        unit=unit,
        structural_zeros=structural_zeros,
    )


def pivot_table(data, values=None, index=None, columns=None, aggfunc="mean", fill_value=None, margins=False, dropna=True,
                margins_name="All", observed=False, sort=True, *, name=None, method=None, unit=None,
                structural_zeros=None) -> pd.DataFrame:  # fmt: skip
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
        unit=unit,
        structural_zeros=structural_zeros,
    )


def ols(endog, exog=None, missing="none", hasconst=None, *, name=None, unit=None):
    return session().ols(endog, exog, missing, hasconst, name=name, unit=unit)


def logit(endog, exog=None, missing="none", *, name=None, unit=None):
    return session().logit(endog, exog, missing, name=name, unit=unit)


def hist(data, column, bins=10, range=None, *, title=None, name=None, unit=None) -> SafeFigure:
    return session().hist(data, column, bins, range, title=title, name=name, unit=unit)


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
