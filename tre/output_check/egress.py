"""What may leave a project, and in what form: the allowlist of file types, decided by content
as well as by name; spreadsheet formulas neutralised; the released table's sidecar rebuilt
from known fields; and the redacted check record that leaves instead of the check report.

Everything here is a whitelist. A file leaves only as one of `LEAVING_TYPES`, after its bytes
were checked to be what its name says (a zip renamed `.csv` is refused). JSON leaves only as a
table's sidecar (`tre-released-table/1`), rebuilt field by field. The check report a kernel
wrote (true values of hidden cells, unrounded counts, units, intervals) never leaves: the
record that does (`build_check_record`) copies only the fields that are safe to publish.

Pure functions over bytes and dicts; intake (at `tre request add`) and release call them.
"""

from __future__ import annotations

import csv
import hashlib
import io
import json
import re
from collections.abc import Callable
from dataclasses import dataclass, field

from tre.errors import UnsafeFile
from tre.output_check.assessments import METHODS
from tre.output_check.kinds import EXPLANATIONS, Check, Status
from tre.output_check.sources import SIDECAR_FORMAT, SIDECAR_SUFFIX
from tre.output_check.tables import STATISTICS

RECORD_FORMAT = "tre-check-record/1"
# Files of a queued output that stay on the central side: the kernel's own reports, its
# metadata (it names the OS account) and the evidence the central side checks from.
CENTRAL_ONLY = frozenset({"report.json", "report.html", "meta.json"})
EVIDENCE_PREFIX = "evidence."
MAX_FILES = 64
# The files each call of tre.safe makes; anything else in such an output is flagged to officers.
EXPECTED_FILES = {
    "crosstab": {"table.csv", "cells.csv", "cells.csv.json"},
    "pivot_table": {"table.csv", "cells.csv", "cells.csv.json"},
    "hist": {"figure.png", "histogram.csv", "table.csv", "cells.csv", "cells.csv.json"},
    "ols": {"coefficients.csv", "summary.txt"},
    "logit": {"coefficients.csv", "summary.txt"},
}
FORMULA_START = ("=", "+", "-", "@", "\t", "\r")
# Magic numbers of formats that are not text, to say what a misnamed file really is.
_MAGIC = (
    (b"PK\x03\x04", "a zip archive (or an Office document)"),
    (b"PK\x05\x06", "a zip archive"),
    (b"%PDF", "a PDF document"),
    (b"\x89PNG\r\n\x1a\n", "a PNG image"),
    (b"GIF8", "a GIF image"),
    (b"\xff\xd8\xff", "a JPEG image"),
    (b"\x1f\x8b", "a gzip archive"),
    (b"7z\xbc\xaf\x27\x1c", "a 7-zip archive"),
    (b"Rar!", "a RAR archive"),
    (b"\xd0\xcf\x11\xe0", "an old Office document"),
    (b"\x7fELF", "a program"),
    (b"SQLite format 3", "a SQLite database"),
    (b"DUCK", "a DuckDB database"),
    (b"PAR1", "a Parquet file"),
)
_PNG_END = b"IEND\xaeB`\x82"
_SVG_FORBIDDEN = re.compile(
    rb"<\s*script|<\s*foreignObject|<!ENTITY|<!DOCTYPE|javascript:|\son[a-z]+\s*=|(?:xlink:)?href\s*=\s*[\"'](?!#)",
    re.IGNORECASE,
)
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_BIDI = re.compile(r"[\u202a-\u202e\u2066-\u2069\u200e\u200f\u061c]")


def is_central_only(name: str) -> bool:
    return name in CENTRAL_ONLY or name.startswith(EVIDENCE_PREFIX)


@dataclass
class LeavingFile:
    """One file as it will leave: its bytes, its type, and what officers should know about it."""

    name: str
    data: bytes
    media_type: str
    notes: list[str] = field(default_factory=list)

    def entry(self) -> dict:
        return {
            "name": self.name,
            "sha256": hashlib.sha256(self.data).hexdigest(),
            "size": len(self.data),
            "type": self.media_type,
            "notes": list(self.notes),
        }


# --- sniffing -------------------------------------------------------------------------------


