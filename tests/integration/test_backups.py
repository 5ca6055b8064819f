"""Backup and restore: an online copy taken during an ingest, restored into a fresh home.

The copy is consistent (the zone between two deliveries, the metadata store in step with it,
the record of releases with its persons), encrypted under a backup key that the master key
wraps and that is kept apart from the archive, and checked whole before it is restored. A
central zone older than the metadata store it is used with (or the other way round) is
refused, whatever the operator restored.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import shutil
import signal
import subprocess
import sys
from pathlib import Path

import duckdb
import pytest
from delivery_factory import people, row, write_delivery

from tre.config import load_settings
from tre.linkage.backups import CHUNK, MAGIC, NONCE, TAG

TRE = str(Path(sys.executable).parent / "tre")
NOW = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)
pytestmark = pytest.mark.slow

APPROVAL = """
id = "hrl20-backup-1"
kind = "hrl20"
reference = "26/9"
basis = "hrl20"
legal_basis = "hrl § 20"
purpose = "research"
purpose_description = "heart attacks and GP contacts"
applicant = "A university"
recipient = { org_number = "100000040", name = "A university", kind = "university" }
linkage = true
application_complete = 2026-09-01
valid_from = 2026-09-01
valid_until = 2028-12-31
retention_years = 2
date_precision = "month"

[project]
id = "cardio"
title = "Heart attacks"

[[members]]
user = "rita"
role = "pi"

[period]
from = 2023-01-01
to = 2023-12-31

[sources]
npr = ["admission_date", "icd10_main"]
kuhr = ["contact_time", "icpc2"]
dsf = ["birth_date", "sex"]

[cohort]
source = "npr"

[cohort.codes]
icd10_main = ["I21"]
"""


def env_for(base: Path, name: str) -> dict:
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRE_")}
    env.update(
        TRE_HOME=str(base / name / "home"),
        TRE_PROJECTS_DIR=str(base / name / "projects"),
        TRE_APPROVALS_DIR=str(base / "approvals"),
        TRE_BACKUP_DIR=str(base / "backups"),
        TRE_BACKUP_KEYS_DIR=str(base / "backup-keys"),
        TRE_PROJECT_DISK_QUOTA="0",  # no loop-mounted volumes unless a test wants them
    )
    return env


def tre(env: dict, *argv: str, user: str | None = "ada", check: bool = True) -> subprocess.CompletedProcess:
    done = subprocess.run(
        [TRE, *argv, *(["--as", user] if user else [])], env=env, capture_output=True, text=True, timeout=600
    )
    if check:
        assert done.returncode == 0, f"tre {' '.join(argv)}: {done.stderr}"
    return done


def in_process(env: dict, *argv: str, user: str = "ada"):
    """`tre` in this process with the test's clock (for extracts that must be comparable)."""
    import io

    from tre.cli import main

    out, err = io.StringIO(), io.StringIO()
    code = main([*argv, "--as", user], environ=env, stdout=out, stderr=err, clock=lambda: NOW)
    assert code == 0, err.getvalue()
    return out.getvalue()


def report(env: dict) -> dict:
    data = json.loads(tre(env, "linkage", "report", "--json").stdout)
    data.pop("generated_at", None)
    return data


def extract_tables(env: dict, project: str) -> dict:
    path = Path(env["TRE_PROJECTS_DIR"]) / project / "data" / "extract.duckdb"
    with duckdb.connect(str(path), read_only=True) as con:
        return {
            t: con.sql(f'SELECT * FROM "{t}" ORDER BY ALL').fetchall()
            for (t,) in con.sql("SELECT table_name FROM duckdb_tables() ORDER BY 1").fetchall()
        }


