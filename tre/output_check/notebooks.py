"""Whole notebooks and single files: every output a reader would see, checked.

A notebook is read as nbconvert renders it: each code cell's outputs. An HTML table (a
displayed DataFrame) is checked as a table; a table shown by `tre.safe` is matched with the
output it queued and takes that output's verdict; text (printed output, results, errors)
is checked for leaks; an image is checked through the table shown with it, and without one
it needs a person (`review`).
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import json
import re
from html.parser import HTMLParser
from pathlib import Path

import numpy as np
import pandas as pd

from tre.errors import UserError
from tre.output_check.assessments import build_frame_findings, combine_status
from tre.output_check.checks import Finding
from tre.output_check.kinds import Check, OutputKind, Status
from tre.output_check.leaks import count_identity_numbers, count_pseudonyms, redact_text
from tre.output_check.parameters import Parameters
from tre.output_check.reports import Report, input_record, render_html
from tre.output_check.sources import read_csv

IMAGE_TYPES = ("image/png", "image/jpeg", "image/svg+xml", "image/gif")
TEXT_TYPES = ("text/plain", "text/markdown", "text/latex", "application/json")
SAFE_MARKER = re.compile(r'data-tre-output="([A-Za-z0-9_.-]+)"')
TABLE_SUFFIXES = (".csv",)
IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".svg", ".gif", ".pdf")
TEXT_SUFFIXES = (".txt", ".md", ".html", ".htm", ".json", ".tex", ".log")


class NotebookError(UserError):
    """A notebook that cannot be read."""


def read_notebook(path: Path) -> dict:
    import nbformat

    try:
        return nbformat.read(str(path), as_version=4)
    except FileNotFoundError:
        raise NotebookError(f"no such notebook: {path}") from None
    except Exception as e:  # nbformat raises several kinds for a broken file
        raise NotebookError(
            f"cannot read {path} as a notebook ({e.__class__.__name__}): is it an .ipynb file?"
        ) from None


def build_notebook_report(
    path: Path,
    params: Parameters,
    pseudonyms: frozenset[str],
    *,
    queue_dir: Path | None = None,
    now: dt.datetime | None = None,
) -> Report:
    """Check every output of the notebook at `path`."""
    notebook = read_notebook(path)
    outputs = []
    for number, cell in enumerate(notebook.cells, start=1):
        if cell.get("cell_type") != "code":
            # markdown is written by the researcher, but may still paste a leaked value
            text_findings = _text_findings(cell.get("source", ""), pseudonyms, f"markdown cell {number}")
            if text_findings:
                outputs.append(_output(number, "markdown", text_findings))
            continue
        for output in cell.get("outputs", []):
            outputs.extend(_check_output(number, output, params, pseudonyms, queue_dir))
    status = combine_status(o["status"] for o in outputs) if outputs else Status.PASS
    findings = [
        Finding(Check(f["check"]), Status(f["status"]), f["message"])
        for o in outputs
        for f in o["findings"]
        if f["status"] != Status.PASS
    ]
    return Report(
        kind=OutputKind.NOTEBOOK,
        status=status,
        parameters=params,
        findings=findings,
        inputs=[input_record(path)],
        details={"outputs": outputs, "notebook_cells": len(notebook.cells)},
        checked_at=now,
    )


def render_notebook_html(path: Path) -> str:
    """The notebook as nbconvert renders it (basic template, images inline, no scripts)."""
    from nbconvert import HTMLExporter

    exporter = HTMLExporter(template_name="basic")
    body, _ = exporter.from_notebook_node(read_notebook(path))
    return re.sub(r"<script\b.*?</script>", "", body, flags=re.S | re.I)


def render_notebook_report_html(report: Report, path: Path, pseudonyms: frozenset[str]) -> str:
    """The report page with the rendered notebook below it (in a sandboxed frame), every
    pseudonym and ID number in it redacted."""
    page = render_html(report, f"Notebook {path.name}")
    rendered = redact_text(render_notebook_html(path), pseudonyms)
    frame = (
        "<h2>The notebook as rendered</h2><iframe sandbox style='width:100%;height:60em;border:1px solid #bbb' "
        f'srcdoc="{html.escape(rendered, quote=True)}"></iframe>'
    )
    return page.replace("</body></html>", frame + "</body></html>")


def _output(cell: int, kind: str, findings: list[Finding], extra: dict | None = None) -> dict:
    status = combine_status(f.status for f in findings) if findings else Status.PASS
    return {
        "cell": cell,
        "type": kind,
        "status": str(status),
        "findings": [f.as_dict() for f in findings],
        **(extra or {}),
    }


def _check_output(number, output, params, pseudonyms, queue_dir) -> list[dict]:
    kind = output.get("output_type")
    if kind == "stream":
        return [_output(number, "text", _text_findings(_text(output.get("text", "")), pseudonyms, f"cell {number}"))]
    if kind == "error":
        text = "\n".join(output.get("traceback", [])) + output.get("evalue", "")
        return [_output(number, "error", _text_findings(text, pseudonyms, f"cell {number} (error)"))]
    data = output.get("data", {})
    results = []
    tables = []
    if "text/html" in data:
        markup = _text(data["text/html"])
        results.extend(_text_findings(_visible_text(markup), pseudonyms, f"cell {number}"))
        tables = parse_html_tables(markup)
        for i, frame in enumerate(tables, start=1):
            where = f"cell {number}, table {i}"
            results.extend(_table_findings(frame, markup, params, pseudonyms, queue_dir, where))
    else:
        for mime in TEXT_TYPES:
            if mime in data:
                results.extend(_text_findings(_text(data[mime]), pseudonyms, f"cell {number}"))
                break
    images = [m for m in IMAGE_TYPES if m in data]
    if images:
        if not tables:
            results.append(
                Finding(
                    Check.UNCHECKED_IMAGE,
                    Status.REVIEW,
                    f"cell {number}: an image without the table it was drawn from; a person must check it "
                    "(draw figures with safe.hist to have them checked)",
                )
            )
        if "image/svg+xml" in data:
            results.extend(_text_findings(_text(data["image/svg+xml"]), pseudonyms, f"cell {number} (image)"))
    kind_name = "image" if images else "table" if tables else "text"
    return [_output(number, kind_name, results)]


def _table_findings(frame, markup, params, pseudonyms, queue_dir, where) -> list[Finding]:
    marker = SAFE_MARKER.search(markup)
    if marker and queue_dir is not None:
        queued = _queued_verdict(queue_dir / marker.group(1), frame, where)
        if queued is not None:
            return queued
    return build_frame_findings(frame, params, pseudonyms, where)


def _queued_verdict(directory: Path, shown: pd.DataFrame, where: str) -> list[Finding] | None:
    """The verdict of the queued tre.safe output this table was shown from, if the numbers match."""
    try:
        meta = json.loads((directory / "meta.json").read_text(encoding="utf-8"))
        report = json.loads((directory / "report.json").read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError):
        return None
    if meta.get("shown_fingerprint") != table_fingerprint(shown):
        return None  # the table shown is not the table checked
    return [
        Finding(
            Check(f["check"]), Status(f["status"]), f"{where}, shown by tre.safe as {directory.name}: {f['message']}"
        )
        for f in report.get("findings", [])
        if f["status"] != Status.PASS
    ]


def table_fingerprint(frame: pd.DataFrame) -> str:
    """The numbers a table shows (not its labels), rounded as a notebook displays them, hashed."""
    values = frame.apply(pd.to_numeric, errors="coerce").to_numpy(dtype=float, na_value=np.nan).ravel()
    values = values[~np.isnan(values)]
    text = ",".join(f"{v:.4f}" for v in sorted(np.round(values, 4).tolist()))
    return hashlib.sha256(text.encode()).hexdigest()


def _text_findings(text: str, pseudonyms: frozenset[str], where: str) -> list[Finding]:
    text = _text(text)
    findings = []
    pseud = count_pseudonyms(text, pseudonyms)
    if pseud:
        findings.append(
            Finding(Check.PSEUDONYM, Status.FAIL, f"{where}: {pseud} of the project's pseudonyms in the text")
        )
    ident = count_identity_numbers(text)
    if ident:
        findings.append(
            Finding(Check.IDENTITY_NUMBER, Status.FAIL, f"{where}: {ident} value(s) shaped like national ID numbers")
        )
    return findings


def _text(value) -> str:
    return "".join(value) if isinstance(value, list) else str(value)


def _visible_text(markup: str) -> str:
    return html.unescape(re.sub(r"<[^>]+>", " ", markup))


class _TableParser(HTMLParser):
    """Rows of cell texts of every <table>, with colspan and rowspan spread out."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.tables: list[list[list[tuple[str, bool]]]] = []
        self._depth = 0
        self._row: list | None = None
        self._cell: list[str] | None = None
        self._cell_attrs: dict = {}
        self._pending: dict[int, list] = {}  # column -> [text, is_header, rows left]

    def handle_starttag(self, tag, attrs):
        attrs = dict(attrs)
        if tag == "table":
            self._depth += 1
            if self._depth == 1:
                self.tables.append([])
                self._pending = {}
        elif self._depth == 1 and tag == "tr":
            self._row = []
        elif self._depth == 1 and tag in ("td", "th") and self._row is not None:
            self._cell = []
            self._cell_attrs = {"header": tag == "th", **attrs}

    def handle_endtag(self, tag):
        if tag == "table":
            self._depth -= 1
        elif self._depth == 1 and tag in ("td", "th") and self._cell is not None and self._row is not None:
            text = " ".join("".join(self._cell).split())
            self._fill_pending()
            span = int(self._cell_attrs.get("colspan", 1) or 1)
            rows = int(self._cell_attrs.get("rowspan", 1) or 1)
            for _ in range(span):
                if rows > 1:
                    self._pending[len(self._row)] = [text, self._cell_attrs["header"], rows - 1]
                self._row.append((text, self._cell_attrs["header"]))
            self._cell = None
        elif self._depth == 1 and tag == "tr" and self._row is not None:
            self._fill_pending()
            self.tables[-1].append(self._row)
            self._row = None

    def _fill_pending(self):
        while len(self._row) in self._pending:
            text, header, left = self._pending[len(self._row)]
            self._row.append((text, header))
            if left <= 1:
                del self._pending[len(self._row) - 1]
            else:
                self._pending[len(self._row) - 1][2] = left - 1

    def handle_data(self, data):
        if self._cell is not None:
            self._cell.append(data)