def what_it_is(data: bytes) -> str | None:
    """What a file that is not text is, from its first bytes ("a Parquet file"), or None."""
    for magic, words in _MAGIC:
        if data.startswith(magic):
            return words
    return None


def _text(name: str, data: bytes, kind: str) -> str:
    """The file as UTF-8 text, or UnsafeFile naming what it really is."""
    really = what_it_is(data)
    if really:
        raise UnsafeFile(name, f"is named like {kind} but its content is {really}: it may not leave")
    try:
        text = data.decode("utf-8-sig")
    except UnicodeDecodeError:
        raise UnsafeFile(name, f"is named like {kind} but is not UTF-8 text: it may not leave") from None
    if "\x00" in text:
        raise UnsafeFile(name, f"is named like {kind} but holds binary data (NUL bytes): it may not leave")
    return text


def _text_notes(text: str) -> list[str]:
    notes = []
    if _BIDI.search(text):
        notes.append(
            "contains right-to-left or other direction-changing characters: what is shown may differ from what is written"
        )
    if _CONTROL.search(text):
        notes.append("contains control characters")
    return notes


def neutralise_formulas(text: str) -> tuple[str, int]:
    """The CSV with every cell that a spreadsheet would run as a formula (starting with = + - @,
    a tab or a carriage return, and not a number) prefixed with `'`; and how many there were."""
    rows = list(csv.reader(io.StringIO(text, newline="")))
    changed = 0
    for row in rows:
        for i, cell in enumerate(row):
            if cell.startswith(FORMULA_START) and not _is_number(cell):
                row[i] = "'" + cell
                changed += 1
    if not changed:
        return text, 0
    out = io.StringIO(newline="")
    csv.writer(out, lineterminator="\n").writerows(rows)
    return out.getvalue(), changed


def _is_number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True


def _csv(name: str, data: bytes) -> LeavingFile:
    text = _text(name, data, "a CSV table")
    try:
        neutral, formulas = neutralise_formulas(text)
    except csv.Error as e:
        raise UnsafeFile(name, f"is not a readable CSV table ({e}): it may not leave") from None
    notes = _text_notes(text)
    if formulas:
        notes.append(
            f"{formulas} cell(s) start like spreadsheet formulas (=, +, -, @): they leave neutralised with a leading '"
        )
        return LeavingFile(name, neutral.encode("utf-8"), "text/csv", notes)
    return LeavingFile(name, data, "text/csv", notes)


def _plain(media: str, kind: str) -> Callable[[str, bytes], LeavingFile]:
    def sniff(name: str, data: bytes) -> LeavingFile:
        return LeavingFile(name, data, media, _text_notes(_text(name, data, kind)))

    return sniff


def _png(name: str, data: bytes) -> LeavingFile:
    if not data.startswith(b"\x89PNG\r\n\x1a\n"):
        really = what_it_is(data) or "not a PNG image"
        raise UnsafeFile(name, f"is named like a PNG image but its content is {really}: it may not leave")
    if not data.endswith(_PNG_END):
        raise UnsafeFile(name, "holds data after the end of its PNG image (something appended to it): it may not leave")
    return LeavingFile(name, data, "image/png")


def _svg(name: str, data: bytes) -> LeavingFile:
    text = _text(name, data, "an SVG image")
    if "<svg" not in text:
        raise UnsafeFile(name, "is named like an SVG image but has no <svg> element: it may not leave")
    found = _SVG_FORBIDDEN.search(data)
    if found:
        raise UnsafeFile(
            name,
            "is an SVG image with scripts, event handlers, entities or links to elsewhere "
            f"({found.group().decode('ascii', 'replace').strip()[:20]!r}): export the figure as PNG",
        )
    return LeavingFile(name, data, "image/svg+xml", _text_notes(text))


def _notebook(name: str, data: bytes) -> LeavingFile:
    try:
        notebook = json.loads(_text(name, data, "a notebook"))
    except json.JSONDecodeError:
        raise UnsafeFile(name, "is named like a notebook but is not JSON: it may not leave") from None
    if not (isinstance(notebook, dict) and notebook.get("nbformat") == 4 and isinstance(notebook.get("cells"), list)):
        raise UnsafeFile(name, "is named like a notebook but is not one (nbformat 4 with cells): it may not leave")
    return LeavingFile(name, data, "application/x-ipynb+json")


