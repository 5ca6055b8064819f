"""Readable ASCII tables for the spec tests: cells in, the published table out.

An input grid has the row dimension and (for 2-D) the column dimension in its corner,
`kommune \\ sex`, then one count per cell. An output grid also has the `Total` row and
column, and shows each cell as it is published: a number, `P` for a cell suppressed because
it failed a check itself, `S` for one suppressed to protect another.
"""

from __future__ import annotations

import pandas as pd

from tre.output_check import TOTAL


def _rows(text: str) -> list[list[str]]:
    return [[c.strip() for c in line.split("|")] for line in text.strip().splitlines() if line.strip()]


def parse_cells(text: str, count: str = "n") -> tuple[pd.DataFrame, list[str]]:
    """An input grid as long-form records: one row per cell with its count."""
    rows = _rows(text)
    corner = [d.strip() for d in rows[0][0].split("\\")]
    records = []
    if len(corner) == 1:  # 1-D: label | count
        for label, value in (r[:2] for r in rows[1:]):
            records.append({corner[0]: label, count: value})
    else:
        columns = rows[0][1:]
        for row in rows[1:]:
            for column, value in zip(columns, row[1:], strict=True):
                records.append({corner[0]: row[0], corner[1]: column, count: value})
    return pd.DataFrame(records), corner


def render_published(report: dict) -> str:
    """A report's published table as an output grid (cells merged away are not shown)."""
    dims = report["dimensions"]
    cells = [c for c in report["cells"] if c["status"] != "merged"]

    def shown(cell):
        if cell["published"] is None:
            return "P" if cell["status"] == "primary" else "S"
        return str(cell["published"])

    def order(values):
        seen = list(dict.fromkeys(values))
        return [v for v in seen if v != TOTAL] + [TOTAL]

    if len(dims) == 1:
        lines = [[dims[0], "n"]] + [[c["key"][dims[0]], shown(c)] for c in cells]
        lines = sorted(lines[1:], key=lambda r: r[0] == TOTAL)
        lines.insert(0, [dims[0], "n"])
    else:
        rows = order(c["key"][dims[0]] for c in cells)
        columns = order(c["key"][dims[1]] for c in cells)
        by_key = {(c["key"][dims[0]], c["key"][dims[1]]): shown(c) for c in cells}
        lines = [[f"{dims[0]} \\ {dims[1]}", *columns]] + [[r, *(by_key[(r, c)] for c in columns)] for r in rows]
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(" | ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines)


def normalise(text: str) -> str:
    """An expected grid with its spacing evened out, to compare with `render_published`."""
    lines = _rows(text)
    widths = [max(len(line[i]) for line in lines) for i in range(len(lines[0]))]
    return "\n".join(" | ".join(v.ljust(w) for v, w in zip(line, widths, strict=True)).rstrip() for line in lines)
