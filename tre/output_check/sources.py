"""Adapters at the edge: the project's pseudonyms, released tables, and table files.

Layout of a released table (written by the review workflow into `projects/<id>/released/`,
any depth below it): the published table `NAME.csv` in long form (one column per dimension,
`Total` for a margin, and one value column; a suppressed value is empty) and beside it the
sidecar `NAME.csv.json` (see `build_sidecar`). The differencing check reads exactly these.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tre.errors import NotFound, UserError
from tre.output_check.differencing import PublishedTable
from tre.output_check.kinds import TOTAL
from tre.output_check.reports import sha256_file
from tre.output_check.tables import TableError

SIDECAR_FORMAT = "tre-released-table/1"
SIDECAR_SUFFIX = ".json"  # NAME.csv -> NAME.csv.json


def extract_path(projects_dir: Path, project: str) -> Path:
    """Where a project's extract lives (built by the extracts workflow)."""
    return Path(projects_dir) / project / "data" / "extract.duckdb"


def read_pseudonyms(path: Path) -> frozenset[str]:
    """Every pseudonym of the project extract at `path` (the `persons` table, one row each)."""
    import duckdb

    if not Path(path).is_file():
        raise NotFound(f"no project extract at {path}: the project needs an extract before its outputs are checked")
    try:
        con = duckdb.connect(str(path), read_only=True)
    except duckdb.Error as e:
        raise UserError(f"cannot open the project extract {path} ({e.__class__.__name__})") from None
    try:
        tables = {r[0] for r in con.execute("select table_name from information_schema.tables").fetchall()}
        # Tables with a pseudonym column; a § 4-3 delivery (statistics only) has none.
        with_pseudonyms = {
            r[0]
            for r in con.execute(
                "select table_name from information_schema.columns where column_name = 'pseudonym'"
            ).fetchall()
        }
        if "persons" in with_pseudonyms:
            rows = con.execute("select distinct pseudonym from persons where pseudonym is not null").fetchall()
        else:
            union = " union ".join(
                f'select distinct pseudonym from "{t}" where pseudonym is not null'
                for t in sorted(tables & with_pseudonyms)
            )
            rows = con.execute(union).fetchall() if union else []
    except duckdb.Error as e:
        raise UserError(
            f"project extract {path} has no pseudonym column where one is expected ({e.__class__.__name__})"
        ) from None
    finally:
        con.close()
    return frozenset(str(r[0]) for r in rows)


def read_csv(path: Path) -> pd.DataFrame:
    """A CSV with every value as text (labels keep leading zeros, e.g. municipality 0301)."""
    try:
        return pd.read_csv(path, dtype=str, keep_default_na=False, na_values=[""])
    except FileNotFoundError:
        raise NotFound(f"no such file: {path}") from None
    except (OSError, UnicodeDecodeError, pd.errors.ParserError, pd.errors.EmptyDataError) as e:
        raise TableError(f"cannot read {path} as CSV: {e.__class__.__name__}: {str(e).splitlines()[0]}") from None


def published_from_frame(
    frame: pd.DataFrame, name: str, dimensions: Sequence[str], value_column: str
) -> PublishedTable:
    """A published table from its long form: `Total` marks a margin, an empty value a suppressed one."""
    missing = [c for c in (*dimensions, value_column) if c not in frame.columns]
    if missing:
        raise TableError(f"released table {name!r} has no column(s) {', '.join(missing)}")
    values = pd.to_numeric(frame[value_column], errors="coerce")
    cells = {}
    for key, value in zip(frame[list(dimensions)].itertuples(index=False, name=None), values, strict=True):
        cells[tuple(str(k) for k in key)] = None if np.isnan(value) else float(value)
    return PublishedTable(name, tuple(dimensions), cells)


def read_released_file(path: Path, value_column: str | None = None) -> PublishedTable:
    """One released table: with its sidecar if there is one, else every column but the value
    column (`value_column`, e.g. the new table's count column) is a dimension."""
    path = Path(path)
    frame = read_csv(path)
    sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
    if sidecar.is_file():
        meta = _read_sidecar(sidecar)
        return published_from_frame(frame, meta.get("name", path.name), meta["dimensions"], meta["value_column"])
    if value_column is None or value_column not in frame.columns:
        raise TableError(f"released table {path.name} has no sidecar and no column {value_column!r} to compare")
    dims = [c for c in frame.columns if c != value_column]
    return published_from_frame(frame, path.name, dims, value_column)


