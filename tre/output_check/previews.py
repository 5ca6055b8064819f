"""What a reviewer sees of an output's files: tables, figures, text, rendered notebooks, and
the check report.

`build_previews` reads an output's folder (regular files only) and returns one preview per file
a person should look at; the check reports, meta.json and the tables' sidecars are listed with
the output, not previewed. Notebooks are rendered with nbconvert, outputs included, so the
reviewer sees what would leave. Officers are not members of the project: every pseudonym and
ID number in what they are shown is redacted (the check has already failed such an output).
The check report is rendered here from the report the request holds, never taken from the
project's report.html (a file the project could write).
"""

from __future__ import annotations

import datetime as dt
import stat
from dataclasses import dataclass, field
from pathlib import Path

from tre.errors import NotFound, UserError
from tre.output_check.checks import Finding
from tre.output_check.kinds import Check, OutputKind, Status
from tre.output_check.leaks import redact_text
from tre.output_check.notebooks import render_notebook_html
from tre.output_check.parameters import Parameters
from tre.output_check.reports import Report, render_html
from tre.output_check.sources import read_csv

NOT_PREVIEWED = frozenset({"report.json", "report.html", "meta.json"})  # central-only: never among leaving files
IMAGES = {
    ".png": "image/png",
    ".jpg": "image/jpeg",
    ".jpeg": "image/jpeg",
    ".gif": "image/gif",
    ".svg": "image/svg+xml",
}
TEXTS = {".txt", ".md", ".json", ".csv", ".tsv", ".log", ".html", ".tex"}
MAX_ROWS = 200
MAX_TEXT = 20_000


@dataclass
class Preview:
    name: str
    kind: str  # table, image, text, notebook, binary
    columns: list[str] = field(default_factory=list)
    rows: list[list[str]] = field(default_factory=list)
    total_rows: int = 0
    text: str = ""
    media_type: str = ""


def is_previewed(name: str) -> bool:
    """Every file that leaves is previewed, a table's sidecar too."""
    return name not in NOT_PREVIEWED


def build_previews(directory: Path, names: list[str], pseudonyms: frozenset[str] = frozenset()) -> list[Preview]:
    """A preview of each of `names` (files of the output folder `directory`) worth a look."""
    previews = []
    for name in names:
        if not is_previewed(name):
            continue
        path = regular_file(directory, name)
        suffix = path.suffix.lower()
        if suffix in (".csv", ".tsv"):
            try:
                frame = read_csv(path)
            except UserError:
                previews.append(Preview(name, "text", text=redact_text(_head(path), pseudonyms)))
                continue
            rows = [
                [redact_text(v, pseudonyms) for v in row]
                for row in frame.head(MAX_ROWS).fillna("").astype(str).values.tolist()
            ]
            columns = [redact_text(str(c), pseudonyms) for c in frame.columns]
            previews.append(Preview(name, "table", columns=columns, rows=rows, total_rows=len(frame)))
        elif suffix in IMAGES:
            previews.append(Preview(name, "image", media_type=IMAGES[suffix]))
        elif suffix == ".ipynb":
            previews.append(Preview(name, "notebook"))
        elif suffix in TEXTS:
            previews.append(Preview(name, "text", text=redact_text(_head(path), pseudonyms)))
        else:
            previews.append(Preview(name, "binary", text=f"{path.stat().st_size} bytes"))
    return previews


def regular_file(directory: Path, name: str) -> Path:
    """`directory/name` if it is a regular file inside `directory`, never through a link."""
    path = Path(directory) / name
    try:
        inside = path.resolve().is_relative_to(Path(directory).resolve())
        regular = stat.S_ISREG(path.lstat().st_mode)
    except OSError:
        inside = regular = False
    if not (inside and regular) or ".." in Path(name).parts:
        raise NotFound(f"no file {name!r} in output {Path(directory).name}")
    return path


def render_notebook(path: Path, pseudonyms: frozenset[str] = frozenset()) -> str:
    """The notebook as one HTML page with its outputs, scripts removed, pseudonyms redacted."""
    body = redact_text(render_notebook_html(path), pseudonyms)
    return (
        f"<!doctype html><html lang='en'><head><meta charset='utf-8'><title>{path.name}</title>"
        f"<style>{_NOTEBOOK_CSS}</style></head><body>{body}</body></html>"
    )


_NOTEBOOK_CSS = """
body { font-family: system-ui, sans-serif; margin: 1em; color: #222; }
.jp-InputArea, .input_area, .jp-InputArea-editor { background: #f5f6f8; }
pre { white-space: pre-wrap; margin: .3em 0; } table { border-collapse: collapse; }
td, th { border: 1px solid #ccc; padding: .15em .5em; } img { max-width: 100%; }
.jp-InputPrompt, .jp-OutputPrompt { color: #888; font-size: .8em; }
"""

_CORE = {"format", "kind", "status", "summary", "parameters", "inputs", "findings", "checked_at", "checks", "cells"}


def render_report(stored: dict, title: str) -> str:
    """The check report page of a request's output, from the report the request holds: the
    queued check with the findings of the re-check made when it was added."""
    recheck = stored.get("recheck") or {}
    findings = recheck.get("findings", stored.get("findings", []))
    report = Report(
        kind=OutputKind(stored["kind"]),
        status=Status(recheck.get("status", stored["status"])),
        parameters=Parameters(**stored["parameters"]),
        findings=[Finding(_check(f["check"]), Status(f["status"]), f["message"]) for f in findings],
        cells=stored.get("cells", []),
        inputs=stored.get("inputs", []),
        details={k: v for k, v in stored.items() if k not in _CORE and k != "recheck"},
        checked_at=dt.datetime.fromisoformat(stored["checked_at"]) if stored.get("checked_at") else None,
    )
    return render_html(report, title)


def report_height(stored: dict) -> int:
    """Pixels the report frame needs to show the whole report: its table (every layer of a
    3-D table), findings, coefficients and notebook outputs. Pages run no scripts, so the
    frame cannot size itself."""
    cells = [c for c in stored.get("cells") or [] if c.get("status") != "merged"]
    findings = len((stored.get("recheck") or {}).get("findings", stored.get("findings", [])))
    rows = 0
    if cells:
        dims = stored.get("dimensions") or list(cells[0].get("key", {}))
        cats = [len({str(c["key"].get(d)) for c in cells}) for d in dims]
        if len(cats) == 1:
            rows = cats[0] + 1
        else:
            layers = 1
            for n in cats[:-2]:
                layers *= n
            rows = layers * (cats[-2] + 3)
    rows += len(stored.get("coefficients") or []) + 2 * len(stored.get("outputs") or [])
    height = 520 + 31 * rows + 40 * findings + 22 * len(stored.get("parameters") or {})
    return min(height, 40_000)


def _check(name: str) -> Check:
    try:
        return Check(name)
    except ValueError:
        return Check.UNCHECKED_CONTENT


def read_text(path: Path, pseudonyms: frozenset[str]) -> str:
    """A text file as a reviewer may see it (redacted)."""
    return redact_text(path.read_text(encoding="utf-8", errors="replace"), pseudonyms)


def _head(path: Path) -> str:
    with open(path, encoding="utf-8", errors="replace") as f:
        text = f.read(MAX_TEXT + 1)
    return text[:MAX_TEXT] + ("\n…" if len(text) > MAX_TEXT else "")
