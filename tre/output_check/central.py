"""The central recompute: the kernel's report is not evidence.

A researcher controls their kernel: `safe.session().params` can be changed (a higher `nk_k`,
a lower threshold), report.json can say anything. So when an output is added to a request,
the central side builds it again from its own evidence (the records it was computed from,
with their units), with the project's parameters from the central side and the release
ledger, and records that verdict only. Every published file must be what this rebuild
publishes, byte for byte (a model summary's date and time aside): an output whose files
differ, that has files the check never saw, or whose evidence is missing or broken fails.

`build_central_report` is a pure function of the output's directory (the central copy), its
meta, the parameters, the pseudonyms and the ledger; intake calls it.
"""

from __future__ import annotations

import datetime as dt
import stat
from collections.abc import Sequence
from pathlib import Path

import numpy as np

from tre.errors import UserError
from tre.output_check.assessments import combine_status
from tre.output_check.checks import Finding
from tre.output_check.differencing import PublishedTable
from tre.output_check.kinds import Check, OutputKind, Status
from tre.output_check.ledger import LedgerTable, build_ledger_table, unaudited, with_published
from tre.output_check.notebooks import _text_findings, build_file_report
from tre.output_check.outputs import (
    EVIDENCE_RECORDS,
    EVIDENCE_SPEC,
    REGRESSION_CALLS,
    TABLE_CALLS,
    UNIT,
    EvidenceError,
    Made,
    build_hist_output,
    build_regression_output,
    build_table_output,
    comparable_bytes,
    read_evidence,
)
from tre.output_check.parameters import Parameters
from tre.output_check.reports import Report, sha256_file
from tre.output_check.rounding import rounding_interval

KERNEL_FILES = frozenset({"meta.json", "report.json", "report.html"})  # written by the kernel, never trusted
TEXT_SUFFIXES = (".csv", ".txt", ".json", ".md", ".html", ".svg", ".tex")
MADE_BY_SAFE = TABLE_CALLS + REGRESSION_CALLS + ("hist",)
NOT_REBUILT = "is not what the central check publishes"


def build_central_report(
    directory: Path,
    meta: dict,
    params: Parameters,
    pseudonyms: frozenset[str],
    ledger: Sequence[LedgerTable],
    *,
    released: Sequence[PublishedTable] = (),
    now: dt.datetime | None = None,
) -> Report:
    """The central verdict on the queued output at `directory` (its central copy).

    `params` are the project's parameters from the central side, `ledger` the project's
    release ledger (without this output), `released` earlier releases the ledger does not
    hold (compared value by value).
    """
    directory = Path(directory)
    call = str(meta.get("call") or "")
    files = _listed_files(directory, meta)
    findings = _integrity_findings(directory, meta, files)
    made: Made | None = None
    if call in MADE_BY_SAFE:
        try:
            made = _rebuild(directory, call, params, pseudonyms, ledger, released, now)
            findings += made.extra["central_findings"]
        except EvidenceError as e:
            findings.append(
                Finding(
                    Check.UNCHECKED_CONTENT,
                    Status.FAIL,
                    f"the central check cannot rebuild this output from its evidence: {e}; make it again with tre.safe",
                )
            )
        if made is not None:
            findings += _compare(directory, files, made)
    elif call == "custom_output":
        findings += _custom_findings(directory, files, params, pseudonyms, now)
    else:
        findings.append(
            Finding(Check.UNCHECKED_CONTENT, Status.REVIEW, "an output not made by tre.safe: a person must check it")
        )
    for name in files:
        path = directory / name
        if name.lower().endswith(TEXT_SUFFIXES) and path.is_file():
            findings += _text_findings(path.read_text(encoding="utf-8", errors="replace"), pseudonyms, name)
    if made is not None:
        report = made.report
        report.findings = report.findings + findings
        report.status = combine_status([report.status, *(f.status for f in findings)])
    else:
        report = Report(
            kind=_kind(meta),
            status=combine_status(f.status for f in findings),
            parameters=params,
            findings=findings,
            checked_at=now,
        )
    report.inputs = [{"name": n, "sha256": sha256_file(directory / n)} for n in files if (directory / n).is_file()]
    report.details["central"] = {
        "recomputed": made is not None,
        "call": call,
        "kernel_status": str(meta.get("status") or ""),
        "parameters_version": params.version,
    }
    return report


def _kind(meta: dict) -> OutputKind:
    try:
        return OutputKind(meta.get("kind"))
    except ValueError:
        return OutputKind.FILE


