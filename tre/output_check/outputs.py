"""Outputs made from evidence: one function per kind, run by the kernel and again centrally.

`tre.safe` turns a researcher's call into *evidence* (the records the output is computed
from, with each record's unit, and a spec: the call's arguments) and builds the output from
it with these functions: the check report, the published files, what the researcher gets
back. The central side (`central.build_central_report`) runs the same functions on the same
evidence with the project's central parameters and the release ledger, and compares the
files: anything the kernel publishes that the central check does not is a failure.

Evidence, in the queued output directory (central-only: it never leaves, it is never shown):

    evidence.parquet   the records: one column per dimension (labels as text), `__value`
                       (the value summed or averaged; a histogram's `__x`; a regression's
                       `__y` and `x0`, `x1`, ...), `__unit` (the record's unit: a pseudonym)
    evidence.json      tre-evidence/1: the call and its arguments (see the `build_*` below)
"""

from __future__ import annotations

import datetime as dt
import io
import json
import re
from collections.abc import Sequence
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from tre.errors import UserError
from tre.output_check.assessments import build_regression_report, build_table_report
from tre.output_check.differencing import PublishedTable
from tre.output_check.kinds import OutputKind
from tre.output_check.ledger import LedgerTable
from tre.output_check.parameters import Parameters
from tre.output_check.reports import Report
from tre.output_check.shown import as_counts, build_wide_frame, draw_histogram, fmt, round_edges
from tre.output_check.sources import build_published_frame, build_sidecar_bytes
from tre.output_check.tables import build_table, category_label

EVIDENCE_FORMAT = "tre-evidence/1"
EVIDENCE_RECORDS = "evidence.parquet"
EVIDENCE_SPEC = "evidence.json"
UNIT = "__unit"
VALUE = "__value"
X = "__x"
Y = "__y"
TABLE_CALLS = ("crosstab", "pivot_table")
REGRESSION_CALLS = ("ols", "logit")
_VOLATILE = re.compile(r"^(Date:|Time:).*$", re.MULTILINE)


class EvidenceError(UserError):
    """Evidence that cannot be read or does not fit its spec."""


@dataclass
class Made:
    """An output built from its evidence."""

    report: Report
    files: dict[str, bytes]  # the published files, by name
    frame: pd.DataFrame | None = None  # what the researcher gets back (tables, histograms)
    results: object = None  # statsmodels results (regressions)
    extra: dict = field(default_factory=dict)


def evidence_files(records: pd.DataFrame, spec: dict) -> dict[str, bytes]:
    """The evidence files of an output: its records as Parquet, its spec as JSON."""
    buffer = io.BytesIO()
    records.reset_index(drop=True).to_parquet(buffer, index=False)
    spec = {"format": EVIDENCE_FORMAT, **spec}
    return {
        EVIDENCE_RECORDS: buffer.getvalue(),
        EVIDENCE_SPEC: (json.dumps(spec, indent=2, ensure_ascii=False, default=str) + "\n").encode("utf-8"),
    }


def read_evidence(records: bytes, spec: bytes) -> tuple[pd.DataFrame, dict]:
    """Evidence back from its files; raises EvidenceError for anything malformed."""
    try:
        meta = json.loads(spec.decode("utf-8"))
        frame = pd.read_parquet(io.BytesIO(records))
    except Exception as e:  # a hostile or broken file: say what, never crash
        raise EvidenceError(f"the evidence cannot be read ({e.__class__.__name__})") from None
    if not isinstance(meta, dict) or meta.get("format") != EVIDENCE_FORMAT:
        raise EvidenceError(f"the evidence is not {EVIDENCE_FORMAT}")
    return frame, meta


# --- tables -------------------------------------------------------------------------------