# The allowlist: by the end of the name, then the content decides.
LEAVING_TYPES: dict[str, Callable[[str, bytes], LeavingFile]] = {
    ".csv": _csv,
    ".txt": _plain("text/plain", "text"),
    ".md": _plain("text/markdown", "Markdown text"),
    ".png": _png,
    ".svg": _svg,
    ".ipynb": _notebook,
}
ALLOWED = ", ".join(s.lstrip(".") for s in LEAVING_TYPES) + " (and a table's .csv.json sidecar)"


def _suffix(name: str) -> str:
    if name.endswith(".csv" + SIDECAR_SUFFIX):
        return ".csv" + SIDECAR_SUFFIX
    dot = name.rfind(".")
    return name[dot:].lower() if dot > 0 else ""


def build_leaving_files(
    files: dict[str, bytes], *, call: str, arguments: dict, name: str, label: str
) -> list[LeavingFile]:
    """The files of one output as they will leave, from its central copy's `files` (name ->
    bytes, central-only ones left out): each checked against the allowlist by its content,
    CSV formulas neutralised, sidecars rebuilt. Raises UnsafeFile for a file that may not leave."""
    leaving: dict[str, LeavingFile] = {}
    sidecars = []
    for filename, data in sorted(files.items()):
        suffix = _suffix(filename)
        if suffix == ".csv" + SIDECAR_SUFFIX:
            sidecars.append(filename)
            continue
        sniff = LEAVING_TYPES.get(suffix)
        if sniff is None:
            kind = f"a {suffix} file" if suffix else "a file without an extension"
            if suffix == ".json":
                kind = "JSON other than a table's sidecar"
            raise UnsafeFile(filename, f"is {kind}, which may not leave: outputs leave as {ALLOWED}")
        leaving[filename] = sniff(filename, data)
    for filename in sidecars:
        table = filename[: -len(SIDECAR_SUFFIX)]
        if table not in leaving:
            raise UnsafeFile(filename, f"is a sidecar without its table {table}: it may not leave")
        leaving[filename] = _sidecar(filename, files[filename], leaving[table], name, label)
    expected = EXPECTED_FILES.get(call) or ({arguments.get("filename")} if call == "custom_output" else set())
    for f in leaving.values():
        if expected and f.name not in expected:
            f.notes.append(f"not a file tre.safe.{call} makes: ask the author why it is here")
    return [leaving[n] for n in sorted(leaving)]


_SIDECAR_TEXT = ("value_column", "statistic", "total_label", "suppressed", "parameters_version")


def _sidecar(filename: str, data: bytes, table: LeavingFile, name: str, label: str) -> LeavingFile:
    """The sidecar rebuilt from the fields the differencing check reads, nothing else."""
    try:
        given = json.loads(_text(filename, data, "a table's sidecar"))
    except json.JSONDecodeError:
        given = None
    if not isinstance(given, dict) or given.get("format") != SIDECAR_FORMAT:
        raise UnsafeFile(filename, f"is JSON but not a table's sidecar ({SIDECAR_FORMAT}): it may not leave")
    dims = given.get("dimensions")
    if not (isinstance(dims, list) and all(isinstance(d, str) for d in dims)):
        raise UnsafeFile(filename, "is a sidecar without a list of dimensions: queue the table again")
    rounding = given.get("rounding")
    if rounding is not None:
        rounding = {"method": str(rounding.get("method")), "base": int(rounding.get("base"))}
    rebuilt = {
        "format": SIDECAR_FORMAT,
        "name": f"{label}/{name}",
        "dimensions": [str(d) for d in dims],
        **{k: str(given[k]) for k in _SIDECAR_TEXT if isinstance(given.get(k), str | int | float)},
        "rounding": rounding,
        "sha256": hashlib.sha256(table.data).hexdigest(),
        "release": label,
        "request": label,
    }
    return LeavingFile(filename, (json.dumps(rebuilt, indent=2) + "\n").encode("utf-8"), "application/json")


# --- the redacted check record ----------------------------------------------------------------


