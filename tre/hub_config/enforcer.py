"""Stop servers whose project lost its right to run: approval expired or revoked, project locked.

Runs two ways, with the same code:
- as the hub-managed service `tre-enforcer` (`tre hub enforce --every SECONDS`), which checks
  every running server against the metadata store every `hub_enforce_interval` seconds;
- from `tre project lock`, which stops the project's servers at once.

Both talk to the hub's REST API with the enforcer service's token, kept in
`$TRE_HUB_DIR/enforcer.token` (mode 0600) and the hub's address in `$TRE_HUB_DIR/hub.json`.
"""

from __future__ import annotations

import datetime as dt
import json
import os
import secrets
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from pathlib import Path

from tre import audit
from tre.config import Settings
from tre.db import Store
from tre.errors import PermissionDenied
from tre.workspace import check_server_access

SERVICE_NAME = "tre-enforcer"
SERVICE_SCOPES = ["list:users", "read:users", "read:servers", "delete:servers"]


def token_path(hub_dir: Path) -> Path:
    return hub_dir / "enforcer.token"


def info_path(hub_dir: Path) -> Path:
    return hub_dir / "hub.json"


def ensure_token(hub_dir: Path) -> str:
    """The enforcer service's API token, made once (mode 0600)."""
    path = token_path(hub_dir)
    if not path.exists():
        path.write_text(secrets.token_hex(32))
    path.chmod(0o600)
    return path.read_text().strip()


@dataclass(frozen=True)
class RunningServer:
    user: str
    project: str


class HubClient:
    """The few calls of JupyterHub's REST API the TRE needs."""

    def __init__(self, api_url: str, token: str, timeout: float = 30):
        self.api_url, self.token, self.timeout = api_url.rstrip("/"), token, timeout

    def _call(self, method: str, path: str):
        request = urllib.request.Request(
            f"{self.api_url}{path}", method=method, headers={"Authorization": f"token {self.token}"}
        )
        with urllib.request.urlopen(request, timeout=self.timeout) as response:
            body = response.read()
        return json.loads(body) if body else None

    def running_servers(self) -> list[RunningServer]:
        users = self._call("GET", "/users?state=active&limit=10000")
        return [
            RunningServer(user["name"], name)
            for user in users
            for name, server in (user.get("servers") or {}).items()
            # A spawn still pending was authorised when it began (and may be refused right now,
            # with its own 403): the round after it is ready decides.
            if server.get("ready")
        ]

    def stop_server(self, server: RunningServer) -> None:
        quote = urllib.parse.quote
        self._call("DELETE", f"/users/{quote(server.user)}/servers/{quote(server.project, safe='')}")


def connect(hub_dir: Path) -> HubClient | None:
    """A client of this installation's running hub, or None if no hub is running."""
    try:
        info = json.loads(info_path(hub_dir).read_text())
        token = token_path(hub_dir).read_text().strip()
    except (FileNotFoundError, json.JSONDecodeError):
        return None
    try:
        os.kill(info["pid"], 0)
    except (ProcessLookupError, KeyError):
        return None
    return HubClient(info["api_url"], token)


def revoked(
    store: Store, servers: list[RunningServer], today: dt.date, isolation: bool
) -> list[tuple[RunningServer, str]]:
    """The servers that may no longer run, each with the reason."""
    out = []
    with store.transaction() as session:
        for server in servers:
            try:
                check_server_access(session, server.user, server.project, today, isolation=isolation)
            except PermissionDenied as refusal:
                out.append((server, str(refusal)))
    return out


def stop_servers(
    store: Store, client: HubClient, targets: list[tuple[RunningServer, str]], *, actor: str, now: dt.datetime
) -> list[RunningServer]:
    """Stop each server (audited with its reason); returns those stopped."""
    stopped = []
    for server, reason in targets:
        try:
            client.stop_server(server)
        except urllib.error.HTTPError as e:
            if e.code != 404:  # 404: it stopped meanwhile
                raise
        with store.transaction() as session:
            audit.record(
                session,
                at=now,
                actor=actor,
                action="hub.server_revoked",
                object=f"project:{server.project}",
                details={"user": server.user, "reason": reason},
            )
        stopped.append(server)
    return stopped


def enforce_once(
    store: Store, client: HubClient, *, today: dt.date, now: dt.datetime, isolation: bool
) -> list[RunningServer]:
    """One round of the periodic check."""
    targets = revoked(store, client.running_servers(), today, isolation)
    return stop_servers(store, client, targets, actor=SERVICE_NAME, now=now)


def stop_project_servers(
    settings: Settings, store: Store, project_id: str, reason: str, *, actor: str, now: dt.datetime
) -> list[RunningServer] | None:
    """Stop every running server of a project now; None when no hub is running."""
    client = connect(settings.hub_dir)
    if client is None:
        return None
    try:
        servers = [s for s in client.running_servers() if s.project == project_id]
    except (urllib.error.URLError, OSError):
        return None
    return stop_servers(store, client, [(s, reason) for s in servers], actor=actor, now=now)


def run_forever(store: Store, client: HubClient, *, every: float, isolation: bool, log, daily=None) -> None:
    """The service loop: every round checks the running servers; `daily(now)` (the § 4-11
    retention run) is called once a day after that round's check. Each has its own errors: a
    failing round is logged and the next round checks again; a failing daily job is logged and
    runs again the next day, never keeping the servers from being checked. (Retention stops the
    servers of a project it locks itself, through the hub.)"""
    last_day = None
    while True:
        try:
            stopped = enforce_once(
                store, client, today=dt.date.today(), now=dt.datetime.now(dt.UTC), isolation=isolation
            )
            for server in stopped:
                log(f"stopped {server.user}/{server.project}: no longer authorised")
        except Exception as e:  # noqa: BLE001 - a service must outlive one bad round
            log(f"enforcement round failed: {e.__class__.__name__}: {e}")
        now = dt.datetime.now(dt.UTC)
        if daily is not None and now.date() != last_day:
            last_day = now.date()  # once a day, whether it finishes or not
            try:
                for line in daily(now):
                    log(line)
            except Exception as e:  # noqa: BLE001 - tried again tomorrow; enforcement goes on
                log(f"daily retention run failed (tried again tomorrow): {e.__class__.__name__}: {e}")
        time.sleep(every)