def _listed_files(directory: Path, meta: dict) -> list[str]:
    """The output's published files: every regular file but the kernel's own and the evidence."""
    names = []
    for path in sorted(directory.iterdir()):
        if path.name in KERNEL_FILES or path.name.startswith("evidence."):
            continue
        names.append(path.name)
    return names


def _integrity_findings(directory: Path, meta: dict, files: list[str]) -> list[Finding]:
    findings = []
    listed = {e.get("name"): e.get("sha256") for e in meta.get("files", []) if isinstance(e, dict)}
    for name in files:
        path = directory / name
        mode = path.lstat().st_mode
        if not stat.S_ISREG(mode):
            findings.append(Finding(Check.UNCHECKED_CONTENT, Status.FAIL, f"{name} is not a regular file"))
        elif name not in listed:
            findings.append(
                Finding(Check.UNCHECKED_CONTENT, Status.FAIL, f"{name} was added after the output was made")
            )
        elif sha256_file(path) != listed[name]:
            findings.append(Finding(Check.UNCHECKED_CONTENT, Status.FAIL, f"{name} changed after the output was made"))
    for name in listed:
        if name not in files and not str(name).startswith("evidence.") and not (directory / str(name)).is_file():
            findings.append(Finding(Check.UNCHECKED_CONTENT, Status.FAIL, f"{name} is missing"))
    return findings


def _rebuild(directory, call, params, pseudonyms, ledger, released, now) -> Made:
    try:
        records_bytes = _read_regular(directory / EVIDENCE_RECORDS)
        spec_bytes = _read_regular(directory / EVIDENCE_SPEC)
    except OSError:
        raise EvidenceError("the output has no evidence (evidence.parquet, evidence.json)") from None
    records, spec = read_evidence(records_bytes, spec_bytes)
    if spec.get("call") != call:
        raise EvidenceError(f"the evidence is of a {spec.get('call')!r}, the output of a {call!r}")
    try:
        if call in TABLE_CALLS:
            made = build_table_output(
                records, spec, params, ledger=ledger, released=released, pseudonyms=pseudonyms, now=now
            )
        elif call == "hist":
            made = build_hist_output(records, spec, params, pseudonyms=pseudonyms, now=now)
        else:
            made = build_regression_output(records, spec, params, pseudonyms=pseudonyms, now=now)
    except EvidenceError:
        raise
    except (UserError, KeyError, ValueError, TypeError) as e:
        raise EvidenceError(f"the evidence does not fit its output ({e.__class__.__name__})") from None
    unit_findings = _unit_findings(records, spec, pseudonyms)
    made.extra["units_verified"] = not unit_findings
    made.extra["central_findings"] = unit_findings + _structural_zero_findings(spec)
    return made


def _unit_findings(records, spec: dict, pseudonyms: frozenset[str]) -> list[Finding]:
    """Whether units are required and what they are is decided here, not by the spec: when the
    project's extract has persons, every record's unit must be one of its pseudonyms, exactly
    as the extract spells it. Anything else (no unit column, empty units, made-up ids, other
    spellings, record or contact numbers) is a person's to confirm. The messages never name a
    unit."""
    if not pseudonyms:
        return []
    if not spec.get("unit") or UNIT not in records.columns:
        return [
            Finding(
                Check.UNIT_COUNT,
                Status.REVIEW,
                "the evidence gives no unit for its records, and the project's extract has persons: "
                "an officer must confirm that no group is a few persons",
            )
        ]
    units = records[UNIT].to_numpy(dtype=object)
    missing = sum(1 for u in units if not isinstance(u, str))
    strangers = len({u for u in units if isinstance(u, str)} - pseudonyms)
    if not missing and not strangers:
        return []
    problems = ([f"{missing} record(s) without a unit"] if missing else []) + (
        [f"{strangers} unit(s) that are not pseudonyms of the project's extract"] if strangers else []
    )
    return [
        Finding(
            Check.UNIT_COUNT,
            Status.REVIEW,
            f"units are not the project's persons ({'; '.join(problems)}): an officer must confirm",
        )
    ]


