"""Project-specific pseudonyms and their key tables (the § 4-3 / § 4-4 code key).

A project's key table maps the central person key (pid) to a pseudonym that is random, not
derived from anything: knowing pseudonyms in one project says nothing about another. The key
table is one DuckDB file per project in the central zone (`central/keys/<project>.duckdb`):
the same person gets the same pseudonym on every rebuild of the project, and purging the
project after its retention period deletes the file. The key never enters a project zone.

Pseudonyms are 12 characters of Crockford's base32 (no I, L, O, U): 60 bits, so a collision
within a project is vanishingly rare, and the UNIQUE constraint turns one into a redraw.
"""

from __future__ import annotations

import os
from pathlib import Path

import duckdb
import numpy as np
import pyarrow as pa

ALPHABET = np.frombuffer(b"0123456789ABCDEFGHJKMNPQRSTVWXYZ", dtype=np.uint8)
LENGTH = 12
TABLE = "__tre_pseudonyms"


def key_table_path(central_dir: Path, project_id: str) -> Path:
    return Path(central_dir) / "keys" / f"{project_id}.duckdb"


def random_pseudonyms(count: int) -> np.ndarray:
    """`count` random pseudonyms from the operating system's CSPRNG."""
    raw = np.frombuffer(os.urandom(count * LENGTH), dtype=np.uint8).reshape(count, LENGTH)
    letters = ALPHABET[raw & 31]  # 256 is a multiple of 32: no bias
    return letters.view(f"S{LENGTH}").ravel().astype(f"U{LENGTH}")


def open_key_table(central_dir: Path, project_id: str) -> duckdb.DuckDBPyConnection:
    path = key_table_path(central_dir, project_id)
    path.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
    con = duckdb.connect(str(path))
    con.execute(
        f"CREATE TABLE IF NOT EXISTS {TABLE} ("
        " pid VARCHAR PRIMARY KEY, pseudonym VARCHAR NOT NULL UNIQUE, created_at TIMESTAMP DEFAULT now())"
    )
    os.chmod(path, 0o600)
    return con


def assign(central_dir: Path, project_id: str, pids: pa.Array | np.ndarray) -> pa.Table:
    """Pseudonyms for `pids` in `project_id`, creating them for persons new to the project.

    Returns an Arrow table (pid, pseudonym) for exactly the given pids.
    """
    wanted = pa.table({"pid": pa.array(np.asarray(pids, dtype=object), type=pa.string())})
    con = open_key_table(central_dir, project_id)
    try:
        con.register("__tre_wanted", wanted)
        con.execute("BEGIN TRANSACTION")
        while True:
            new = con.sql(
                f"SELECT DISTINCT w.pid FROM __tre_wanted w LEFT JOIN {TABLE} k USING (pid) WHERE k.pid IS NULL"
            ).to_arrow_table()
            if new.num_rows == 0:
                break
            fresh = pa.table({"pid": new.column("pid"), "pseudonym": pa.array(random_pseudonyms(new.num_rows))})
            con.register("__tre_fresh", fresh)
            # Keep only pseudonyms nobody in the project has; a clash is redrawn next round.
            con.execute(
                f"INSERT INTO {TABLE} (pid, pseudonym) "
                f"SELECT f.pid, f.pseudonym FROM __tre_fresh f "
                f"WHERE f.pseudonym NOT IN (SELECT pseudonym FROM {TABLE}) "
                f"QUALIFY row_number() OVER (PARTITION BY f.pseudonym ORDER BY f.pid) = 1"
            )
            con.unregister("__tre_fresh")
        con.execute("COMMIT")
        return con.sql(f"SELECT w.pid, k.pseudonym FROM __tre_wanted w JOIN {TABLE} k USING (pid)").to_arrow_table()
    finally:
        con.close()


def purge(central_dir: Path, project_id: str) -> bool:
    """Delete a project's key table (retention ended). Returns whether there was one."""
    path = key_table_path(central_dir, project_id)
    existed = path.exists()
    for p in (path, Path(f"{path}.wal")):
        p.unlink(missing_ok=True)
    return existed
