"""Searching what left a project for what must not have: every byte of a bundle and of
`released/`, JSON parsed, CSV by cell, everything else as text.

The facts to look for come from the kernel's own check reports (central copies, officers'
eyes only): the true value of every hidden cell, the unrounded value of every rounded one,
the units behind a hidden cell. Values too common to search for as text (a hidden count of
2) are searched by where they would be: a cell record with that key carrying a value, a CSV
row with that key carrying a number.
"""

from __future__ import annotations

import csv
import io
import json
import re
import zipfile
from dataclasses import dataclass, field
from pathlib import Path

HIDDEN = {"primary", "secondary", "merged"}
NEVER_LEAVE = ("report.json", "report.html", "meta.json")


@dataclass
class Facts:
    """What must not be found: hidden cells by key, and distinctive numbers as text tokens."""

    hidden: dict[str, list[dict]] = field(default_factory=dict)  # output -> hidden cells' keys
    tokens: set[str] = field(default_factory=set)
    dims: dict[str, list[str]] = field(default_factory=dict)

    def add_report(self, output: str, report: dict, published_anywhere: set[str]) -> None:
        dims = report.get("dimensions") or []
        self.dims[output] = dims
        for cell in report.get("cells") or []:
            value, published = cell.get("value"), cell.get("published")
            if cell.get("status") in HIDDEN or published is None:
                self.hidden.setdefault(output, []).append(cell["key"])
                self._token(value, published_anywhere)
            elif value != published:  # rounded: the true value must not be shown
                self._token(value, published_anywhere)

    def _token(self, value, published_anywhere: set[str]) -> None:
        if value is None:
            return
        text = str(int(abs(float(value))))
        # Small numbers, years and numbers that are also published elsewhere are not distinctive.
        if len(text) >= 4 and not 1900 <= int(text) <= 2100 and text not in published_anywhere:
            self.tokens.add(text)


def published_numbers(reports: list[dict]) -> set[str]:
    out = set()
    for report in reports:
        for cell in report.get("cells") or []:
            if cell.get("published") is not None:
                out.add(str(int(abs(float(cell["published"])))))
    return out


def _token_pattern(tokens: set[str]) -> re.Pattern | None:
    if not tokens:
        return None
    alternatives = "|".join(sorted(map(re.escape, tokens), key=len, reverse=True))
    return re.compile(rf"(?<![0-9A-Za-z.])(?:{alternatives})(?![0-9A-Za-z])")


def read_bundle(path: Path) -> dict[str, bytes]:
    with zipfile.ZipFile(path) as z:
        files = {name: z.read(name) for name in z.namelist()}
    files["(zip directory)"] = "\n".join(files).encode()
    return files


def read_tree(root: Path) -> dict[str, bytes]:
    return {p.relative_to(root).as_posix(): p.read_bytes() for p in sorted(root.rglob("*")) if p.is_file()}


def find_leaks(files: dict[str, bytes], facts: Facts) -> list[str]:
    """Every place in `files` where something of `facts` shows, one line each."""
    problems = []
    pattern = _token_pattern(facts.tokens)
    for name, data in files.items():
        base = name.rsplit("/", 1)[-1]
        if base in NEVER_LEAVE or base.startswith("evidence."):
            problems.append(f"{name}: a file that never leaves")
        text = data.decode("utf-8", errors="replace")
        if pattern:
            for match in pattern.finditer(text):
                problems.append(f"{name}: the hidden or unrounded value {match.group()}")
        if re.search(r"\btrue \d", text):
            problems.append(f"{name}: a report's 'true N' of a hidden cell")
        if base.endswith((".json", ".ipynb")):
            try:
                problems += [f"{name}: {p}" for p in _json_leaks(json.loads(data), _hidden_of(name, facts))]
            except ValueError:
                problems.append(f"{name}: not JSON")
        elif base.endswith(".csv"):
            problems += [f"{name}: {p}" for p in _csv_leaks(text, facts, name)]
    return problems


def _hidden_of(name: str, facts: Facts) -> list[dict]:
    """The hidden cells of the output a file belongs to (outputs/<output>/..., checks/<output>.json);
    of every output for a file of none (the manifest)."""
    for output, keys in facts.hidden.items():
        if f"/{output}/" in f"/{name}" or name.endswith(f"checks/{output}.json"):
            return keys
    return [k for keys in facts.hidden.values() for k in keys] if name.endswith("manifest.json") else []


def _json_leaks(value, hidden_keys: list[dict]) -> list[str]:
    found = []
    if isinstance(value, dict):
        for forbidden in ("value", "units", "interval", "contributors", "numerator", "denominator", "checks"):
            if forbidden in value and "key" in value:
                found.append(f"a cell record with {forbidden!r}")
        if "key" in value and value.get("status") in ("primary", "secondary", "ok"):
            # primary (1..threshold-1) or secondary tells a reader about the hidden value
            found.append(f"a cell record with the engine's status {value['status']!r}")
        if value.get("key") in hidden_keys and value.get("published") is not None:
            found.append(f"hidden cell {value['key']} published as {value['published']}")
        for inner in value.values():
            found += _json_leaks(inner, hidden_keys)
    elif isinstance(value, list):
        for inner in value:
            found += _json_leaks(inner, hidden_keys)
    return found


def _csv_leaks(text: str, facts: Facts, name: str) -> list[str]:
    """A long-form table (one column per dimension, a value column): a hidden key's value is empty."""
    rows = list(csv.DictReader(io.StringIO(text)))
    if not rows:
        return []
    found = []
    for output, keys in facts.hidden.items():
        dims = facts.dims.get(output) or []
        if f"/{output}/" not in f"/{name}" or not dims:
            continue
        if not set(dims) <= set(rows[0]):
            found += _wide_leaks(rows, dims, keys)
            continue
        value_columns = [c for c in rows[0] if c not in dims]
        for row in rows:
            key = {d: row[d] for d in dims}
            if key in keys and any(row[c] not in ("", None) for c in value_columns):
                found.append(f"hidden cell {key} has a value")
    return found


def _wide_leaks(rows: list[dict], dims: list[str], keys: list[dict]) -> list[str]:
    """A 2-D table as shown (rows by the first dimension, a column per category of the second,
    margins as 'All'): a hidden cell is empty."""
    if len(dims) != 2:
        return []
    first = next(iter(rows[0]))
    found = []
    for key in keys:
        row_label, col_label = (("All" if key[d] == "Total" else key[d]) for d in dims)
        for row in rows:
            if row[first] == row_label and row.get(col_label) not in ("", None):
                found.append(f"hidden cell {key} shows {row[col_label]} in the table as shown")
    return found
