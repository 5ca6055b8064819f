"""A real hub for a test module: a fresh TRE, real OS accounts, namespaces and firewall.

One hub per module (starting one takes a few seconds). Everything it makes is removed at the
end: the hub and its servers are stopped by PID, the OS accounts and groups of the module's
random prefix are deleted, and the test fails if a namespace of the hub is left behind.
"""

from __future__ import annotations

import datetime as dt
import grp
import os
import random
import shutil
import socket
import string
import sys
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import pytest
from factories import make_approval, make_member, make_project, make_user
from totp_codes import fresh_code

from tre.cli import main
from tre.config import Settings, load_settings
from tre.credentials import current_totp
from tre.db import Store
from tre.enums import Role
from tre.hub_config import cgroups, network
from tre.hub_config.launch import RunningHub, set_demo_logins, start_hub_background, stop_hub
from tre.models import Project
from tre.os_accounts import PosixAccounts
from tre.volumes import volumes
from tre.workspace import Workspace, isolation_enabled, seal_data

from .hubclient import Researcher, login_token

REPO = Path(__file__).resolve().parents[2]
ARTIFACTS = REPO / "test-artifacts"  # screenshots (git-ignored)
CHROMIUM = Path("/usr/bin/chromium")
CHROMIUM_ARGS = [
    "--no-sandbox",
    "--disable-gpu",
    "--disable-dev-shm-usage",
    "--no-first-run",
    "--disable-background-networking",
    "--disable-component-update",
    "--disable-sync",
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _tools_missing() -> str | None:
    if os.geteuid() != 0:
        return "the hub's isolation needs root"
    for tool in ("ip", "nft", "useradd"):
        if not shutil.which(tool) and not Path("/usr/sbin", tool).exists():
            return f"{tool} is not installed (make setup installs it)"
    return None


@dataclass
class Hub:
    settings: Settings
    env: dict
    store: Store
    running: RunningHub
    logins: dict
    prefix: str
    created_projects: list = field(default_factory=list)
    researchers: dict = field(default_factory=dict)

    @property
    def url(self) -> str:
        return self.running.url

    def cli(self, *argv: str, as_user: str | None = "ada") -> tuple[int, str, str]:
        import io

        out, err = io.StringIO(), io.StringIO()
        argv = [*argv, *(["--as", as_user] if as_user else [])]
        code = main(list(argv), environ=self.env, stdout=out, stderr=err)
        return code, out.getvalue(), err.getvalue()

    def code_for(self, name: str, *, use: bool = True) -> str:
        """A code the hub has not accepted yet: each is good for one login (waits if needed).
        `use=False` for an attempt meant to fail on something else: the code stays unused."""
        if not use:
            return current_totp(self.logins[name].totp_secret)
        return fresh_code(self.logins[name].totp_secret)

    def researcher(self, name: str, *, fresh: bool = False) -> Researcher:
        """A researcher logged in through the REST API (one login per name, unless `fresh`)."""
        if fresh or name not in self.researchers:
            login = self.logins[name]
            response = login_token(self.url, name, login.password, self.code_for(name))
            assert response.status == 201, response
            self.researchers[name] = Researcher(self.url, name, response.body["token"])
        return self.researchers[name]

    def workspace(self, project: str) -> Workspace:
        return Workspace(self.settings.projects_dir / project)

    def audit(self, action: str) -> list[dict]:
        import json

        code, out, err = self.cli("audit", "log", "--action", action, "--json")
        assert code == 0, err
        return json.loads(out)


def write_extract(ws: Workspace, rows: int, label: str) -> None:
    """A small DuckDB extract, as the extracts module would write it (as root, then sealed)."""
    ws.data.mkdir(parents=True, exist_ok=True)
    con = duckdb.connect(str(ws.extract))
    con.execute("CREATE TABLE contacts AS SELECT i AS person, ? AS project FROM range(?) t(i)", [label, rows])
    con.close()


PROJECTS = {
    # project: (members, approval valid until (days from today))
    "alpha": (["rita", "olav"], 365),
    "beta": (["rita"], 365),
    "gamma": (["rita"], -1),  # the approval ended yesterday
    "delta": (["rita"], 365),  # its approval is ended during a test
    "epsilon": (["rita"], 365),  # locked during a test
}


@pytest.fixture(scope="module")
def hub(tmp_path_factory) -> Hub:
    missing = _tools_missing()
    if missing:
        pytest.skip(missing)
    with running_hub(tmp_path_factory, isolation="on") as hub:
        yield hub


@pytest.fixture(scope="module")
def dev_hub(tmp_path_factory) -> Hub:
    """A hub with isolation off: what a developer without root gets."""
    with running_hub(tmp_path_factory, isolation="off", projects={"alpha": (["rita"], 365)}) as hub:
        yield hub


@contextmanager
def running_hub(tmp_path_factory, *, isolation: str, projects: dict = PROJECTS, settings_env: dict | None = None):
    root = tmp_path_factory.mktemp("hub")
    root.chmod(0o755)  # pytest's temp dirs are 0700; the servers' accounts must reach projects/
    prefix = "t" + "".join(random.choices(string.ascii_lowercase, k=4))
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRE_")}
    env["TRE_CLI_IDENTITY"] = "demo"  # who acts is asserted here, as in make demo (tre/identity.py)
    env.update(
        TRE_HOME=str(root / "home"),
        TRE_PROJECTS_DIR=str(root / "projects"),
        TRE_APPROVALS_DIR=str(root / "approvals"),
        TRE_OS_ACCOUNT_PREFIX=prefix,
        TRE_HUB_PORT=str(_free_port()),
        TRE_HUB_PROXY_API_PORT=str(_free_port()),
        TRE_HUB_API_PORT=str(_free_port()),
        TRE_REVIEW_PORT=str(_free_port()),
        TRE_STATS_PORT=str(_free_port()),
        TRE_HUB_ENFORCE_INTERVAL="2",
        TRE_HUB_ISOLATION=isolation,
        TRE_HUB_NOTEBOOKS_DIR=str(root / "notebooks"),
        PATH=f"{Path(sys.executable).parent}:{os.environ.get('PATH', '/usr/bin:/bin')}",
        # Small project volumes: sparse, but each is a loop device while the module runs.
        TRE_PROJECT_DISK_QUOTA="256M",
    )
    env.update(settings_env or {})
    (root / "notebooks").mkdir()
    (root / "notebooks" / "example.ipynb").write_text(
        '{"cells": [], "metadata": {}, "nbformat": 4, "nbformat_minor": 5}'
    )
    settings = load_settings(env)
    assert main(["init"], environ=env) == 0
    assert main(["user", "add", "ada", "--role", "admin"], environ=env) == 0
    store = Store(settings.db_url)
    today = dt.date.today()
    with store.transaction() as session:
        users = {name: make_user(session, name, Role.RESEARCHER) for name in ("rita", "olav", "nils")}
        for project_id, (members, days) in projects.items():
            project = make_project(session, project_id)
            for name in members:
                make_member(session, project, users[name])
            make_approval(session, project, valid_until=today + dt.timedelta(days=days))
    hub = None
    running = None
    try:
        for project_id in projects:
            assert main(["project", "provision", project_id, "--as", "ada"], environ=env) == 0
        for project_id, rows in (("alpha", 42), ("beta", 7)):
            if project_id not in projects:
                continue
            ws = Workspace(settings.projects_dir / project_id)
            write_extract(ws, rows, project_id)
            with store.transaction() as session:
                group = session.get(Project, project_id).os_group
            seal_data(ws, grp.getgrnam(group).gr_gid if group else None)
        logins = {
            login.user: login
            for login in set_demo_logins(
                store, ["ada", "rita", "olav", "nils"], actor="ada", settings=settings, environ=env
            )
        }
        running = start_hub_background(settings, env)
        hub = Hub(settings, env, store, running, logins, prefix)
        yield hub
    finally:
        hub_net = network.load(settings.hub_dir / "network.json")
        if running is not None:
            stop_hub(running.pid)
        _release_volumes(settings, projects)
        _remove_accounts(prefix)
        if hub_net is not None:
            left = sorted(n for n in os.listdir(network.NETNS_DIR) if n.startswith(hub_net.netns_prefix))
            assert not left, f"the hub left network namespaces behind: {left}"
            assert not (settings.hub_dir / "network.json").exists(), "the hub left its network block allocated"
            groups = cgroups.existing(cgroups.Layout.discover(), cgroups.hub_id(settings.hub_dir))
            assert not groups, f"the hub left control groups behind: {[g.name for g in groups]}"


def _release_volumes(settings: Settings, projects: dict) -> None:
    found = volumes(settings, isolation=isolation_enabled(settings))
    for project_id in projects if found else ():
        found.release(settings.projects_dir / project_id, project_id)


def _remove_accounts(prefix: str) -> None:
    import grp
    import pwd

    accounts = [p.pw_name for p in pwd.getpwall() if p.pw_name.startswith(prefix + "-")]
    groups = [g.gr_name for g in grp.getgrall() if g.gr_name.startswith(prefix + "-")]
    PosixAccounts().remove(accounts, groups)