def parse_html_tables(markup: str) -> list[pd.DataFrame]:
    """Every table in `markup` as a DataFrame of texts: header cells (th) of leading columns
    become the index, rows made only of headers become the column labels."""
    parser = _TableParser()
    parser.feed(markup)
    frames = []
    for rows in parser.tables:
        rows = [r for r in rows if r]
        if not rows:
            continue
        header_rows = [r for r in rows if all(h for _, h in r)]
        body = [r for r in rows if not all(h for _, h in r)]
        if not body:
            body, header_rows = header_rows[1:], header_rows[:1]
        n_index = min((next((i for i, (_, h) in enumerate(r) if not h), len(r)) for r in body), default=0)
        width = max(len(r) for r in body) if body else 0
        columns = [
            " / ".join(r[j][0] for r in header_rows if j < len(r) and r[j][0])
            for j in range(n_index, max((len(r) for r in header_rows), default=0))
        ]
        columns = (columns + [f"column {i}" for i in range(len(columns), width - n_index)])[: width - n_index]
        data = [[t for t, _ in r[n_index:]] + [""] * (width - len(r)) for r in body]
        index = [" / ".join(t for t, _ in r[:n_index]) for r in body]
        frames.append(pd.DataFrame(data, columns=_unique(columns), index=index))
    return frames


