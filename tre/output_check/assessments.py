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
from tre.output_check.checks import (
    Finding,
    build_cell_findings,
    build_label_findings,
    build_table_findings,
    structural_mask,
)
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
from tre.output_check.ledger import (
    LedgerAudit,
    LedgerTable,
    UnitSpace,
    audit_against_ledger,
    build_ledger_table,
    with_published,
)
from tre.output_check.merging import build_merged_table, plan_merges
from tre.output_check.parameters import Parameters
from tre.output_check.reports import Report
from tre.output_check.rounding import (
    ROUNDING_METHODS,
    ROUNDING_ROUNDS,
    RoundedProtection,
    build_rounded_protection,
    rounding_bounds,
    rounding_interval,
)
from tre.output_check.statistics import build_statistic_findings, classify_column
from tre.output_check.suppression import (
    build_primary_mask,
    build_secondary_mask,
    protection_values,
    required_widths,
)
from tre.output_check.tables import Table, TableError

METHODS = ("suppress", "merge", "round", "midpoint6")
AUTO_AUDIT_LIMIT = 200  # hidden cells up to which every report carries the LP audit
DIFFERENCING_ROUNDS = 6  # rounds of "find what earlier releases give away, suppress it"


def _unaudited_findings(table, ledger: Sequence[LedgerTable]) -> list[Finding]:
    """Earlier releases without verified units that share a dimension with `table`: it cannot be
    audited against them, so a person must."""
    names = [t.name for t in ledger if not t.audited and set(t.dimensions) & set(table.dimensions)]
    if not names:
        return []
    return [
        Finding(
            Check.DIFFERENCING,
            Status.REVIEW,
            f"released without verified units, over a dimension of this output ({', '.join(names[:10])}"
            f"{' and more' if len(names) > 10 else ''}): it cannot be audited against them, an officer must check "
            "that the two together single out no one",
        )
    ]


def build_table_report(
    table: Table,
    params: Parameters,
    *,
    method: str | None = None,
    merge_dimensions: Sequence[str] | None = None,
    released: Sequence[differencing.PublishedTable] = (),
    ledger: Sequence[LedgerTable] = (),
    pseudonyms: frozenset[str] = frozenset(),
    audit: bool | str = "auto",
    inputs: Sequence[dict] = (),
    kind: OutputKind | None = None,
    units_unknown: str | None = None,
    now: dt.datetime | None = None,
) -> Report:
    """Check `table`; with a `method`, protect it; report every cell, margins included.

    Without a method the table is checked as it would be published: failing cells are
    marked `primary` but still published, and the status is `fail`. `released` are earlier
    releases known only by their published values (compared value by value); `ledger` the
    release ledger (every earlier release with the units behind its cells), against which
    a table built from records with units is audited as a whole. `units_unknown` says why a
    table of a project with person-level data counts records rather than persons (review).
    """
    if method is not None and method not in METHODS:
        raise TableError(f"unknown remedy {method!r}; one of {', '.join(METHODS)}")
    if method in ("round", "midpoint6") and table.statistic != "count":
        raise TableError(f"rounding ({method}) applies to count tables, not to a table of {table.statistic} values")
    kind = kind or _kind_of(table)
    label_findings, label_mask = build_label_findings(table, pseudonyms)
    findings = [*label_findings, *build_table_findings(table, params), *_unaudited_findings(table, ledger)]
    ledger = [t for t in ledger if t.audited]

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
    members = build_ledger_table(table, "this output") if ledger else None
    space = UnitSpace(ledger) if members is not None else None  # numbered once for every round
    ledger_audit: LedgerAudit | None = None
    ledger_found: dict[str, str] = {}  # every set the ledger audit found, by what it is
    for _ in range(DIFFERENCING_ROUNDS):
        remedy = _apply(table, params, method, primary, widths, forced=difference_mask)
        hidden, secondary, published, rounded = remedy.hidden, remedy.secondary, remedy.published, remedy.rounded
        found = np.zeros(table.shape, dtype=bool)
        if released and table.statistic == "count":
            differences = differencing.find_differences(
                _published_table(table, published, "this output"), released, params.threshold
            )
            found |= _key_mask(table, [d.key for d in differences])
        if members is not None:
            lower, upper = _published_bounds(params, method, published, hidden, rounded)
            current = with_published(members, table, lower, upper, primary)
            ledger_audit = audit_against_ledger(
                current, ledger, params.threshold, params.magnitude_protection, units=space
            )
            for finding in ledger_audit.findings:
                found[np.unravel_index(finding.new_cells[0], table.shape)] = True
                ledger_found.setdefault(finding.what, finding.message())
        difference_mask |= found
        if method is None or not (found & ~hidden).any():
            break
        primary = primary | found
    if difference_mask.any():
        masks[Check.DIFFERENCING] = difference_mask
    for d in differences:
        findings.append(Finding(Check.DIFFERENCING, Status.FAIL, d.message(table.dimensions)))
    unremedied = {f.what for f in ledger_audit.findings} if ledger_audit else set()
    for what, message in ledger_found.items():
        if what in unremedied:
            findings.append(Finding(Check.DIFFERENCING, Status.FAIL, message))
        else:
            findings.append(Finding(Check.DIFFERENCING, Status.PROTECTED, f"{message}; suppressed and protected"))
    if units_unknown:
        findings.append(Finding(Check.UNIT_COUNT, Status.REVIEW, units_unknown))
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
        "units": "counted as records" if table.units is None else "distinct units",
    }
    if ledger_audit is not None:
        details["ledger"] = ledger_audit.summary()
        details["relations"] = ledger_audit.relations
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