def read_released_tables(released_dir: Path) -> tuple[list[PublishedTable], list[str]]:
    """Every released count table under `released_dir`, and the files not compared (with why)."""
    tables, skipped = [], []
    if not Path(released_dir).is_dir():
        return tables, skipped
    for path in sorted(Path(released_dir).rglob("*.csv")):
        sidecar = path.with_name(path.name + SIDECAR_SUFFIX)
        if not sidecar.is_file():
            skipped.append(f"{path.relative_to(released_dir)}: no sidecar")
            continue
        meta = _read_sidecar(sidecar)
        if meta.get("statistic", "count") != "count":
            skipped.append(f"{path.relative_to(released_dir)}: a {meta['statistic']} table (only counts are compared)")
            continue
        if meta.get("rounding"):
            skipped.append(f"{path.relative_to(released_dir)}: rounded values are not compared exactly")
            continue
        frame = read_csv(path)
        tables.append(
            published_from_frame(frame, meta.get("name", path.stem), meta["dimensions"], meta["value_column"])
        )
    return tables, skipped


def _read_sidecar(path: Path) -> dict:
    try:
        meta = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, json.JSONDecodeError) as e:
        raise TableError(f"cannot read the sidecar {path.name}: {e.__class__.__name__}") from None
    problems = [f"no {k!r}" for k in ("dimensions", "value_column") if k not in meta]
    if meta.get("format") != SIDECAR_FORMAT:
        problems.append(f"format is not {SIDECAR_FORMAT!r}")
    if problems:
        raise TableError(f"sidecar {path.name}: {'; '.join(problems)}")
    return meta


def build_published_frame(report: dict, value_column: str) -> pd.DataFrame:
    """The published table of a table report in the released layout (margins as `Total`)."""
    dims = report["dimensions"]
    rows = [
        {**{d: c["key"][d] for d in dims}, value_column: c["published"]}
        for c in report["cells"]
        if c["status"] != "merged"
    ]
    frame = pd.DataFrame(rows, columns=[*dims, value_column])
    if report.get("statistic") == "count":
        frame[value_column] = frame[value_column].astype("Int64")  # counts stay whole numbers
    return frame


def build_sidecar(report: dict, name: str, value_column: str, csv_path: Path, **release) -> dict:
    """The sidecar of a released (or queued) table: what the differencing check needs, plus
    `release` fields (e.g. release="REL-3", request="REQ-3", released_at=...)."""
    return _sidecar(report, name, value_column, sha256_file(csv_path), **release)


def build_sidecar_bytes(report: dict, name: str, value_column: str, csv_bytes: bytes) -> bytes:
    """The sidecar of a table published as `csv_bytes`, as the bytes written beside it."""
    sidecar = _sidecar(report, name, value_column, hashlib.sha256(csv_bytes).hexdigest())
    return (json.dumps(sidecar, indent=2) + "\n").encode("utf-8")


def _sidecar(report: dict, name: str, value_column: str, sha256: str, **release) -> dict:
    rounding = None
    if report.get("method") in ("round", "midpoint6"):
        params = report["parameters"]
        base = params["round_base"] if report["method"] == "round" else params["midpoint_base"]
        rounding = {"method": report["method"], "base": base}
    return {
        "format": SIDECAR_FORMAT,
        "name": name,
        "dimensions": report["dimensions"],
        "value_column": value_column,
        "statistic": report["statistic"],
        "total_label": TOTAL,
        "suppressed": "",
        "rounding": rounding,
        "parameters_version": report["parameters"]["version"],
        "check_status": report["status"],
        "sha256": sha256,
        **release,
    }


def write_published_table(report: dict, name: str, value_column: str, directory: Path, **release) -> Path:
    """Write `name`.csv and its sidecar into `directory`; returns the CSV's path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / f"{name}.csv"
    build_published_frame(report, value_column).to_csv(path, index=False)
    sidecar = build_sidecar(report, name, value_column, path, **release)
    path.with_name(path.name + SIDECAR_SUFFIX).write_text(json.dumps(sidecar, indent=2) + "\n", encoding="utf-8")
    return path
