"""Assessing an output: run the checks, apply the remedy asked for, and build its report.

`build_table_report` is the heart: checks on true values, the chosen remedy (suppression,
merging, rounding), differencing against earlier releases, and, where affordable, the LP
audit of what is left hidden. The other `build_*_report` functions cover regressions and
tables whose meaning the engine cannot know (a notebook's or a file's).
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd

from tre.output_check import differencing, intervals
from tre.output_check.checks import Finding, build_cell_findings, build_label_findings, build_table_findings
from tre.output_check.kinds import (
    EXPLANATIONS,
    REVIEW_ONLY,
    SEVERITY,
    SUPPRESSIBLE,
    TOTAL,
    CellStatus,
    Check,
    OutputKind,
    Status,
)
from tre.output_check.leaks import is_person_level, scan_frame, value_leaks
from tre.output_check.merging import build_merged_table, plan_merges
from tre.output_check.parameters import Parameters
from tre.output_check.reports import Report
from tre.output_check.rounding import (
    ROUNDING_METHODS,
    ROUNDING_ROUNDS,
    RoundedProtection,
    build_rounded_protection,
    rounding_interval,
)
from tre.output_check.suppression import (
    build_primary_mask,
    build_secondary_mask,
    protection_values,
    required_widths,
)
from tre.output_check.tables import Table, TableError

METHODS = ("suppress", "merge", "round", "midpoint6")
AUTO_AUDIT_LIMIT = 200  # hidden cells up to which every report carries the LP audit
DIFFERENCING_ROUNDS = 4


def build_table_report(
    table: Table,
    params: Parameters,
    *,
    method: str | None = None,
    merge_dimensions: Sequence[str] | None = None,
    released: Sequence[differencing.PublishedTable] = (),
    pseudonyms: frozenset[str] = frozenset(),
    audit: bool | str = "auto",
    inputs: Sequence[dict] = (),
    kind: OutputKind | None = None,
    now: dt.datetime | None = None,
) -> Report:
    """Check `table`; with a `method`, protect it; report every cell, margins included.

    Without a method the table is checked as it would be published: failing cells are
    marked `primary` but still published, and the status is `fail`.
    """
    if method is not None and method not in METHODS:
        raise TableError(f"unknown remedy {method!r}; one of {', '.join(METHODS)}")
    if method in ("round", "midpoint6") and table.statistic != "count":
        raise TableError(f"rounding ({method}) applies to count tables, not to a table of {table.statistic} values")
    kind = kind or _kind_of(table)
    label_findings, label_mask = build_label_findings(table, pseudonyms)
    findings = [*label_findings, *build_table_findings(table, params)]

    original, plan = table, {}
    if method == "merge":
        plan = plan_merges(table, params, merge_dimensions)
        table = build_merged_table(table, params, plan)
        label_mask = _merged_label_mask(original, table, label_mask, plan)

    masks = build_cell_findings(table, params)
    primary = build_primary_mask(masks, table.shape)
    widths = required_widths(table, params)
    released = [r for r in released if r is not None]
    differences: list[differencing.Difference] = []
    difference_mask = np.zeros(table.shape, dtype=bool)
    for _ in range(DIFFERENCING_ROUNDS):
        remedy = _apply(table, params, method, primary, widths)
        hidden, secondary, published, rounded = remedy.hidden, remedy.secondary, remedy.published, remedy.rounded
        if not released or table.statistic != "count":
            break
        differences = differencing.find_differences(
            _published_table(table, published, "this output"), released, params.threshold
        )
        found = _key_mask(table, [d.key for d in differences])
        difference_mask |= found
        if method is None or not (found & ~hidden).any():
            break
        primary = primary | found
    if difference_mask.any():
        masks[Check.DIFFERENCING] = difference_mask
    for d in differences:
        findings.append(Finding(Check.DIFFERENCING, Status.FAIL, d.message(table.dimensions)))
    rounding = remedy.rounding
    if rounding is not None and rounding.recovered.any():
        masks[Check.ROUNDING_RECOVERY] = rounding.recovered
        primary = primary | rounding.recovered
    if rounding is not None and rounding.unresolved.any():
        findings.append(
            Finding(
                Check.ROUNDING_RECOVERY,
                Status.FAIL,
                f"{int(rounding.unresolved.sum())} cell(s) can still be recovered from the rounded values after "
                f"{ROUNDING_ROUNDS} rounds of suppression: do not publish this table rounded; use --method suppress",
            )
        )

    audited = _audit(table, params, method, audit, hidden, primary, published, rounded, widths)
    if audited and audited["under_protected"]:
        findings.append(
            Finding(
                Check.SECONDARY_PROTECTION,
                Status.FAIL,
                f"{len(audited['under_protected'])} hidden cell(s) can be narrowed below their protection "
                "interval from the published values",
            )
        )

    unremedied = [c for c in masks if c in SUPPRESSIBLE and c != Check.DIFFERENCING] if method is None else []
    changed = bool(hidden.any() or rounded.any() or plan)
    status = _status(findings, masks, unremedied, changed)
    cells = _cell_records(table, params, masks, label_mask, primary, hidden, secondary, published, rounded, method)
    if plan:
        cells += _merged_records(original, params, plan)
    if label_mask.any():
        for cell in cells:
            cell["key"] = {d: redact_label(v, pseudonyms) for d, v in cell["key"].items()}
        plan = {d: [redact_label(v, pseudonyms) for v in cats] for d, cats in plan.items()}
    _add_intervals(cells, table, audited)
    details = {
        "dimensions": list(table.dimensions),
        "statistic": table.statistic,
        "method": method,
        "merged": plan,
        "released_compared": [r.name for r in released],
        "audit": _audit_summary(audited, hidden),
    }
    if rounding is not None:
        details["rounding_audit"] = rounding.summary()
    return Report(
        kind=kind,
        status=status,
        parameters=params,
        findings=findings + _cell_findings_summary(masks, method, hidden),
        cells=cells,
        inputs=list(inputs),
        details=details,
        checked_at=now,
    )


def redact_label(label: str, pseudonyms: frozenset[str]) -> str:
    """`label`, or a placeholder when it is (or holds) a pseudonym or an ID number."""
    pseud, ident = value_leaks(label, pseudonyms)
    return "(redacted pseudonym)" if pseud else "(redacted ID number)" if ident else label


def _kind_of(table: Table) -> OutputKind:
    if table.statistic == "count":
        return OutputKind.FREQUENCY
    if table.statistic == "rate":
        return OutputKind.RATE
    return OutputKind.MAGNITUDE


@dataclass
class _Remedy:
    """What a remedy publishes: hidden cells and values as published (rounded or not)."""

    hidden: np.ndarray
    secondary: np.ndarray
    published: np.ndarray
    rounded: np.ndarray
    rounding: RoundedProtection | None = None  # the rounding audit's work, with a rounding method


def _apply(table: Table, params: Parameters, method, primary, widths) -> _Remedy:
    """The remedy `method` applied: what is hidden and what is published, rounded or not."""
    values = table.value * (params.rate_per if table.statistic == "rate" else 1)
    none = np.zeros(table.shape, dtype=bool)
    if method is None:
        return _Remedy(none, none, values.copy(), none)
    to_hide = primary.copy()
    small = (table.count > 0) & (table.count < params.threshold)
    if method == "midpoint6" and params.midpoint_base >= params.threshold:
        # midpoint rounding itself covers counts under the threshold (1..6 all show as 3), as
        # long as the rounded values around them do not pin them down: the audit sees to that
        to_hide &= ~(primary & small)
    if method in ROUNDING_METHODS:  # count tables only
        base = params.round_base if method == "round" else params.midpoint_base
        rounding = build_rounded_protection(protection_values(table), to_hide, widths, small, method, base)
        return _Remedy(rounding.hidden, rounding.secondary, rounding.published, ~rounding.hidden, rounding)
    if table.is_additive:
        secondary = build_secondary_mask(protection_values(table), to_hide, widths)
    else:  # medians, extremes, spreads: no published relation links the cells
        secondary = none.copy()
    hidden = to_hide | secondary
    return _Remedy(hidden, secondary, np.where(hidden, np.nan, values), none)


def _audit(table, params, method, audit, hidden, primary, published, rounded, widths) -> dict | None:
    if method is None or not table.is_additive or not (hidden.any() or (rounded & primary).any()):
        return None
    if audit == "auto":
        audit = int(hidden.sum()) <= AUTO_AUDIT_LIMIT and not rounded.any()
    if not audit:
        return None
    values = protection_values(table)
    bounds = {}
    if rounded.any():
        base = params.round_base if method == "round" else params.midpoint_base
        for index in zip(*np.nonzero(rounded), strict=True):
            index = tuple(int(i) for i in index)
            bounds[index] = rounding_interval(published[index], method, base)
    targets = hidden | (rounded & primary)
    found = intervals.build_attacker_intervals(
        values,
        hidden,
        bounds=bounds,
        nonnegative=bool((values >= 0).all()),
        targets=targets,
    )
    # a count shown rounded needs only not to be recovered exactly (OpenSAFELY's standard)
    needs_width = primary & hidden
    under = intervals.find_under_protected(found, widths, needs_width)
    return {"intervals": found, "under_protected": under}


def _audit_summary(audited: dict | None, hidden: np.ndarray) -> dict:
    if audited is None:
        return {"run": False, "hidden_cells": int(hidden.sum())}
    return {
        "run": True,
        "hidden_cells": int(hidden.sum()),
        "cells_audited": len(audited["intervals"]),
        "under_protected": len(audited["under_protected"]),
    }


def _add_intervals(cells: list[dict], table: Table, audited: dict | None) -> None:
    if not audited:
        return
    by_key = {tuple(c["key"].values()): c for c in cells if c["status"] != CellStatus.MERGED}
    for index, (lo, hi) in audited["intervals"].items():
        record = by_key.get(tuple(table.key(index).values()))
        if record is not None:
            record["interval"] = [_number(lo), _number(hi)]


def _status(findings: list[Finding], masks: dict, unremedied: list, changed: bool) -> Status:
    """fail, review, protected (cells hidden, rounded or merged) or pass, in that order."""
    if unremedied or any(f.status == Status.FAIL for f in findings):
        return Status.FAIL
    if any(c in REVIEW_ONLY for c in masks) or any(f.status == Status.REVIEW for f in findings):
        return Status.REVIEW
    return Status.PROTECTED if changed else Status.PASS


def _cell_findings_summary(masks: dict, method, hidden: np.ndarray) -> list[Finding]:
    """One finding per check that flagged cells, in plain words."""
    out = []
    for check, mask in masks.items():
        if check == Check.DIFFERENCING:
            continue
        n = int(mask.sum())
        if check in REVIEW_ONLY:
            status, tail = Status.REVIEW, "a person must look"
        elif method is None:
            status, tail = Status.FAIL, "rerun with --protect (or a safe.* call) to suppress them"
        elif method == "midpoint6" and check == Check.MINIMUM_THRESHOLD:
            suppressed = int((mask & hidden).sum())
            status, tail = Status.PROTECTED, f"{n - suppressed} shown midpoint-rounded"
            if suppressed:
                tail += f", {suppressed} suppressed and protected"
        else:
            status, tail = Status.PROTECTED, "suppressed and protected"
        out.append(Finding(check, status, f"{n} cell(s): {EXPLANATIONS[check]}; {tail}"))
    return out


def _cell_records(table, params, masks, label_mask, primary, hidden, secondary, published, rounded, method):
    values = table.value * (params.rate_per if table.statistic == "rate" else 1)
    records = []
    for index in table.cells():
        checks = [str(c) for c, m in masks.items() if m[index]]
        if label_mask[index]:
            checks.append("(label leak)")
        if hidden[index]:
            status = CellStatus.SECONDARY if secondary[index] and not primary[index] else CellStatus.PRIMARY
        elif primary[index] and method is None:
            status = CellStatus.PRIMARY
        elif rounded[index]:
            status = CellStatus.ROUNDED
        else:
            status = CellStatus.OK
        record = {
            "key": table.key(index),
            "value": _number(values[index]),
            "published": None if hidden[index] else _number(published[index]),
            "status": str(status),
            "checks": [c for c in checks if c != "(label leak)"] + (["LabelLeak"] if label_mask[index] else []),
        }
        if table.statistic != "count":
            record["units"] = int(table.count[index])
        if table.denominator is not None:
            record["numerator"] = int(table.count[index])
            record["denominator"] = _number(table.denominator[index])
        records.append(record)
    return records


def _merged_records(original: Table, params: Parameters, plan: dict) -> list[dict]:
    """The original cells that were merged away: status `merged`, not published on their own."""
    records = []
    values = original.value * (params.rate_per if original.statistic == "rate" else 1)
    for index in original.cells():
        key = original.key(index)
        if any(key[d] in cats for d, cats in plan.items()):
            records.append(
                {
                    "key": key,
                    "value": _number(values[index]),
                    "published": None,
                    "status": str(CellStatus.MERGED),
                    "checks": [],
                }
            )
    return records


def _merged_label_mask(original, merged, mask, plan):
    out = np.zeros(merged.shape, dtype=bool)
    if not mask.any():
        return out
    # a leaked label that was merged away is no longer published; the others keep their flag
    for index in merged.cells():
        key = merged.key(index)
        try:
            where = tuple(
                original.categories[a].index(v) if v != TOTAL else len(original.categories[a])
                for a, v in enumerate(key.values())
            )
        except ValueError:
            continue
        out[index] = mask[where]
    return out


def _published_table(table: Table, published: np.ndarray, name: str) -> differencing.PublishedTable:
    cells = {}
    for index in table.cells():
        value = published[index]
        cells[tuple(table.key(index).values())] = None if np.isnan(value) else float(value)
    return differencing.PublishedTable(name, table.dimensions, cells)


def _key_mask(table: Table, keys) -> np.ndarray:
    mask = np.zeros(table.shape, dtype=bool)
    for key in keys:
        index = tuple(cats.index(k) if k != TOTAL else len(cats) for cats, k in zip(table.categories, key, strict=True))
        mask[index] = True
    return mask


def _number(value):
    if value is None or (isinstance(value, float | np.floating) and np.isnan(value)):
        return None
    value = float(value)
    if np.isinf(value):
        return "inf" if value > 0 else "-inf"
    return int(value) if value.is_integer() else round(value, 6)


# --- regressions ---------------------------------------------------------------------------


def build_regression_report(
    coefficients: pd.DataFrame,
    *,
    residual_dof: float,
    observations: int,
    params: Parameters,
    pseudonyms: frozenset[str] = frozenset(),
    inputs: Sequence[dict] = (),
    now: dt.datetime | None = None,
) -> Report:
    """A regression's coefficient table: residual degrees of freedom and leaks in its labels."""
    findings = []
    if residual_dof < params.min_dof:
        findings.append(
            Finding(
                Check.MINIMUM_DOF,
                Status.FAIL,
                f"residual degrees of freedom {residual_dof:g} < {params.min_dof}: the model is close to a list "
                "of its data",
            )
        )
    findings += _frame_leak_findings(coefficients, pseudonyms)
    status = Status.FAIL if any(f.status == Status.FAIL for f in findings) else Status.PASS
    return Report(
        kind=OutputKind.REGRESSION,
        status=status,
        parameters=params,
        findings=findings,
        inputs=list(inputs),
        details={
            "residual_dof": _number(residual_dof),
            "observations": int(observations),
            "coefficients": _frame_records(coefficients),
        },
        checked_at=now,
    )


