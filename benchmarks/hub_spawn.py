"""Benchmark: 20 concurrent project-server spawns on one machine, with full isolation.

Builds a throw-away TRE (20 researchers in 4 projects, so 20 OS accounts and 20 network
namespaces), starts the hub, then measures, in the same run:

- baseline: one spawn alone (login excluded), until the server is ready behind the proxy;
- 20 spawns requested at once, until every server is ready: wall time and per-spawn times;
- memory: resident size of each server's process tree.

Everything it creates is removed at the end (hub stopped by PID, accounts and groups deleted).
Run as root: `.venv/bin/python benchmarks/hub_spawn.py [--servers 20]`.
"""

from __future__ import annotations

import argparse
import grp
import os
import pwd
import random
import shutil
import socket
import statistics
import string
import sys
import tempfile
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO / "tests"))

from e2e.hubclient import Researcher, login_token  # noqa: E402
from factories import make_open_project, make_user  # noqa: E402

from tre.cli import main  # noqa: E402
from tre.config import load_settings  # noqa: E402
from tre.credentials import current_totp  # noqa: E402
from tre.db import Store  # noqa: E402
from tre.hub_config.launch import set_demo_logins, start_hub_background, stop_hub  # noqa: E402
from tre.os_accounts import PosixAccounts  # noqa: E402
from tre.volumes import volumes  # noqa: E402


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def tree_rss_mb(pid: int) -> float:
    """Resident memory of a process and its descendants, in MB."""
    children: dict[int, list[int]] = {}
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                ppid = int(Path(f"/proc/{entry}/stat").read_text().rsplit(")", 1)[1].split()[1])
            except (OSError, IndexError):
                continue
            children.setdefault(ppid, []).append(int(entry))
    total, todo = 0, [pid]
    while todo:
        p = todo.pop()
        try:
            for line in Path(f"/proc/{p}/status").read_text().splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1])
        except OSError:
            pass
        todo += children.get(p, [])
    return total / 1024


def server_pids(prefix: str) -> list[int]:
    uids = {p.pw_uid for p in pwd.getpwall() if p.pw_name.startswith(prefix + "-")}
    pids = []
    for entry in os.listdir("/proc"):
        if entry.isdigit():
            try:
                status = Path(f"/proc/{entry}/status").read_text()
            except OSError:
                continue
            uid = int(next(line for line in status.splitlines() if line.startswith("Uid:")).split()[1])
            cmdline = Path(f"/proc/{entry}/cmdline").read_bytes()
            if uid in uids and b"jupyterhub-singleuser" in cmdline:
                pids.append(int(entry))
    return pids


def spawn_and_wait(researcher: Researcher, project: str) -> float:
    start = time.monotonic()
    response = researcher.spawn(project)
    if response.status not in (201, 202):
        raise RuntimeError(f"spawn {researcher.name}/{project} failed: {response.status} {response.body}")
    researcher.wait_ready(project, timeout=300)
    return time.monotonic() - start


def main_(servers: int) -> None:
    if os.geteuid() != 0:
        sys.exit("run as root: the benchmark measures spawns with OS accounts and namespaces")
    root = Path(tempfile.mkdtemp(prefix="tre-bench-"))
    root.chmod(0o755)
    prefix = "b" + "".join(random.choices(string.ascii_lowercase, k=4))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRE_")}
    env["TRE_CLI_IDENTITY"] = "demo"  # who acts is asserted here, as in make demo (tre/identity.py)
    env.update(
        TRE_HOME=str(root / "home"),
        TRE_PROJECTS_DIR=str(root / "projects"),
        TRE_APPROVALS_DIR=str(root / "approvals"),
        TRE_OS_ACCOUNT_PREFIX=prefix,
        TRE_HUB_PORT=str(free_port()),
        TRE_HUB_PROXY_API_PORT=str(free_port()),
        TRE_HUB_API_PORT=str(free_port()),
        TRE_HUB_ISOLATION="on",
        PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
    )
    settings = load_settings(env)
    assert main(["init"], environ=env) == 0
    assert main(["user", "add", "ada", "--role", "admin"], environ=env) == 0
    store = Store(settings.db_url)
    names = [f"r{i:02d}" for i in range(servers + 1)]  # one more for the baseline
    projects = [f"p{i}" for i in range(4)]
    with store.transaction() as session:
        users = [make_user(session, n) for n in names]
        for i, project in enumerate(projects):
            make_open_project(session, project, *users[i::4])
    running = None
    try:
        for project in projects:
            assert main(["project", "provision", project, "--as", "ada"], environ=env) == 0
        logins = {
            login.user: login for login in set_demo_logins(store, names, actor="ada", settings=settings, environ=env)
        }
        running = start_hub_background(settings, env)
        researchers = []
        for name in names:
            login = logins[name]
            token = login_token(running.url, name, login.password, current_totp(login.totp_secret)).body["token"]
            researchers.append((Researcher(running.url, name, token), projects[names.index(name) % 4]))

        baseline = spawn_and_wait(*researchers[0])
        start = time.monotonic()
        with ThreadPoolExecutor(max_workers=servers) as pool:
            times = list(pool.map(lambda pair: spawn_and_wait(*pair), researchers[1:]))
        wall = time.monotonic() - start
        pids = server_pids(prefix)
        rss = [tree_rss_mb(pid) for pid in pids]

        print(
            f"machine: {os.cpu_count()} cores, {os.sysconf('SC_PHYS_PAGES') * os.sysconf('SC_PAGE_SIZE') / 2**30:.0f} GiB"
        )
        print(f"baseline, one spawn alone:        {baseline:6.2f} s")
        print(f"{servers} concurrent spawns, all ready: {wall:6.2f} s wall")
        print(
            f"  per spawn: median {statistics.median(times):.2f} s, slowest {max(times):.2f} s, "
            f"fastest {min(times):.2f} s"
        )
        print(f"memory: {len(rss)} servers, median {statistics.median(rss):.0f} MB each (process tree RSS, no kernel)")
    finally:
        if running is not None:
            stop_hub(running.pid)
        project_volumes = volumes(settings, isolation=True)
        for project in projects if project_volumes else ():
            project_volumes.release(settings.projects_dir / project, project)
        accounts = [p.pw_name for p in pwd.getpwall() if p.pw_name.startswith(prefix + "-")]
        groups = [g.gr_name for g in grp.getgrall() if g.gr_name.startswith(prefix + "-")]
        PosixAccounts().remove(accounts, groups)
        shutil.rmtree(root, ignore_errors=True)


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--servers", type=int, default=20)
    main_(parser.parse_args().servers)