@pytest.fixture(scope="module")
def world(tmp_path_factory):
    """Installation A: the population register and NPR ingested, a project with its extract
    built; KUHR deliveries of ten periods waiting to be ingested."""
    base = tmp_path_factory.mktemp("backups")
    a = env_for(base, "a")
    (base / "approvals").mkdir()
    (base / "approvals" / "cardio.toml").write_text(APPROVAL)
    tre(a, "init", user=None)
    tre(a, "user", "add", "ada", "--role", "admin", user=None)
    tre(a, "user", "add", "rita", "--role", "researcher")
    persons = people(3000, seed=61)
    first = base / "first"
    write_delivery(first, "dsf", [row("dsf", p) for p in persons])
    write_delivery(first, "npr", [row("npr", p, icd10_main="I219", admission_date="2023-03-01") for p in persons[:40]])
    tre(a, "ingest", str(first))
    tre(a, "approvals", "sync")
    tre(a, "project", "provision", "cardio")
    in_process(a, "extract", "build", "cardio")
    later = base / "later"
    for period in "abcdefghij":  # long enough for a backup to start while it runs
        write_delivery(later, "kuhr", [row("kuhr", p) for p in persons for _ in range(10)], period=f"2023{period}")
    return {"base": base, "a": a, "later": later, "persons": persons}


def test_a_backup_taken_during_an_ingest_restores_into_a_fresh_home(world):
    base, a = world["base"], world["a"]
    before = report(a)["deliveries"]
    ingest = subprocess.Popen(
        [TRE, "ingest", str(world["later"]), "--as", "ada"], env=a, stderr=subprocess.PIPE, text=True
    )
    try:
        for line in ingest.stderr:
            if ": committed" in line:  # the first KUHR delivery is in; nine more to come
                break
        backup = json.loads(tre(a, "backup", "create", "--json").stdout)
        ingest.stderr.read()
        assert ingest.wait(timeout=600) == 0
    finally:
        if ingest.poll() is None:
            ingest.send_signal(signal.SIGKILL)
            ingest.wait()
    after = report(a)["deliveries"]
    assert before < backup["deliveries"] < after, "the backup was not taken during the ingest"
    archive, key_file = Path(backup["archive"]), Path(backup["key_file"])
    assert archive.parent != key_file.parent
    assert archive.stat().st_mode & 0o777 == 0o600 and key_file.stat().st_mode & 0o777 == 0o600
    verified = json.loads(tre(a, "backup", "verify", str(archive), "--json").stdout)
    assert verified["ok"] and verified["deliveries"] == backup["deliveries"]

    # A fresh home on another machine: the archive, its key file, and the master key.
    b = env_for(base, "b")
    keys = load_settings(b).master_key_file
    keys.parent.mkdir(mode=0o700, parents=True)
    shutil.copy2(load_settings(a).master_key_file, keys)
    restored = json.loads(tre(b, "restore", str(archive), "--key", str(key_file), "--json", user=None).stdout)
    assert restored["deliveries"] == backup["deliveries"]
    assert json.loads(tre(b, "audit", "verify", "--json").stdout)["ok"] is True
    assert report(b)["deliveries"] == backup["deliveries"]
    # The rest of the deliveries land in B too: then B is A.
    tre(b, "ingest", str(world["later"]))
    assert report(b) == report(a)
    tre(b, "project", "provision", "cardio")
    in_process(a, "extract", "build", "cardio")
    in_process(b, "extract", "build", "cardio")
    assert extract_tables(b, "cardio") == extract_tables(a, "cardio")  # the same pseudonyms: key tables came along
    log = json.loads(tre(b, "audit", "log", "--action", "backup.*", "--json").stdout)
    assert [e["action"] for e in log] == ["backup.restore"]