# --- tables of unknown meaning (notebooks, files) ----------------------------------------


def build_frame_findings(
    frame: pd.DataFrame, params: Parameters, pseudonyms: frozenset[str], where: str
) -> list[Finding]:
    """What a table of unknown meaning gives away: leaks, persons, small counts, or needs a person.

    A table whose every value is a whole number is read as counts and must pass the
    threshold; any other table of numbers needs a person (it was not made through tre.safe).
    """
    findings = _frame_leak_findings(frame, pseudonyms, where)
    if is_person_level(frame, pseudonyms, params.person_level_rows):
        findings.append(
            Finding(
                Check.PERSON_LEVEL,
                Status.FAIL,
                f"{where}: {len(frame)} rows that each describe one unit: publish aggregates made with tre.safe",
            )
        )
    numbers = frame.apply(pd.to_numeric, errors="coerce")
    numeric = numbers.columns[numbers.notna().any() & (numbers.notna() | frame.isna()).all()]
    values = numbers[numeric].to_numpy(dtype=float).ravel() if len(numeric) else np.array([])
    values = values[~np.isnan(values)]
    if values.size and np.all(values == np.round(values)) and (values >= 0).all():
        small = int(((values > 0) & (values < params.threshold)).sum())
        if small:
            findings.append(
                Finding(
                    Check.MINIMUM_THRESHOLD,
                    Status.FAIL,
                    f"{where}: {small} count(s) under the threshold of {params.threshold}",
                )
            )
    elif values.size:
        findings.append(
            Finding(
                Check.UNCHECKED_CONTENT,
                Status.REVIEW,
                f"{where}: a table of statistics not made through tre.safe; a person must check it",
            )
        )
    return findings


