"""Check reports: one machine-readable JSON document and one self-contained HTML page per output.

The JSON (`Report.as_dict`) is the contract other parts of `tre` read: `status`,
`parameters`, `cells` (tables), `findings`, `inputs` with their sha256. The HTML page shows
the same for people: the table with cells coloured by status and the reasons in plain words.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import html
import itertools
import json
from dataclasses import dataclass, field
from pathlib import Path

from tre.output_check.checks import Finding
from tre.output_check.kinds import EXPLANATIONS, TOTAL, Check, OutputKind, Status
from tre.output_check.parameters import Parameters

FORMAT = "tre-output-check/1"


@dataclass
class Report:
    kind: OutputKind
    status: Status
    parameters: Parameters
    findings: list[Finding]
    cells: list[dict] = field(default_factory=list)
    inputs: list[dict] = field(default_factory=list)  # {"name": ..., "sha256": ...}
    details: dict = field(default_factory=dict)
    checked_at: dt.datetime | None = None

    def summary(self) -> str:
        """One line: the status and the reasons that decided it."""
        deciding = [f.message for f in self.findings if f.status != Status.PASS]
        if not deciding:
            protected = [f.message for f in self.findings]
            return f"{self.status}: " + ("; ".join(protected) if protected else "no check failed")
        return (
            f"{self.status}: "
            + "; ".join(deciding[:3])
            + (f" (and {len(deciding) - 3} more)" if len(deciding) > 3 else "")
        )

    def check_counts(self) -> dict[str, int]:
        counts: dict[str, int] = {}
        for cell in self.cells:
            for check in cell["checks"]:
                counts[check] = counts.get(check, 0) + 1
        return counts

    def as_dict(self) -> dict:
        moment = self.checked_at or dt.datetime.now(dt.UTC)
        data = {
            "format": FORMAT,
            "kind": str(self.kind),
            "status": str(self.status),
            "summary": self.summary(),
            "parameters": self.parameters.as_dict(),
            "inputs": self.inputs,
            "findings": [f.as_dict() for f in self.findings],
            "checked_at": moment.astimezone(dt.UTC).isoformat(timespec="seconds"),
            **self.details,
        }
        if self.cells or self.kind in (OutputKind.FREQUENCY, OutputKind.MAGNITUDE, OutputKind.RATE):
            data["checks"] = self.check_counts()
            data["cells"] = self.cells
        return data


def sha256_file(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as f:
        for block in iter(lambda: f.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def input_record(path: Path, name: str | None = None) -> dict:
    return {"name": name or Path(path).name, "sha256": sha256_file(path)}


def write_json(report: Report | dict, path: Path) -> None:
    data = report.as_dict() if isinstance(report, Report) else report
    path.write_text(json.dumps(data, indent=2, ensure_ascii=False, default=str) + "\n", encoding="utf-8")


# --- HTML ---------------------------------------------------------------------------------

_COLOURS = {
    "ok": "#ffffff",
    "primary": "#f4b6b6",
    "secondary": "#f9d9a8",
    "merged": "#cfe0f5",
    "rounded": "#e3efd9",
}
_STATUS_COLOURS = {"pass": "#2e7d32", "protected": "#1565c0", "fail": "#c62828", "review": "#ef6c00"}
_CSS = """
body { font-family: system-ui, sans-serif; margin: 2em; color: #222; }
h1 { font-size: 1.4em; } h2 { font-size: 1.1em; margin-top: 1.5em; }
.badge { display: inline-block; padding: .2em .7em; border-radius: .3em; color: white; font-weight: bold; }
table.grid { border-collapse: collapse; margin: .5em 0 1em; }
table.grid th, table.grid td { border: 1px solid #bbb; padding: .25em .6em; text-align: right; }
table.grid th { background: #f3f3f3; }
td.total, th.total { font-weight: bold; }
td.flagged { outline: 2px solid #c62828; outline-offset: -3px; }
.true { color: #777; font-size: .8em; display: block; }
.legend span { display: inline-block; padding: .1em .6em; margin-right: .5em; border: 1px solid #bbb; }
ul.findings li.fail { color: #c62828; } ul.findings li.review { color: #ef6c00; }
ul.findings li.protected { color: #1565c0; }
table.params td { padding: .1em .8em; border-bottom: 1px solid #eee; }
"""


def render_html(report: Report, title: str) -> str:
    """The report as one self-contained HTML page (no scripts, no external assets)."""
    data = report.as_dict()
    parts = [
        "<!doctype html><html lang='en'><head><meta charset='utf-8'>",
        f"<title>{_e(title)}: {data['status']}</title><style>{_CSS}</style></head><body>",
        f"<h1>{_e(title)} <span class='badge' style='background:{_STATUS_COLOURS[data['status']]}'>"
        f"{data['status']}</span></h1>",
        f"<p>{_e(_kind_words(report))}. Checked {data['checked_at']} with parameters version "
        f"{_e(report.parameters.version)}.</p>",
        "<h2>Why</h2>",
        _findings_html(report.findings),
    ]
    if report.cells:
        parts += ["<h2>The table</h2>", _legend(), _grids_html(report)]
    if "coefficients" in data:
        parts += ["<h2>Coefficients</h2>", _records_html(data["coefficients"])]
    if "outputs" in data:
        parts += ["<h2>Outputs</h2>", _outputs_html(data["outputs"])]
    parts += ["<h2>Parameters</h2>", _params_html(report.parameters.as_dict())]
    if report.inputs:
        parts += (
            ["<h2>Inputs</h2><ul>"]
            + [f"<li>{_e(i['name'])}: sha256 <code>{_e(i['sha256'])}</code></li>" for i in report.inputs]
            + ["</ul>"]
        )
    parts.append("</body></html>")
    return "\n".join(parts)


def _e(text) -> str:
    return html.escape(str(text))


def _kind_words(report: Report) -> str:
    words = {
        OutputKind.FREQUENCY: "A frequency table",
        OutputKind.MAGNITUDE: "A magnitude table",
        OutputKind.RATE: "A table of rates",
        OutputKind.REGRESSION: "A regression",
        OutputKind.FIGURE: "A figure, checked through the table it was drawn from",
        OutputKind.NOTEBOOK: "A notebook, every output checked",
        OutputKind.FILE: "A file",
    }[report.kind]
    method = report.details.get("method")
    if method:
        words += f", protected by {method}"
    return words


def _findings_html(findings: list[Finding]) -> str:
    if not findings:
        return "<p>No check failed.</p>"
    items = [f"<li class='{f.status}'><b>{_e(f.check)}</b> ({f.status}): {_e(f.message)}</li>" for f in findings]
    return "<ul class='findings'>" + "".join(items) + "</ul>"


def _legend() -> str:
    names = {
        "ok": "published",
        "primary": "fails a check (suppressed when protected)",
        "secondary": "suppressed to protect another cell",
        "merged": "merged into the other category",
        "rounded": "published rounded",
    }
    return (
        "<p class='legend'>"
        + "".join(f"<span style='background:{_COLOURS[k]}'>{_e(v)}</span>" for k, v in names.items())
        + "</p>"
    )


def _grids_html(report: Report) -> str:
    dims = report.details.get("dimensions") or list(report.cells[0]["key"])
    cells = [c for c in report.cells if c["status"] != "merged"]
    merged = [c for c in report.cells if c["status"] == "merged"]
    by_key = {tuple(c["key"][d] for d in dims): c for c in cells}
    cats = [_ordered(c["key"][d] for c in cells) for d in dims]
    out = []
    if len(dims) == 1:
        out.append(_grid(by_key, (), cats[0], row_dim=dims[0]))
    else:
        layers = list(itertools.product(*cats[:-2]))
        for layer in layers:
            if layer:
                out.append(
                    "<h3>" + _e(", ".join(f"{d} = {v}" for d, v in zip(dims[:-2], layer, strict=True))) + "</h3>"
                )
            out.append(_grid(by_key, layer, cats[-2], row_dim=dims[-2], col_dim=dims[-1], cols=cats[-1]))
    if merged:
        out.append(
            "<h3>Merged away</h3><p>"
            + _e(
                ", ".join(
                    sorted(
                        {f"{d}={c['key'][d]}" for c in merged for d in dims if d in report.details.get("merged", {})}
                    )
                )
            )
            + "</p>"
        )
    return "\n".join(out)


def _grid(by_key, layer, rows, *, row_dim, col_dim=None, cols=None) -> str:
    corner = _e(row_dim) + (" / " + _e(col_dim) if col_dim else "")
    head = [f"<th>{corner}</th>"]
    columns = cols if cols is not None else [None]
    for c in columns:
        head.append(f"<th class='{'total' if c == TOTAL else ''}'>{_e(c if c is not None else 'value')}</th>")
    body = []
    for r in rows:
        tds = [f"<th class='{'total' if r == TOTAL else ''}'>{_e(r)}</th>"]
        for c in columns:
            key = tuple(layer) + ((r, c) if c is not None else (r,))
            tds.append(_td(by_key.get(key), total=TOTAL in key))
        body.append("<tr>" + "".join(tds) + "</tr>")
    return "<table class='grid'><tr>" + "".join(head) + "</tr>" + "".join(body) + "</table>"


def _td(cell: dict | None, total: bool) -> str:
    if cell is None:
        return "<td></td>"
    reasons = [EXPLANATIONS.get(Check(c), c) if c in Check._value2member_map_ else c for c in cell["checks"]]
    title = f"{cell['status']}" + (": " + "; ".join(reasons) if reasons else "")
    shown = "&middot;" if cell["published"] is None else _e(cell["published"])
    true = "" if cell["published"] == cell["value"] else f"<span class='true'>true {_e(cell['value'])}</span>"
    classes = ["total"] if total else []
    if cell["checks"] and cell["status"] in ("ok", "rounded"):
        classes.append("flagged")
    return (
        f"<td class='{' '.join(classes)}' style='background:{_COLOURS[cell['status']]}' title='{_e(title)}'>"
        f"{shown}{true}</td>"
    )


def _ordered(values) -> list:
    seen = []
    for v in values:
        if v not in seen:
            seen.append(v)
    return [v for v in seen if v != TOTAL] + ([TOTAL] if TOTAL in seen else [])


def _records_html(records: list[dict]) -> str:
    if not records:
        return "<p>(none)</p>"
    columns = list(records[0])
    head = "".join(f"<th>{_e(c)}</th>" for c in columns)
    rows = "".join("<tr>" + "".join(f"<td>{_e(r.get(c, ''))}</td>" for c in columns) + "</tr>" for r in records)
    return f"<table class='grid'><tr>{head}</tr>{rows}</table>"


def _outputs_html(outputs: list[dict]) -> str:
    items = []
    for o in outputs:
        reasons = "".join(f"<li class='{_e(f['status'])}'>{_e(f['message'])}</li>" for f in o.get("findings", []))
        items.append(
            f"<li>cell {_e(o['cell'])}, {_e(o['type'])}: <b style='color:{_STATUS_COLOURS[o['status']]}'>"
            f"{_e(o['status'])}</b><ul class='findings'>{reasons}</ul></li>"
        )
    return "<ul>" + "".join(items) + "</ul>"


def _params_html(params: dict) -> str:
    rows = "".join(f"<tr><td>{_e(k)}</td><td>{_e(v)}</td></tr>" for k, v in params.items())
    return f"<table class='params'>{rows}</table>"
