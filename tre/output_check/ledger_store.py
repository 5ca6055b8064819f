"""The release ledger on disk (the adapter at the edge; the audit is in `ledger`).

One pair of files per released table, written at release by the review workflow:

    <ledger_dir>/<project>/<REQ-n>__<output>.parquet   the members: unit (the pseudonym),
                                                      cell (flat interior index), weight
    <ledger_dir>/<project>/<REQ-n>__<output>.json      tre-ledger-table/1: name, release,
                                                      dimensions, categories, statistic,
                                                      value_name, and per extended cell
                                                      lower, upper (null: suppressed) and
                                                      sensitive

`ledger_dir` (TRE_LEDGER_DIR, under TRE_HOME) is central: the project's kernel cannot write
it, and it does not depend on the extract, so it survives extract rebuilds (pseudonyms are
stable per project). A copy goes to the project's `released/.ledger/` (written by the
release, read-only for the project) so that `tre.safe` audits with the same ledger as the
central check; the central check reads only the central ledger.
"""

from __future__ import annotations

import io
import json
import os
import secrets
import tempfile
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import pandas as pd

from tre.errors import UserError
from tre.output_check.ledger import LEDGER_FORMAT, LedgerTable
from tre.project_files import Folder

MIRROR = Path("released") / ".ledger"


class LedgerError(UserError):
    """A ledger file that cannot be read."""


def project_ledger_dir(ledger_dir: Path, project: str) -> Path:
    return Path(ledger_dir) / project


def mirror_dir(project_dir: Path) -> Path:
    """Where a project's kernel reads its copy of the ledger."""
    return Path(project_dir) / MIRROR


def file_stem(name: str) -> str:
    """`REQ-3/output_1` -> `REQ-3__output_1` (names are letters, digits, '.', '_', '-' and one '/')."""
    return name.replace("/", "__")


def ledger_files(table: LedgerTable) -> dict[str, bytes]:
    """One table's files, by name: the members (Parquet) and the spec (JSON, last: it marks the entry)."""
    stem = file_stem(table.name)
    members = pd.DataFrame(
        {
            "unit": pd.Series(table.member_units, dtype="string"),
            "cell": table.member_cells.astype(np.int64),
            "weight": table.member_weights.astype(float),
        }
    )
    spec = {
        "format": LEDGER_FORMAT,
        "name": table.name,
        "release": table.release,
        "dimensions": list(table.dimensions),
        "categories": [list(c) for c in table.categories],
        "statistic": table.statistic,
        "value_name": table.value_name,
        "lower": _floats(table.lower),
        "upper": _floats(table.upper),
        "sensitive": [bool(v) for v in np.asarray(table.sensitive).ravel()],
        "audited": table.audited,
    }
    buffer = io.BytesIO()
    members.to_parquet(buffer, index=False)
    return {f"{stem}.parquet": buffer.getvalue(), f"{stem}.json": (json.dumps(spec) + "\n").encode("utf-8")}


def write_ledger_table(directory: Path, table: LedgerTable) -> None:
    """Write one table's files into a central directory, each whole or not at all."""
    directory = Path(directory)
    directory.mkdir(parents=True, exist_ok=True)
    for name, data in ledger_files(table).items():
        _atomic(directory / name, data)


def write_mirror(project_dir: Path, tables: Sequence[LedgerTable]) -> None:
    """Copy tables into the project's `released/.ledger/`, a folder the project can reach:
    opened without following links, each file written new under a temporary name and renamed
    into place (a planted link is replaced, never followed)."""
    with Folder.open(Path(project_dir), "") as root, root.folder("released", create=0o750) as released:
        planted = released.entry(MIRROR.name)
        if planted is not None and not planted.is_dir:
            released.remove_tree(MIRROR.name)  # a link or file the project put there: removed, never followed
        with released.folder(MIRROR.name, create=0o755) as mirror:
            mirror.chmod(0o755)
            _write_mirror_tables(mirror, tables)


def _write_mirror_tables(mirror: Folder, tables: Sequence[LedgerTable]) -> None:
    for table in tables:
        for name, data in ledger_files(table).items():
            temporary = f".{name}.{secrets.token_hex(4)}"
            mirror.write_new(temporary, data, 0o644)
            try:
                if (entry := mirror.entry(name)) is not None and entry.is_dir:
                    mirror.remove_tree(name)
                mirror.rename(temporary, name)
            except BaseException:
                mirror.remove_tree(temporary)
                raise


def read_ledger(directory: Path) -> list[LedgerTable]:
    """Every table of a ledger directory (none when it does not exist), oldest release first."""
    directory = Path(directory)
    if not directory.is_dir():
        return []
    tables = []
    for spec_path in sorted(directory.glob("*.json")):
        tables.append(_read_table(spec_path))
    return sorted(tables, key=lambda t: (_release_number(t.release), t.name))


def _read_table(spec_path: Path) -> LedgerTable:
    try:
        spec = json.loads(spec_path.read_text(encoding="utf-8"))
        members = pd.read_parquet(spec_path.with_suffix(".parquet"))
        shape = tuple(len(c) + 1 for c in spec["categories"])
        lower = np.array([np.nan if v is None else v for v in spec["lower"]], dtype=float).reshape(shape)
        upper = np.array([np.nan if v is None else v for v in spec["upper"]], dtype=float).reshape(shape)
        sensitive = np.array(spec["sensitive"], dtype=bool).reshape(shape)
        if spec.get("format") != LEDGER_FORMAT:
            raise ValueError("format")
        return LedgerTable(
            name=str(spec["name"]),
            dimensions=tuple(str(d) for d in spec["dimensions"]),
            categories=tuple(tuple(str(c) for c in cats) for cats in spec["categories"]),
            statistic=str(spec["statistic"]),
            lower=lower,
            upper=upper,
            sensitive=sensitive,
            member_units=members["unit"].astype(str).to_numpy(dtype=object),
            member_cells=members["cell"].to_numpy(dtype=np.int64),
            member_weights=members["weight"].to_numpy(dtype=float),
            value_name=str(spec.get("value_name") or ""),
            release=str(spec.get("release") or ""),
            audited=spec.get("audited", True) is not False,
        )
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise LedgerError(
            f"the release ledger entry {spec_path.name} in {spec_path.parent} cannot be read "
            f"({e.__class__.__name__}): restore it from backup"
        ) from None


def _release_number(release: str) -> int:
    digits = "".join(c for c in release if c.isdigit())
    return int(digits) if digits else 0


def _floats(values: np.ndarray) -> list:
    return [None if np.isnan(v) else float(v) for v in np.asarray(values, dtype=float).ravel()]


def _atomic(path: Path, data: bytes) -> None:
    fd, temporary = tempfile.mkstemp(prefix=f".{path.name}.", dir=path.parent)
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(data)
        os.chmod(temporary, 0o644)
        os.replace(temporary, path)
    except BaseException:
        Path(temporary).unlink(missing_ok=True)
        raise
