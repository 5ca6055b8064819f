"""Crash atomicity: `tre ingest` killed with SIGKILL at random moments and at the worst ones.

Each round starts from a copy of the same installation and kills one ingest of one delivery.
Afterwards the zone recovers (any command does that first). Then either the delivery never
happened (vault, register store and metadata store hold exactly what they held before: every
table's content hash is equal) or it happened whole (the counts of a complete run, and the
metadata record rolled forward). A rerun then completes.
"""

from __future__ import annotations

import hashlib
import io
import os
import random
import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pytest
from delivery_factory import people, row, write_delivery

from tre.cli import main
from tre.config import load_settings
from tre.linkage.zone import CentralZone

TRE = str(Path(sys.executable).parent / "tre")
pytestmark = pytest.mark.slow


def run(env: dict, *argv: str) -> subprocess.CompletedProcess:
    return subprocess.run([TRE, *argv, "--as", "ada"], env=env, capture_output=True, text=True, timeout=300)


def metadata_digests(home: Path) -> dict:
    """Every metadata table but the audit chain (recovery is itself an audited event)."""
    with sqlite3.connect(home / "tre.sqlite") as con:
        tables = [t for (t,) in con.execute("SELECT name FROM sqlite_master WHERE type = 'table'")]
        return {
            t: hashlib.sha256(repr(sorted(map(repr, con.execute(f'SELECT * FROM "{t}"')))).encode()).hexdigest()
            for t in tables
            if not t.startswith("audit_")
        }


def state(home: Path) -> dict:
    zone = CentralZone(load_settings({"TRE_HOME": str(home)}))
    return {**zone.digests(), "metadata": metadata_digests(home)}


def counts(home: Path) -> dict:
    with duckdb.connect(str(home / "central" / "registers.duckdb"), read_only=True) as con:
        stored = con.execute("SELECT count(*), count(DISTINCT pid) FROM kuhr").fetchall()[0]
    with duckdb.connect(str(home / "central" / "vault.duckdb"), read_only=True) as con:
        identities = con.execute("SELECT count(*) FROM identities").fetchall()[0][0]
    with sqlite3.connect(home / "tre.sqlite") as con:
        recorded = con.execute("SELECT count(*) FROM deliveries WHERE status = 'ingested'").fetchall()[0][0]
    return {"rows": stored[0], "persons": stored[1], "identities": identities, "recorded": recorded}


@pytest.fixture(scope="module")
def installation(tmp_path_factory):
    """A TRE with the population register ingested, and a KUHR delivery of 4 000 new persons waiting."""
    base = tmp_path_factory.mktemp("crash")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRE_")}
    env["TRE_CLI_IDENTITY"] = "demo"  # who acts is asserted here, as in make demo (tre/identity.py)
    env["TRE_PROJECT_DISK_QUOTA"] = "0"  # no loop-mounted volumes unless a test wants them
    env.update(TRE_HOME=str(base / "home"), TRE_PROJECTS_DIR=str(base / "p"), TRE_APPROVALS_DIR=str(base / "a"))
    subprocess.run([TRE, "init"], env=env, check=True, capture_output=True)
    subprocess.run([TRE, "user", "add", "ada", "--role", "admin"], env=env, check=True, capture_output=True)
    known = people(200, seed=51)
    write_delivery(base / "dsf", "dsf", [row("dsf", p) for p in known])
    assert run(env, "ingest", str(base / "dsf")).returncode == 0
    newcomers = people(4000, seed=52)
    rows = [row("kuhr", p) for p in newcomers + known for _ in range(4)]
    write_delivery(base / "kuhr", "kuhr", rows)
    # a complete, uninterrupted run: what "happened whole" looks like
    reference = base / "reference"
    shutil.copytree(base / "home", reference)
    started = time.monotonic()
    assert run({**env, "TRE_HOME": str(reference)}, "ingest", str(base / "kuhr")).returncode == 0
    return {
        "base": base,
        "env": env,
        "complete": counts(reference),
        "seconds": time.monotonic() - started,
    }


def crash_round(installation, name: str, kill) -> dict:
    base, env = installation["base"], installation["env"]
    home = base / name
    shutil.copytree(base / "home", home)
    env = {**env, "TRE_HOME": str(home)}
    before = state(home)
    process = subprocess.Popen(
        [TRE, "ingest", str(base / "kuhr"), "--as", "ada"],
        env=env,
        stdout=subprocess.DEVNULL,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        kill(process)
    finally:
        if process.poll() is None:
            process.send_signal(signal.SIGKILL)
        process.wait()
        process.stderr.close()
    recovered = in_process(env, "linkage", "report")  # any command recovers the zone first
    assert recovered == 0
    after = state(home)
    committed = counts(home)
    if committed["rows"] == 0:
        assert after == before, "an interrupted delivery left something behind"
        outcome = "rolled back"
    else:
        assert committed == installation["complete"], "a delivery landed partly"
        outcome = "landed whole"
    assert in_process(env, "ingest", str(base / "kuhr")) == 0  # a rerun completes
    assert counts(home) == installation["complete"]
    assert in_process(env, "audit", "verify") == 0
    with sqlite3.connect(home / "tre.sqlite") as con:
        recoveries = con.execute("SELECT count(*) FROM audit_events WHERE action = 'central.recover'").fetchall()[0][0]
    shutil.rmtree(home)
    return {"outcome": outcome, "recovered": recoveries > 0}


def in_process(env: dict, *argv: str) -> int:
    return main([*argv, "--as", "ada"], environ=env, stdout=io.StringIO(), stderr=io.StringIO())


def kill_after(line_part: str):
    """Kill the moment the ingest reports a step (the step's transaction has just committed)."""

    def kill(process):
        for line in process.stderr:
            if line_part in line:
                process.send_signal(signal.SIGKILL)
                return
        pytest.fail(f"the ingest never said {line_part!r}")

    return kill


def kill_at(seconds: float):
    def kill(process):
        time.sleep(seconds)
        process.send_signal(signal.SIGKILL)

    return kill


def test_kill_between_the_vault_and_the_store_commit_is_rolled_back(installation):
    result = crash_round(installation, "vault-only", kill_after("identities stored in the vault"))
    assert result == {"outcome": "rolled back", "recovered": True}


def test_kill_after_the_commit_point_is_rolled_forward(installation):
    result = crash_round(installation, "committed", kill_after(": committed"))
    assert result["outcome"] == "landed whole"


def test_kill_at_random_moments(installation):
    rng = random.Random(int(os.environ.get("TRE_CRASH_SEED", "20261127")))
    outcomes = [
        crash_round(installation, f"random-{i}", kill_at(rng.uniform(0.2, installation["seconds"] * 1.1)))["outcome"]
        for i in range(4)
    ]
    assert set(outcomes) <= {"rolled back", "landed whole"}
    print("outcomes of the random kills:", outcomes)