def _frame_leak_findings(frame: pd.DataFrame, pseudonyms: frozenset[str], where: str = "the table") -> list[Finding]:
    findings = []
    scanned = scan_frame(frame, pseudonyms)
    pseud = [redact_label(c, pseudonyms) for c, (p, _) in scanned.items() if p]
    ident = [redact_label(c, pseudonyms) for c, (_, i) in scanned.items() if i]
    if pseud:
        findings.append(
            Finding(
                Check.PSEUDONYM, Status.FAIL, f"{where}: column(s) {', '.join(pseud)} hold the project's pseudonyms"
            )
        )
    if ident:
        findings.append(
            Finding(
                Check.IDENTITY_NUMBER,
                Status.FAIL,
                f"{where}: column(s) {', '.join(ident)} hold values shaped like national ID numbers",
            )
        )
    return findings


def _frame_records(frame: pd.DataFrame) -> list[dict]:
    out = []
    for label, row in frame.iterrows():
        record = {"term": str(label)}
        record.update(
            {str(k): _number(v) if isinstance(v, int | float | np.number) else str(v) for k, v in row.items()}
        )
        out.append(record)
    return out


def combine_status(statuses) -> Status:
    """The most serious of several statuses: fail over review over protected over pass."""
    return max((Status(s) for s in statuses), key=SEVERITY.index, default=Status.PASS)