def _apply(table: Table, params: Parameters, method, primary, widths, forced=None) -> _Remedy:
    """The remedy `method` applied: what is hidden and what is published, rounded or not.
    `forced` cells (what earlier releases would give away) are hidden whatever the method."""
    values = table.value * (params.rate_per if table.statistic == "rate" else 1)
    none = np.zeros(table.shape, dtype=bool)
    if method is None:
        return _Remedy(none, none, values.copy(), none)
    to_hide = primary.copy()
    small = (table.count > 0) & (table.count < params.threshold)
    if method == "midpoint6" and params.midpoint_base >= params.threshold:
        # midpoint rounding itself covers counts under the threshold (1..6 all show as 3), as
        # long as the rounded values around them do not pin them down: the audit sees to that
        to_hide &= ~(primary & small & ~(forced if forced is not None else False))
    if method in ROUNDING_METHODS:  # count tables only
        base = params.round_base if method == "round" else params.midpoint_base
        rounding = build_rounded_protection(protection_values(table), to_hide, widths, small, method, base)
        return _Remedy(rounding.hidden, rounding.secondary, rounding.published, ~rounding.hidden, rounding)
    if table.is_additive:
        fixed = None if table.structural_zeros is None else structural_mask(table.structural_zeros)
        secondary = build_secondary_mask(protection_values(table), to_hide, widths, fixed=fixed)
    else:  # medians, extremes, spreads: no published relation links the cells
        secondary = none.copy()
    hidden = to_hide | secondary
    return _Remedy(hidden, secondary, np.where(hidden, np.nan, values), none)


def _published_bounds(params, method, published, hidden, rounded) -> tuple[np.ndarray, np.ndarray]:
    """What an attacker knows of each cell: its value, its rounding interval, NaN when hidden."""
    lower = np.where(hidden, np.nan, published).astype(float)
    upper = lower.copy()
    if rounded.any():
        base = params.round_base if method == "round" else params.midpoint_base
        low, high = rounding_bounds(np.where(rounded, published, 0.0), method, base)
        lower = np.where(rounded & ~hidden, low, lower)
        upper = np.where(rounded & ~hidden, high, upper)
    return lower, upper


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
    design: pd.DataFrame | None = None,
    outcome: pd.Series | None = None,
    units: np.ndarray | None = None,
    units_unknown: str | None = None,
    inputs: Sequence[dict] = (),
    now: dt.datetime | None = None,
) -> Report:
    """A regression's coefficient table: residual degrees of freedom, leaks in its labels, and,
    with the design matrix (`design`, one row per observation used), the groups its terms
    single out.

    A dummy (or any regressor that takes one value for most units) is the mean difference of
    the units on either side: each side needs at least `threshold` units, or a coefficient
    is a few persons' values (`ols(cost ~ dummy)` with a dummy marking one person gives that
    person's cost). The same holds for the reference level of a set of dummies that exclude
    each other (a categorical regressor), for every interaction (a product of dummies is a
    dummy), and, in a logit, for each outcome. Counts are of units when `units` are given.
    """
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
    if design is not None:
        findings += build_design_findings(design, outcome, units, params)
    findings += _frame_leak_findings(coefficients, pseudonyms)
    if units_unknown:
        findings.append(Finding(Check.UNIT_COUNT, Status.REVIEW, units_unknown))
    status = combine_status(f.status for f in findings)
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