def build_table_output(
    records: pd.DataFrame,
    spec: dict,
    params: Parameters,
    *,
    ledger: Sequence[LedgerTable] = (),
    released: Sequence[PublishedTable] = (),
    pseudonyms: frozenset[str] = frozenset(),
    now: dt.datetime | None = None,
) -> Made:
    """A crosstab or pivot table: checked against the ledger, protected, its files built.

    spec: dimensions, n_rows (how many are the index), categories, statistic, value (column
    or null), unit (column or null), units_unknown (why units are not known, or null),
    method, margins, margins_name, label (the value's name), structural_zeros.
    """
    dims = [str(d) for d in _field(spec, "dimensions", list)]
    categories = [[str(c) for c in cats] for cats in _field(spec, "categories", list)]
    if len(categories) != len(dims):
        raise EvidenceError("the evidence names categories for another number of dimensions")
    statistic = str(_field(spec, "statistic", str))
    unit = UNIT if spec.get("unit") else None
    value = VALUE if statistic != "count" else None
    try:
        table = build_table(
            records,
            dims,
            value=value,
            statistic=statistic,
            categories=categories,
            top_n=params.nk_n,
            unit=unit,
            structural_zeros=[dict(z) for z in spec.get("structural_zeros") or []],
        )
    except UserError as e:
        raise EvidenceError(f"the evidence does not make its table: {e}") from None
    report = build_table_report(
        table,
        params,
        method=spec.get("method") or "suppress",
        released=released,
        ledger=ledger,
        pseudonyms=pseudonyms,
        units_unknown=spec.get("units_unknown"),
        now=now,
    )
    data = report.as_dict()
    n_rows = int(_field(spec, "n_rows", int))
    label = str(spec.get("label") or "count")
    frame = build_wide_frame(
        data, dims, n_rows, bool(spec.get("margins")), str(spec.get("margins_name", "All")), categories, label,
        counts=statistic == "count",
    )  # fmt: skip
    value_column = "count" if statistic == "count" else statistic
    files = {"table.csv": frame.to_csv().encode("utf-8"), **published_table_files(data, "cells", value_column)}
    return Made(report, files, frame=frame, extra={"table": table})


def person_table_output(
    people: pd.DataFrame,
    dims: Sequence[str],
    params: Parameters,
    *,
    unit: str = "pseudonym",
    value: str | None = None,
    statistic: str | None = None,
    method: str = "suppress",
    structural_zeros: Sequence = (),
    ledger: Sequence[LedgerTable] = (),
) -> Made:
    """A table with margins of person-level rows (one column per dimension, `unit`, `value`
    for sums and means), made from the evidence `tre.safe` would record for it: what the
    ledger benchmark and the ledger's tests release and audit."""
    evidence = pd.DataFrame({d: people[d].map(category_label).to_numpy(dtype=object) for d in dims})
    if value:
        evidence[VALUE] = people[value].to_numpy(dtype=float)
    evidence[UNIT] = people[unit].to_numpy(dtype=object)
    spec = {
        "call": "pivot_table" if value else "crosstab",
        "dimensions": list(dims),
        "n_rows": 1,
        "categories": [sorted(evidence[d].unique()) for d in dims],
        "statistic": statistic or ("sum" if value else "count"),
        "unit": True,
        "method": method,
        "margins": True,
        "margins_name": "All",
        "label": value or "count",
        "structural_zeros": list(structural_zeros),
    }
    return build_table_output(evidence, spec, params, ledger=ledger)


def published_table_files(report: dict, name: str, value_column: str) -> dict[str, bytes]:
    """`name`.csv (the published table in the released layout) and its sidecar, as bytes."""
    text = build_published_frame(report, value_column).to_csv(index=False).encode("utf-8")
    return {f"{name}.csv": text, f"{name}.csv.json": build_sidecar_bytes(report, name, value_column, text)}


# --- histograms -----------------------------------------------------------------------------


def build_hist_output(
    records: pd.DataFrame,
    spec: dict,
    params: Parameters,
    *,
    pseudonyms: frozenset[str] = frozenset(),
    now: dt.datetime | None = None,
) -> Made:
    """A histogram drawn from its checked and protected bin counts.

    spec: column, bins (a number or edges), range (or null), title, unit, units_unknown, method.
    Without a range or edges, the edges are widened to round numbers so they do not give
    away the smallest and largest value.
    """
    column = str(_field(spec, "column", str))
    values = pd.to_numeric(records[X], errors="coerce").to_numpy(dtype=float)
    keep = ~np.isnan(values)
    values = values[keep]
    if values.size == 0:
        raise EvidenceError(f"column {column!r} has no numbers to draw")
    bins, range_ = spec.get("bins", 10), spec.get("range")
    widened = False
    if np.ndim(bins) == 0 and range_ is None:
        edges = round_edges(values.min(), values.max(), int(bins))
        widened = True
    else:
        _, edges = np.histogram(values, bins=bins, range=None if range_ is None else tuple(range_))
    counts, edges = np.histogram(values, bins=edges)
    labels = [
        f"[{fmt(a)}, {fmt(b)}{']' if i == len(counts) - 1 else ')'}"
        for i, (a, b) in enumerate(zip(edges[:-1], edges[1:], strict=True))
    ]
    where = np.searchsorted(edges, values, side="right") - 1
    where[values == edges[-1]] = len(counts) - 1
    inside = (where >= 0) & (where < len(counts))
    binned = pd.DataFrame({column: np.asarray(labels, dtype=object)[where[inside]]})
    unit = None
    if spec.get("unit"):
        binned[UNIT] = records[UNIT].to_numpy()[keep][inside]
        unit = UNIT
    table = build_table(binned, [column], categories=[labels], unit=unit)
    report = build_table_report(
        table,
        params,
        method=spec.get("method") or "suppress",
        pseudonyms=pseudonyms,
        kind=OutputKind.FIGURE,
        units_unknown=spec.get("units_unknown"),
        now=now,
    )
    report.details["bins"] = [fmt(e) for e in edges]
    if widened:
        report.details["remedies"] = ["bin edges widened to round numbers so they do not reveal the minimum or maximum"]
    if not inside.all():
        report.details["outside_range"] = "some values fall outside the bins"
    data = report.as_dict()
    published = [c["published"] for c in data["cells"] if c["key"][column] != "Total"]
    frame = as_counts(pd.DataFrame({"bin": labels, "count": published}).set_index("bin"))
    png = draw_histogram(edges, published, column, spec.get("title"))
    text = frame.to_csv().encode("utf-8")
    files = {
        "figure.png": png,
        "histogram.csv": text,
        "table.csv": text,
        **published_table_files(data, "cells", "count"),
    }
    return Made(report, files, frame=frame, extra={"edges": edges, "widened": widened, "png": png, "table": table})


