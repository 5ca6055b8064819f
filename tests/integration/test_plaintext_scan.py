"""No plaintext ID number in any file under $TRE_HOME except the original deliveries.

Every file is scanned as bytes (ASCII and UTF-16), and every DuckDB and SQLite file is also
read table by table, since DuckDB compresses strings and a byte scan alone could miss them.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

import duckdb
import pytest
from delivery_factory import people, row, write_delivery

from tre.cli import _log_internal_error
from tre.config import load_settings

REASON = "scan test: check that nothing leaks"


def byte_hits(path: Path, numbers: list[str]) -> list[str]:
    data = path.read_bytes()
    return [n for n in numbers if n.encode() in data or n.encode("utf-16-le") in data]


def duckdb_hits(path: Path, numbers: list[str]) -> list[str]:
    hits = []
    with duckdb.connect(str(path), read_only=True) as con:
        columns = con.execute(
            "SELECT table_name, column_name FROM duckdb_columns() WHERE database_name = current_database()"
        ).fetchall()
        for table, column in columns:
            found = con.execute(
                f'SELECT DISTINCT f FROM "{table}" t, unnest($1::VARCHAR[]) u(f) WHERE contains(CAST(t."{column}" AS VARCHAR), f)',
                [numbers],
            ).fetchall()
            hits += [f"{table}.{column}: {f}" for (f,) in found]
    return hits


def sqlite_hits(path: Path, numbers: list[str]) -> list[str]:
    hits = []
    with sqlite3.connect(path) as con:
        for (table,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'").fetchall():
            for values in con.execute(f'SELECT * FROM "{table}"'):
                text = " ".join(map(str, values))
                hits += [f"{table}: {n}" for n in numbers if n in text]
    return hits


def scan(root: Path, numbers: list[str], *, skip: Path | None = None) -> tuple[list[str], int]:
    problems, scanned = [], 0
    for path in sorted(p for p in root.rglob("*") if p.is_file()):
        if skip is not None and path.is_relative_to(skip):
            continue
        scanned += 1
        problems += [f"{path}: {n}" for n in byte_hits(path, numbers)]
        if path.suffix == ".duckdb":
            problems += [f"{path}: {hit}" for hit in duckdb_hits(path, numbers)]
        elif path.suffix == ".sqlite":
            problems += [f"{path}: {hit}" for hit in sqlite_hits(path, numbers)]
    return problems, scanned


@pytest.fixture
def busy_installation(initialised, tre_env):
    """A TRE after a day's work: deliveries (with rejects and a failure), look-ups, reports, an error."""
    settings = load_settings(tre_env)
    persons = people(40, seed=61)
    [d_person] = people(1, seed=62, d_number=True)
    bad = persons[0].fnr[:10] + str((int(persons[0].fnr[10]) + 1) % 10)
    folder = settings.deliveries_dir
    write_delivery(folder, "dsf", [row("dsf", p) for p in persons])
    write_delivery(folder, "dsf_idhistory", [row("dsf_idhistory", persons[1], old_id=d_person.fnr)])
    write_delivery(folder, "reservasjon", [row("reservasjon", persons[2])])
    write_delivery(folder, "helsestasjon", [row("helsestasjon", p) for p in persons[:5]])
    write_delivery(
        folder,
        "kuhr",
        [row("kuhr", p) for p in persons]
        + [row("kuhr", d_person), row("kuhr", persons[3], fnr=bad), row("kuhr", persons[4], claim_id=persons[5].fnr)],
    )
    write_delivery(folder, "npr", [row("npr", p) for p in persons[:3]], fmt="parquet")
    write_delivery(folder / "broken", "ses", [row("ses", p) for p in persons[:2]], manifest={"rows": 7})
    initialised.ok("ingest", str(folder), as_user="ada")
    assert initialised("ingest", str(folder / "broken"), as_user="ada").code == 7
    initialised.ok("user", "add", "carl", "--role", "custodian", as_user="ada")
    pid = initialised.ok(
        "vault", "lookup", "--fnr", persons[1].fnr, "--reason", REASON, "--json", as_user="carl"
    ).json()["pid"]
    shown = initialised.ok("vault", "reveal", "--pid", pid, "--reason", REASON, as_user="carl").out
    assert persons[1].fnr in shown and d_person.fnr in shown  # the custodian does see them, on the terminal
    assert initialised("vault", "lookup", "--fnr", persons[1].fnr, "--reason", REASON, as_user="ada").code == 5
    initialised.ok("vault", "rotate-key", as_user="carl")
    initialised.ok("vault", "rotate-key", "--reencrypt", as_user="carl")
    initialised.ok("linkage", "report", "--by-municipality", str(settings.home / "reports"), as_user="ada")
    # an internal error whose traceback mentions a number: the error log keeps the traceback, not the number
    try:
        raise RuntimeError(f"could not handle {persons[6].fnr}")
    except RuntimeError as error:
        _log_internal_error(settings, error)
    return settings, [p.fnr for p in persons] + [d_person.fnr, bad]


def test_no_plaintext_id_number_under_tre_home(busy_installation):
    settings, numbers = busy_installation
    problems, scanned = scan(settings.home, numbers, skip=settings.deliveries_dir)
    assert problems == []
    kinds = {p.suffix for p in settings.home.rglob("*") if p.is_file()}
    assert {".duckdb", ".sqlite", ".csv", ".json", ".log", ".key"} <= kinds, kinds
    assert scanned >= 8


def test_the_scan_finds_numbers_where_they_are(busy_installation, tmp_path):
    """The scan is not blind: it finds the deliveries' numbers, and numbers DuckDB compressed."""
    settings, numbers = busy_installation
    problems, _ = scan(settings.deliveries_dir, numbers)
    assert len({p.rsplit(": ", 1)[1] for p in problems}) >= 40
    leaky = tmp_path / "leaky.duckdb"
    with duckdb.connect(str(leaky)) as con:
        con.execute("CREATE TABLE t AS SELECT unnest($1::VARCHAR[]) AS n FROM range(2000)", [numbers])
    assert duckdb_hits(leaky, numbers[:3])