def build_design_findings(
    design: pd.DataFrame, outcome: pd.Series | None, units: np.ndarray | None, params: Parameters
) -> list[Finding]:
    """The groups a model's terms single out, each needing `threshold` units on either side."""
    t = params.threshold
    findings: list[Finding] = []
    unit_codes = _unit_codes_of(units, len(design))
    n_units = len(np.unique(unit_codes))
    k = design.shape[1]
    if n_units - k < params.min_dof and n_units < len(design):
        findings.append(
            Finding(
                Check.MINIMUM_DOF,
                Status.FAIL,
                f"{k} terms fitted to the records of too few persons: fewer than {params.min_dof} "
                "degrees of freedom in persons",
            )
        )
    dummies = {}
    for name in design.columns:
        column = design[name].to_numpy(dtype=float)
        values, counts = np.unique(column[~np.isnan(column)], return_counts=True)
        if len(values) <= 1:
            continue  # the constant
        modal = values[np.argmax(counts)]
        sides = [column == modal, (column != modal) & ~np.isnan(column)]
        if len(values) > 2 and sides[0].sum() * 2 < len(column):
            continue  # a continuous regressor
        small = [_units_in(unit_codes, side) for side in sides]
        if any(0 < n < t for n in small):
            which = "one of its two values" if len(values) == 2 else "the values other than its most common one"
            findings.append(
                Finding(
                    Check.MINIMUM_THRESHOLD,
                    Status.FAIL,
                    f"regressor {str(name)!r}: {which} covers fewer than {t} units, so its coefficient is a few "
                    "persons' values; group the categories or leave the term out",
                )
            )
        if len(values) == 2 and set(values) == {0.0, 1.0}:
            dummies[str(name)] = column == 1.0
        if outcome is not None:
            findings += _separation(str(name), sides, outcome)
    for group in _exclusive_groups(dummies):
        reference = ~np.any([dummies[g] for g in group], axis=0)
        n = _units_in(unit_codes, reference)
        if 0 < n < t:
            findings.append(
                Finding(
                    Check.MINIMUM_THRESHOLD,
                    Status.FAIL,
                    f"the reference level of {', '.join(map(repr, group))} (rows where none of them is 1) covers "
                    f"fewer than {t} units, so the intercept is a few persons' values",
                )
            )
    if outcome is not None:
        y = outcome.to_numpy(dtype=float)
        for level in np.unique(y[~np.isnan(y)]):
            n = _units_in(unit_codes, y == level)
            if 0 < n < t:
                findings.append(
                    Finding(
                        Check.MINIMUM_THRESHOLD,
                        Status.FAIL,
                        f"outcome value {level:g} holds fewer than {t} units: the model singles them out",
                    )
                )
    return findings


def _unit_codes_of(units: np.ndarray | None, n: int) -> np.ndarray:
    if units is None:
        return np.arange(n)
    codes, _ = pd.factorize(pd.Series(units, dtype=object), use_na_sentinel=False)
    return np.asarray(codes)


def _units_in(unit_codes: np.ndarray, rows: np.ndarray) -> int:
    return int(len(np.unique(unit_codes[rows])))


def _separation(name: str, sides: list[np.ndarray], outcome: pd.Series) -> list[Finding]:
    """A group of a logit's regressor whose outcomes are all the same tells them all."""
    y = outcome.to_numpy(dtype=float)
    for side in sides:
        values = np.unique(y[side & ~np.isnan(y)])
        if side.any() and len(values) == 1:
            return [
                Finding(
                    Check.CLASS_DISCLOSURE,
                    Status.REVIEW,
                    f"regressor {name!r}: every unit on one side has the same outcome, which the model then "
                    "tells about all of them (and the fit separates); a person must look",
                )
            ]
    return []


def _exclusive_groups(dummies: dict[str, np.ndarray]) -> list[list[str]]:
    """Sets of two or more 0/1 regressors of which no row has two: the levels of one categorical."""
    names = list(dummies)
    groups: list[list[str]] = []
    for name in names:
        for group in groups:
            if all(not (dummies[name] & dummies[other]).any() for other in group):
                group.append(name)
                break
        else:
            groups.append([name])
    return [g for g in groups if len(g) >= 2]


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
    statistics, interpreted = build_statistic_findings(frame, params, where)
    findings += statistics
    numbers = frame.apply(pd.to_numeric, errors="coerce")
    numeric = numbers.columns[numbers.notna().any() & (numbers.notna() | frame.isna()).all()]
    # beside recognised statistics, the other columns are the groups' labels (a year, a day)
    numeric = [] if interpreted else list(numeric)
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
    if interpreted and not any(f.status in (Status.FAIL, Status.REVIEW) for f in findings):
        kinds = {classify_column(c).kind for c in interpreted}
        if kinds - {"size"}:
            findings.append(
                Finding(
                    Check.UNCHECKED_CONTENT,
                    Status.REVIEW,
                    f"{where}: statistics made outside tre.safe: their groups are large enough, but whether one "
                    "person dominates them cannot be told from the table; a person must check it",
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
