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
from conftest import CLI

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


@pytest.mark.slow
def test_backup_and_restore_with_the_metadata_store_on_postgresql(postgres_url, cli, tre_env, tmp_path):
    """`tre backup create` dumps a PostgreSQL store with pg_dump (online, one snapshot), and
    `tre restore` loads it into a fresh database with pg_restore."""
    from delivery_factory import people, row, write_delivery
    from sqlalchemy.engine import make_url

    from tre.config import load_settings

    url = make_url(postgres_url)
    for name in ("tre_backed_up", "tre_restored"):  # of their own: the module's database has users already
        created = _as_postgres(f"{PG_BIN[-1]}/createdb", "-h", url.host, "-p", str(url.port), name)
        assert created.returncode == 0, created.stderr
    cli.environ["TRE_DB_URL"] = url.set(database="tre_backed_up").render_as_string(hide_password=False)
    cli.ok("init")
    cli.ok("user", "add", "ada", "--role", "admin")
    write_delivery(tmp_path / "d", "dsf", [row("dsf", p) for p in people(20, seed=71)])
    cli.ok("ingest", str(tmp_path / "d"), as_user="ada")
    backup = cli.ok("backup", "create", "--json", as_user="ada").json()
    assert cli.ok("backup", "verify", backup["archive"], "--json", as_user="ada").json()["ok"] is True
    fresh = {
        **tre_env,
        "TRE_HOME": str(tmp_path / "restored"),
        "TRE_DB_URL": url.set(database="tre_restored").render_as_string(hide_password=False),
    }
    key = load_settings(fresh).master_key_file
    key.parent.mkdir(mode=0o700, parents=True)
    shutil.copy2(load_settings(cli.environ).master_key_file, key)
    restored = CLI(fresh)
    restored.ok("restore", backup["archive"], "--key", backup["key_file"])
    assert restored.ok("audit", "verify", "--json", as_user="ada").json()["ok"] is True
    first = cli.ok("linkage", "report", "--json", as_user="ada").json()
    second = restored.ok("linkage", "report", "--json", as_user="ada").json()
    first.pop("generated_at"), second.pop("generated_at")
    assert first == second