def test_an_archive_holds_nothing_readable_and_opens_only_whole_with_its_keys(world, tmp_path):
    a = world["a"]
    backup = json.loads(tre(a, "backup", "create", "--json").stdout)
    archive, key_file = Path(backup["archive"]), Path(backup["key_file"])
    data = archive.read_bytes()
    assert b"SQLite format 3" not in data and b"DUCK" not in data
    assert not any(p.fnr.encode() in data for p in world["persons"][:50])
    assert b"ustar" not in data  # not even the tar structure shows
    # changed, truncated (also right after a whole chunk), or with another backup's key file:
    # refused in one line
    boundary = len(MAGIC) + 16 + 4 + NONCE + CHUNK + TAG  # the header and the first chunk
    assert len(data) > boundary
    for name, broken in (
        ("changed", data[:5000] + bytes([data[5000] ^ 1]) + data[5001:]),
        ("truncated", data[: len(data) // 2]),
        ("cut after a chunk", data[:boundary]),
        ("extended", data + data[-100:]),
    ):
        copy = tmp_path / f"{name}.tre-backup"
        copy.write_bytes(broken)
        refused = tre(a, "backup", "verify", str(copy), "--key", str(key_file), check=False)
        assert refused.returncode == 11 and "Traceback" not in refused.stderr, (name, refused.stderr)
    other = json.loads(tre(a, "backup", "create", "--json").stdout)
    wrong = tre(a, "backup", "verify", str(archive), "--key", other["key_file"], check=False)
    assert wrong.returncode == 11 and "another backup" in wrong.stderr
    # another master key (a fresh home that lost the right one)
    c = env_for(world["base"], "c")
    c["TRE_MASTER_KEY"] = "AQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQEBAQE="
    refused = tre(c, "restore", str(archive), "--key", str(key_file), check=False, user=None)
    assert refused.returncode == 11 and "wrapped by master key" in refused.stderr
    assert not Path(c["TRE_HOME"]).joinpath("tre.sqlite").exists()
    # a home that is not fresh
    taken = tre(a, "restore", str(archive), "--key", str(key_file), check=False, user=None)
    assert taken.returncode == 1 and "fresh home" in taken.stderr


def test_a_zone_and_a_metadata_store_of_different_ages_are_refused(world):
    """Restoring the central zone alone from an older backup (13 deliveries in the zone, 15 in
    the metadata store), or the metadata store alone, is found before anything is used."""
    base, a = world["base"], world["a"]
    older = json.loads(tre(a, "backup", "create", "--json").stdout)
    more = base / "more"
    for i, period in enumerate(("2024a", "2024b")):
        persons = world["persons"][i * 100 : (i + 1) * 100]
        write_delivery(more, "ses", [row("ses", p, year="2024") for p in persons], period=period)
    tre(a, "ingest", str(more))
    d = env_for(base, "d")
    keys = load_settings(d).master_key_file
    keys.parent.mkdir(mode=0o700, parents=True)
    shutil.copy2(load_settings(a).master_key_file, keys)
    tre(d, "restore", older["archive"], "--key", older["key_file"], user=None)
    zone_a, zone_d = load_settings(a).central_dir, load_settings(d).central_dir
    saved = base / "saved-zone"
    shutil.copytree(zone_a, saved)
    try:
        for name in ("vault.duckdb", "registers.duckdb"):
            (zone_a / f"{name}.wal").unlink(missing_ok=True)
            shutil.copy2(zone_d / name, zone_a / name)
        refused = tre(a, "linkage", "report", check=False)
        assert refused.returncode == 11 and "the zone is older than the metadata store" in refused.stderr
        assert "lacks 2 of the" in refused.stderr and "tre restore" in refused.stderr
    finally:
        shutil.rmtree(zone_a)
        shutil.copytree(saved, zone_a)
    # The metadata store alone from the older backup (through SQLite's backup API, as a restore
    # of that file would put it: its write-ahead log included).
    store_a, store_d = load_settings(a).metadata_store_path, load_settings(d).metadata_store_path
    saved_store = base / "saved.sqlite"
    copy_sqlite(store_a, saved_store)
    try:
        copy_sqlite(store_d, store_a)
        refused = tre(a, "linkage", "report", check=False)
        assert refused.returncode == 11 and "the metadata store is older than the zone" in refused.stderr
    finally:
        copy_sqlite(saved_store, store_a)
    tre(a, "linkage", "report")


def copy_sqlite(source: Path, target: Path) -> None:
    import sqlite3

    with sqlite3.connect(source) as src, sqlite3.connect(target) as dst:
        src.backup(dst)