_HIDDEN = {"primary", "secondary", "merged"}
# What a reader may know of a cell. Whether a hidden cell failed a check itself or was hidden to
# protect another, or which check flagged a cell shown rounded, is a fact about its true value
# (a primary count is 1..threshold-1, a midpoint-rounded 3 flagged MinimumThreshold is 1..4):
# publishing it narrows what the suppression and the rounding keep open. Officers see it centrally.
PUBLIC_STATUS = {
    "ok": "published",
    "rounded": "rounded",
    "primary": "hidden",
    "secondary": "hidden",
    "merged": "merged",
}


def build_check_record(name: str, report: dict) -> dict:
    """What leaves of an output's check: which checks ran and what they found (by name and in
    plain words), the parameters, and per cell its key, the published value, what happened to
    it (published, rounded, hidden, merged) and, for the table as a whole, why. Never a hidden
    cell's value, an unrounded value, units, intervals or messages, nor which check flagged which
    cell (see PUBLIC_STATUS): fields are copied by name, so nothing new in a report can slip out."""
    recheck = report.get("recheck") or {}
    status = recheck.get("status") or report.get("status")
    findings = [*report.get("findings", []), *recheck.get("findings", [])]
    checks: dict[tuple[str, str], int] = {}
    for f in findings:
        key = (str(f.get("check")), str(f.get("status")))
        checks[key] = checks.get(key, 0) + 1
    record = {
        "format": RECORD_FORMAT,
        "output": name,
        "kind": report.get("kind"),
        "status": status,
        "parameters": {k: v for k, v in (report.get("parameters") or {}).items() if isinstance(v, int | float | str)},
        "checks": [
            {"check": check, "status": st, "meaning": _meaning(check)}
            for (check, st) in sorted(checks)
            if st != Status.PASS
        ],
    }
    if isinstance(report.get("dimensions"), list):
        record["dimensions"] = [str(d) for d in report["dimensions"]]
    for key, known in (("statistic", STATISTICS), ("method", METHODS)):
        if report.get(key) in known:
            record[key] = report[key]
    cells = report.get("cells") or []
    if cells:
        record["cells"] = [_cell(c) for c in cells]
        record["hidden"] = {
            status: sum(1 for c in record["cells"] if c["status"] == status)
            for status in ("hidden", "merged", "rounded")
        }
    if report.get("outputs"):
        record["notebook_outputs"] = [
            {
                "cell": o.get("cell"),
                "type": o.get("type"),
                "status": o.get("status"),
                "checks": sorted({str(f.get("check")) for f in o.get("findings", [])}),
            }
            for o in report["outputs"]
        ]
    if isinstance(report.get("residual_dof"), int | float) and not isinstance(report["residual_dof"], bool):
        record["residual_dof"] = report["residual_dof"]
    record["summary"] = build_record_summary(record)
    return record


def _meaning(check: str) -> str:
    try:
        return EXPLANATIONS[Check(check)]
    except (ValueError, KeyError):
        return ""


def _cell(cell: dict) -> dict:
    status = str(cell.get("status"))
    published = None if status in _HIDDEN else cell.get("published")
    if published is not None and not isinstance(published, int | float):
        published = None
    return {
        "key": {str(k): str(v) for k, v in (cell.get("key") or {}).items()},
        "published": published,
        "status": PUBLIC_STATUS.get(status, "hidden") if published is None or status != "ok" else "published",
    }


def build_record_summary(record: dict) -> str:
    """One line from the record alone: the status and what was hidden, in counts."""
    parts = []
    hidden = record.get("hidden")
    if hidden:
        total = len(record.get("cells", []))
        if hidden["hidden"]:
            parts.append(
                f"{hidden['hidden']} of {total} cells hidden (too small, dominated, or to protect those; "
                "which is which is not published)"
            )
        if hidden["merged"]:
            parts.append(f"{hidden['merged']} merged into another category")
        if hidden["rounded"]:
            parts.append(f"{hidden['rounded']} published rounded")
    failing = sorted({c["check"] for c in record["checks"] if c["status"] in (Status.FAIL, Status.REVIEW)})
    if failing:
        parts.append("needed a person's judgement: " + ", ".join(failing))
    return f"{record['status']}: " + ("; ".join(parts) if parts else "published as computed")
