"""The metadata store on a real PostgreSQL server: migrations, roles, approvals, the audit chain.

The server is started here for the test (Debian's PostgreSQL, as the `postgres` OS user, on
127.0.0.1 and a free port) and stopped afterwards.
"""

from __future__ import annotations

import glob
import os
import shutil
import socket
import subprocess
import tempfile
from pathlib import Path

import pytest
from alembic.autogenerate import compare_metadata
from alembic.runtime.migration import MigrationContext

from tre.db import Store
from tre.models import Base

REPO = Path(__file__).resolve().parents[2]
PG_BIN = sorted(glob.glob("/usr/lib/postgresql/*/bin"))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _as_postgres(*argv: str) -> subprocess.CompletedProcess:
    return subprocess.run(["runuser", "-u", "postgres", "--", *argv], capture_output=True, text=True, timeout=120)


@pytest.fixture(scope="module")
def postgres_url():
    if os.geteuid() != 0 or not PG_BIN:
        pytest.fail("this test starts PostgreSQL as the postgres OS user: run as root with Debian's postgresql (make)")
    bin_dir = PG_BIN[-1]
    data = Path(tempfile.mkdtemp(prefix="tre-pg-"))
    shutil.chown(data, "postgres", "postgres")
    port = _free_port()
    init = _as_postgres(f"{bin_dir}/initdb", "-D", str(data), "--auth=trust", "-U", "postgres", "--no-sync")
    assert init.returncode == 0, init.stderr
    options = f"-h 127.0.0.1 -p {port} -k {data}"
    start = _as_postgres(f"{bin_dir}/pg_ctl", "-D", str(data), "-o", options, "-l", str(data / "log"), "-w", "start")
    assert start.returncode == 0, start.stderr + (data / "log").read_text()
    try:
        created = _as_postgres(f"{bin_dir}/createdb", "-h", "127.0.0.1", "-p", str(port), "tre")
        assert created.returncode == 0, created.stderr
        yield f"postgresql+psycopg://postgres@127.0.0.1:{port}/tre"
    finally:
        _as_postgres(f"{bin_dir}/pg_ctl", "-D", str(data), "-m", "fast", "-w", "stop")
        shutil.rmtree(data, ignore_errors=True)


def test_migrations_build_the_models_on_postgresql(postgres_url):
    store = Store(postgres_url)
    store.migrate()
    with store.engine.connect() as connection:
        context = MigrationContext.configure(connection, opts={"compare_type": True})
        assert compare_metadata(context, Base.metadata) == []


@pytest.mark.slow
def test_the_cli_runs_on_postgresql(postgres_url, cli, tre_env):
    cli.environ["TRE_DB_URL"] = postgres_url
    cli.ok("init")
    cli.ok("user", "add", "ada", "--role", "admin")
    for name in ("rita", "reidar", "sara", "mona"):
        cli.ok("user", "add", name, "--role", "researcher", as_user="ada")
    shutil.copytree(REPO / "approvals", tre_env["TRE_APPROVALS_DIR"])
    synced = cli.ok("approvals", "sync", "--json", as_user="ada").json()
    assert len(synced["added"]) == 3
    # Two writers at once: every event lands and the chain stays whole (SELECT ... FOR UPDATE).
    env = {**cli.environ, "PATH": f"{Path(os.sys.executable).parent}:{os.environ['PATH']}"}
    procs = [
        subprocess.Popen(
            ["bash", "-c", f"for i in 1 2 3 4 5 6; do tre user add {p}$i --role officer --as ada || exit 1; done"],
            env=env,
        )
        for p in ("x", "y")
    ]
    assert [p.wait(timeout=300) for p in procs] == [0, 0]
    verified = cli.ok("audit", "verify", "--json", as_user="ada").json()
    assert verified["ok"] is True
    events = cli.ok("audit", "log", "--oldest-first", "--json", as_user="ada").json()
    assert [e["seq"] for e in events] == list(range(1, len(events) + 1))
    assert sum(e["action"] == "user.add" for e in events) == 1 + 4 + 12