# --- regressions ----------------------------------------------------------------------------


def build_regression_output(
    records: pd.DataFrame,
    spec: dict,
    params: Parameters,
    *,
    pseudonyms: frozenset[str] = frozenset(),
    index: pd.Index | None = None,
    now: dt.datetime | None = None,
) -> Made:
    """An OLS or logit model fitted from its evidence, checked, its files built.

    spec: call (ols, logit), dependent (name), independent (names, in the order of x0, x1,
    ...), missing, hasconst, unit, units_unknown. `index` gives the fitted model the rows'
    labels (the kernel's, so the researcher's results keep them).
    """
    import statsmodels.api as sm

    call = spec.get("call")
    if call not in REGRESSION_CALLS:
        raise EvidenceError(f"the evidence is of a {call!r}, not a regression")
    names = [str(n) for n in _field(spec, "independent", list)]
    columns = [f"x{i}" for i in range(len(names))]
    missing = [c for c in (Y, *columns) if c not in records.columns]
    if missing:
        raise EvidenceError(f"the evidence has no column(s) {', '.join(missing)}")
    exog = records[columns].astype(float).set_axis(names, axis=1)
    endog = records[Y].astype(float).rename(str(spec.get("dependent") or "y"))
    if index is not None and len(index) == len(records):
        exog.index = index
        endog.index = index
    units = records[UNIT].to_numpy() if spec.get("unit") and UNIT in records.columns else None
    mode = str(spec.get("missing") or "none")
    try:
        if call == "ols":
            results = sm.OLS(endog, exog, missing=mode, hasconst=spec.get("hasconst")).fit()
        else:
            results = sm.Logit(endog, exog, missing=mode).fit(disp=0)
    except Exception as e:  # a model statsmodels cannot fit: the researcher's to fix
        raise EvidenceError(f"the model cannot be fitted ({e.__class__.__name__}: {str(e).splitlines()[0]})") from None
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
    used = _rows_used(exog, endog, mode)
    report = build_regression_report(
        coefficients,
        residual_dof=float(results.df_resid),
        observations=int(results.nobs),
        params=params,
        pseudonyms=pseudonyms,
        design=exog[used].reset_index(drop=True),
        outcome=endog[used].reset_index(drop=True) if call == "logit" else None,
        units=None if units is None else units[used],
        units_unknown=spec.get("units_unknown"),
        now=now,
    )
    summary = results.summary().as_text()
    files = {
        "coefficients.csv": coefficients.to_csv().encode("utf-8"),
        "summary.txt": (summary + "\n").encode("utf-8"),
    }
    return Made(report, files, results=results)


def _rows_used(exog: pd.DataFrame, endog: pd.Series, mode: str) -> np.ndarray:
    if mode != "drop":
        return np.ones(len(exog), dtype=bool)
    return (exog.notna().all(axis=1) & endog.notna()).to_numpy()


def comparable_bytes(name: str, data: bytes) -> bytes:
    """A published file as compared with its central rebuild: a model summary's date and time
    lines are when it was made, not what it shows."""
    if name == "summary.txt":
        return _VOLATILE.sub("", data.decode("utf-8", errors="replace")).encode("utf-8")
    return data


def _field(spec: dict, key: str, kind: type):
    value = spec.get(key)
    if not isinstance(value, kind) or (kind is int and isinstance(value, bool)):
        raise EvidenceError(f"the evidence's spec has no valid {key!r}")
    return value