def _unique(names: list[str]) -> list[str]:
    seen: dict[str, int] = {}
    out = []
    for n in names:
        seen[n] = seen.get(n, 0) + 1
        out.append(n if seen[n] == 1 else f"{n} ({seen[n]})")
    return out


# --- single files --------------------------------------------------------------------------


def build_file_report(
    path: Path, params: Parameters, pseudonyms: frozenset[str], *, now: dt.datetime | None = None
) -> Report:
    """Check a file of unknown meaning: a CSV as a table, text for leaks, an image for a person."""
    path = Path(path)
    if not path.is_file():
        raise UserError(f"no such file: {path}")
    suffix = path.suffix.lower()
    where = path.name
    if suffix in TABLE_SUFFIXES:
        findings = build_frame_findings(read_csv(path), params, pseudonyms, where)
        if not any(f.status in (Status.FAIL, Status.REVIEW) for f in findings):
            findings.append(
                Finding(
                    Check.UNCHECKED_CONTENT,
                    Status.REVIEW,
                    f"{where}: a table made outside tre.safe (no margins protected, no earlier release compared): "
                    "a person must check it",
                )
            )
    elif suffix in IMAGE_SUFFIXES:
        findings = [
            Finding(Check.UNCHECKED_IMAGE, Status.REVIEW, f"{where}: an image without its data; a person must check it")
        ]
        if suffix == ".svg":
            findings += _text_findings(path.read_text(encoding="utf-8", errors="replace"), pseudonyms, where)
    elif suffix == ".ipynb":
        return build_notebook_report(path, params, pseudonyms, now=now)
    else:
        raw = path.read_bytes()
        text = raw.decode("utf-8", errors="replace")
        findings = _text_findings(text, pseudonyms, where)
        if suffix not in TEXT_SUFFIXES:
            findings.append(
                Finding(
                    Check.UNCHECKED_CONTENT,
                    Status.REVIEW,
                    f"{where}: a {suffix or 'binary'} file; a person must check it",
                )
            )
        else:
            findings.append(
                Finding(Check.UNCHECKED_CONTENT, Status.REVIEW, f"{where}: free text; a person must read it")
            )
    status = combine_status(f.status for f in findings) if findings else Status.PASS
    return Report(
        kind=OutputKind.FILE,
        status=status,
        parameters=params,
        findings=findings,
        inputs=[input_record(path)],
        checked_at=now,
    )
