"""Starting and stopping the hub: `tre hub` in the foreground, or in the background for the demo.

`run_hub` sets up what JupyterHub cannot: the hub's block of the namespace network and its
firewall (with isolation), the state directory, the enforcer's token; then runs JupyterHub as
a child process with the TRE's configuration, forwards SIGTERM/SIGINT to it, and tears the
network down when it exits. JupyterHub itself stops every server at shutdown; whatever is left
in the servers' control groups then (a JupyterHub killed with SIGKILL stops nothing) is
killed here, and at the next start of the same hub.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import sys
import time
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tre import credentials
from tre.config import Settings, ensure_private_dir
from tre.db import Store, utc_now
from tre.errors import ConfigError, UserError
from tre.hub_config import apigate, cgroups, enforcer, network
from tre.hub_config.plan import CONFIG_FILE, HubPlan, settings_environment
from tre.sealed import login_box
from tre.workspace import ISOLATION_OFF_WARNING, isolation_enabled


def running_hub_pid(hub_dir: Path) -> int | None:
    """The pid of the hub running from `hub_dir`, or None."""
    try:
        pid = json.loads(enforcer.info_path(hub_dir).read_text())["pid"]
        os.kill(pid, 0)
        return pid
    except (FileNotFoundError, KeyError, ValueError, ProcessLookupError):
        return None


def run_hub(settings: Settings, environ: dict, *, info=print) -> int:
    """Run JupyterHub in the foreground until it exits; returns its exit code."""
    hub_dir = ensure_private_dir(settings.hub_dir, "the hub's state directory (TRE_HUB_DIR)")
    pid = running_hub_pid(hub_dir)
    if pid is not None:
        raise UserError(f"a hub of this installation is already running (pid {pid}): stop it first")
    if not settings.hub_proxy_command.exists():
        raise ConfigError(f"configurable-http-proxy not found at {settings.hub_proxy_command}: run `make node`")
    isolation = isolation_enabled(settings)
    if not isolation:
        info(ISOLATION_OFF_WARNING)
    shutil.rmtree(hub_dir / "slots", ignore_errors=True)
    if isolation:
        _kill_server_groups(hub_dir, info)
    net = (
        network.allocate(hub_dir / "network.json", settings.hub_netns_pool, settings.hub_api_port)
        if isolation
        else None
    )
    gate = None
    try:
        plan = HubPlan(settings, isolation, net)
        if net is not None:
            gate = apigate.RunningGate((net.hub_address, net.api_port), plan.hub_bind_url).start()
        env = {**environ, **settings_environment(settings)}
        # JupyterHub, its proxy and its services in a group of their own: nothing of the hub
        # outlives it, even when it exits without stopping its services (a failed start).
        group = (
            cgroups.create(cgroups.Layout.discover(), cgroups.hub_id(hub_dir), cgroups.HUB_GROUP, cgroups.Limits())
            if isolation
            else None
        )
        child = subprocess.Popen(
            [sys.executable, "-m", "jupyterhub", "-f", str(CONFIG_FILE)],
            cwd=hub_dir,
            env=env,
            preexec_fn=(lambda: cgroups.join(group.as_list())) if group else None,
        )
        enforcer.info_path(hub_dir).write_text(
            json.dumps(
                {"pid": os.getpid(), "jupyterhub_pid": child.pid, "api_url": plan.api_url, "url": plan.public_url}
            )
        )
        forward = lambda signum, frame: child.send_signal(signum)  # noqa: E731
        previous = {s: signal.signal(s, forward) for s in (signal.SIGTERM, signal.SIGINT)}
        try:
            return child.wait()
        finally:
            for s, handler in previous.items():
                signal.signal(s, handler)
    finally:
        if gate is not None:
            gate.stop()
        enforcer.info_path(hub_dir).unlink(missing_ok=True)
        if isolation:
            _kill_server_groups(hub_dir, info)
        if net is not None:
            network.release(net)
            (hub_dir / "network.json").unlink(missing_ok=True)
        shutil.rmtree(hub_dir / "slots", ignore_errors=True)


def _kill_server_groups(hub_dir: Path, info) -> None:
    layout = cgroups.Layout.discover()
    hub = cgroups.hub_id(hub_dir)
    servers = [g for g in cgroups.existing(layout, hub) if g.name != cgroups.HUB_GROUP and g.pids()]
    try:
        cgroups.release_all(layout, hub)
    except OSError as problem:
        info(f"WARNING: the hub's control groups could not all be removed ({problem}); the next start retries")
    if servers:
        info(f"killed the processes of {len(servers)} server(s) the hub left behind")


@dataclass(frozen=True)
class RunningHub:
    pid: int
    url: str
    log: Path


def wait_until_ready(url: str, timeout: float = 90, pid: int | None = None) -> None:
    """Wait until the hub answers through its proxy (GET /hub/api)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pid is not None:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                raise UserError("the hub exited while starting: see its log") from None
        try:
            with urllib.request.urlopen(f"{url}/hub/api/", timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        time.sleep(0.25)
    raise UserError(f"the hub did not answer at {url} within {timeout:.0f} s: see its log")


def start_hub_background(settings: Settings, environ: dict, *, timeout: float = 90) -> RunningHub:
    """Start `tre hub` as a background process and wait until it answers (for `make demo`)."""
    hub_dir = ensure_private_dir(settings.hub_dir, "the hub's state directory (TRE_HUB_DIR)")
    log = hub_dir / "hub.log"
    tre = Path(sys.executable).parent / "tre"
    with open(log, "ab") as out:
        proc = subprocess.Popen(
            [str(tre), "hub"], env=environ, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=hub_dir
        )
    url = f"http://{settings.hub_ip}:{settings.hub_port}"
    try:
        wait_until_ready(url, timeout, pid=proc.pid)
    except UserError:
        stop_hub(proc.pid)
        raise UserError(f"the hub did not start: see {log}") from None
    return RunningHub(proc.pid, url, log)


def stop_hub(pid: int, timeout: float = 60) -> None:
    """Stop a hub started by `start_hub_background` (it stops its servers and proxy)."""
    try:
        os.kill(pid, signal.SIGTERM)
    except ProcessLookupError:
        return
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        try:
            if os.waitpid(pid, os.WNOHANG)[0] == pid:
                return
        except ChildProcessError:
            try:
                os.kill(pid, 0)
            except ProcessLookupError:
                return
        time.sleep(0.2)
    os.kill(pid, signal.SIGKILL)


@dataclass(frozen=True)
class DemoLogin:
    user: str
    password: str
    totp_secret: str


def set_demo_logins(store: Store, names: list[str], *, actor: str, settings: Settings, environ) -> list[DemoLogin]:
    """Give each demo user a fresh random password and TOTP secret (audited, not the values)."""
    logins = []
    with store.transaction() as session:
        box = login_box(settings, environ, session, now=utc_now())
        for name in names:
            password = credentials.generate_password()
            credentials.set_password(session, name, password, actor=actor, now=utc_now())
            secret = credentials.enrol_totp(session, name, actor=actor, now=utc_now(), box=box)
            logins.append(DemoLogin(name, password, secret))
    return logins


def format_demo_accounts(url: str, logins: list[DemoLogin], roles: dict[str, str]) -> str:
    """The text `make demo` ends with: the hub's URL and how to log in as each demo user."""
    lines = [
        f"JupyterHub: {url}/hub/login",
        f"Output review page (officers; researchers submit there too): {url}/services/tre-review/",
        "",
        "Demo accounts (password, then the current 2FA code):",
    ]
    for login in logins:
        lines.append(f"  {login.user:<12} {roles.get(login.user, ''):<22} password {login.password}")
        lines.append(f"  {'':<12} 2FA: `echo {login.totp_secret} | tre user totp-code`  or add to an authenticator app")
    return "\n".join(lines)