def _structural_zero_findings(spec: dict) -> list[Finding]:
    """Cells the kernel declared empty by definition are a claim: an officer confirms them."""
    zeros = spec.get("structural_zeros") or []
    if not zeros:
        return []
    shown_cells = "; ".join(
        ", ".join(f"{str(k)[:40]}={str(v)[:40]}" for k, v in z.items()) if isinstance(z, dict) else "?"
        for z in zeros[:20]
    )
    more = f" and {len(zeros) - 20} more" if len(zeros) > 20 else ""
    return [
        Finding(
            Check.CLASS_DISCLOSURE,
            Status.REVIEW,
            f"cells declared empty by definition (structural zeros), not protected: {shown_cells}{more}; "
            "an officer must confirm that they cannot occur",
        )
    ]


def _read_regular(path: Path) -> bytes:
    if not stat.S_ISREG(path.lstat().st_mode):
        raise OSError(f"{path.name} is not a regular file")
    return path.read_bytes()


def _compare(directory: Path, files: list[str], made: Made) -> list[Finding]:
    """Every published file is what the central rebuild publishes; no other file is published."""
    findings = []
    for name, expected in made.files.items():
        path = directory / name
        if not path.is_file():
            findings.append(Finding(Check.UNCHECKED_CONTENT, Status.FAIL, f"{name} is missing from the output"))
            continue
        if comparable_bytes(name, path.read_bytes()) != comparable_bytes(name, expected):
            findings.append(
                Finding(
                    Check.UNCHECKED_CONTENT,
                    Status.FAIL,
                    f"{name} {NOT_REBUILT} from the output's own data with the "
                    "project's parameters (was the kernel's check weakened?): make the output again",
                )
            )
    for name in files:
        if name not in made.files:
            findings.append(
                Finding(Check.UNCHECKED_CONTENT, Status.FAIL, f"{name} is not part of a {made.report.kind} output")
            )
    return findings


def _custom_findings(directory, files, params, pseudonyms, now) -> list[Finding]:
    """A file the researcher made: checked as a file of unknown meaning; a person looks at it."""
    findings = []
    for name in files:
        report = build_file_report(directory / name, params, pseudonyms, now=now)
        findings += report.findings
    if not any(f.status in (Status.FAIL, Status.REVIEW) for f in findings):
        findings.append(
            Finding(
                Check.UNCHECKED_CONTENT,
                Status.REVIEW,
                "a file made outside tre.safe: no rule can show it is safe, a person must check it",
            )
        )
    return findings


def build_ledger_entry(
    directory: Path,
    meta: dict,
    params: Parameters,
    ledger: Sequence[LedgerTable],
    name: str,
    release: str,
    *,
    released: Sequence[PublishedTable] = (),
    pseudonyms: frozenset[str] = frozenset(),
) -> LedgerTable | None:
    """What a released output adds to the ledger: its table's cells with the units behind them
    and what was published of each (the central rebuild's, which the release has checked are
    the files released). None for outputs that are not tables of units (regressions, files)."""
    call = str(meta.get("call") or "")
    if call not in TABLE_CALLS + ("hist",):
        return None
    made = _rebuild(Path(directory), call, params, pseudonyms, ledger, released, None)
    value_name = str((meta.get("arguments") or {}).get("values") or "")
    if not made.extra["units_verified"] and made.extra.get("table") is not None:
        return unaudited(made.extra["table"], name, release=release, value_name=value_name)
    return ledger_entry_of(made, params, name, release, value_name)


def ledger_entry_of(
    made: Made, params: Parameters, name: str, release: str, value_name: str = ""
) -> LedgerTable | None:
    """The ledger table of a table output as it is published (values, rounding intervals,
    nothing for suppressed cells), or None when it has no units or is not a sum."""
    table = made.extra.get("table")
    entry = None if table is None else build_ledger_table(table, name, release=release, value_name=value_name)
    if entry is None:
        return None
    data = made.report.as_dict()
    cells = [c for c in data["cells"] if c["status"] != "merged"]
    lower = np.full(table.shape, np.nan)
    upper = np.full(table.shape, np.nan)
    sensitive = np.zeros(table.shape, dtype=bool)
    method = data.get("method")
    base = params.round_base if method == "round" else params.midpoint_base
    for index, cell in zip(table.cells(), cells, strict=True):
        sensitive[index] = cell["status"] == "primary"
        if cell["published"] is None:
            continue
        value = float(table.value[index]) if cell["status"] == "ok" else float(cell["published"])
        if cell["status"] == "rounded":
            lower[index], upper[index] = rounding_interval(value, method, base)
        else:
            lower[index] = upper[index] = value
    return with_published(entry, table, lower, upper, sensitive)
