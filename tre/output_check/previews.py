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
import html
import re
import stat
from dataclasses import dataclass, field
from html.parser import HTMLParser
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


# What of a report page may stand in the review page itself: its structure, no styles, no links.
_REPORT_TAGS = frozenset(
    {
        "h4",
        "h5",
        "h6",
        "p",
        "ul",
        "ol",
        "li",
        "b",
        "i",
        "em",
        "strong",
        "code",
        "pre",
        "small",
        "br",
        "span",
        "table",
        "thead",
        "tbody",
        "tr",
        "th",
        "td",
        "dl",
        "dt",
        "dd",
    }
)
_REPORT_ATTRIBUTES = frozenset({"class", "title", "colspan", "rowspan"})
# The report's headings sit under the output's (h2) and "Check report" (h3).
_HEADINGS = {"h1": "h4", "h2": "h5", "h3": "h6"}
_COLOUR = re.compile(r"^\s*(background|color)\s*:\s*#([0-9a-fA-F]{6})\s*;?\s*$")


class _Fragment(HTMLParser):
    """A report page's body rebuilt from an allow-list of tags and attributes; a colour given
    in a style attribute becomes a class (`bg-f4b6b6`, `fg-c62828`) the page's stylesheet
    paints, so the page keeps `style-src 'self'`."""

    def __init__(self):
        super().__init__(convert_charrefs=True)
        self.parts: list[str] = []
        self.skip = 0  # inside <head>, <style>, <script>, <title>

    def handle_starttag(self, tag, attrs):
        tag = _HEADINGS.get(tag, tag)
        if tag in ("head", "style", "script", "title"):
            self.skip += 1
            return
        if self.skip or tag not in _REPORT_TAGS:
            return
        classes, kept = [], []
        for name, value in attrs:
            value = value or ""
            if name == "style":
                colour = _COLOUR.match(value)
                if colour:
                    classes.append(("bg-" if colour.group(1) == "background" else "fg-") + colour.group(2).lower())
            elif name == "class":
                classes += value.split()
            elif name in _REPORT_ATTRIBUTES:
                kept.append(f' {name}="{html.escape(value)}"')
        if classes:
            kept.insert(0, f' class="{html.escape(" ".join(classes))}"')
        self.parts.append(f"<{tag}{''.join(kept)}>")

    def handle_endtag(self, tag):
        tag = _HEADINGS.get(tag, tag)
        if tag in ("head", "style", "script", "title"):
            self.skip = max(0, self.skip - 1)
        elif not self.skip and tag in _REPORT_TAGS and tag != "br":
            self.parts.append(f"</{tag}>")

    def handle_data(self, data):
        if not self.skip:
            self.parts.append(html.escape(data, quote=False))


def report_fragment(stored: dict, title: str) -> str:
    """The check report as HTML to stand in the review page whole (no frame to cut it): the
    report page, rebuilt from an allow-list of tags and attributes (see `_Fragment`)."""
    parser = _Fragment()
    parser.feed(render_report(stored, title))
    parser.close()
    return "".join(parser.parts)


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
