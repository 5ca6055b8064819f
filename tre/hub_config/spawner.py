"""The spawner: one server per (researcher, project), authorised by the TRE at every start.

A named server's name is the project id (`/user/<name>/<project>/`). `TRESpawner.start`
first asks the metadata store whether the user may run a server on that project today
(`tre.workspace.check_server_access`); a refusal is audited and shown as a 403. With
isolation on it then makes the server's network namespace, copies the example notebooks at
the first start, and starts `jupyterhub-singleuser` through the sandbox launcher, which runs it
as the pair's OS account with only that project's folders (see `sandbox.py`, `network.py`).

With isolation every server also gets a control group of its own with its limits (`cgroups.py`):
stopping the server, for whatever reason (the user, `tre project lock`, the enforcer, the hub's
shutdown), kills every process in it, however it detached from the server's process tree. The
project's work/, requests/ and the account's home live on the project's volume (`tre.volumes`),
which bounds the disk space it can take.
"""

from __future__ import annotations

import asyncio
import os
import pwd
import sys
from pathlib import Path

from jupyterhub.spawner import LocalProcessSpawner
from tornado import web
from traitlets import Bool, Dict, Float, Integer, List, Unicode, default

from tre.config import PACKAGE_DIR
from tre.errors import ConfigError, PermissionDenied
from tre.hub_config import cgroups, network
from tre.hub_config.sandbox import SandboxSpec
from tre.hub_config.store import hub_store
from tre.project_readme import build_project_readme
from tre.volumes import ProjectVolumes
from tre.workspace import (
    EXTRACT_FILE,
    Workspace,
    check_server_access,
    disclosure_threshold,
    project_notebooks,
    seed_notebooks,
    workspace,
)

JUPYTER_CONFIG_DIR = PACKAGE_DIR / "hub_config" / "jupyter"
JUPYTER_DATA_DIR = JUPYTER_CONFIG_DIR / "data"


class TRESpawner(LocalProcessSpawner):
    """LocalProcessSpawner that checks the TRE's approvals and isolates each project server."""

    db_url = Unicode(help="SQLAlchemy URL of the TRE metadata store.").tag(config=True)
    projects_dir = Unicode(help="The TRE's projects directory on the host (projects_dir).").tag(config=True)
    hub_dir = Unicode(help="The hub's state directory: researchers' homes and the network state live here.").tag(
        config=True
    )
    notebooks_dir = Unicode(help="Example notebooks copied into work/ at a project's first server start.").tag(
        config=True
    )
    isolation = Bool(
        True,
        help="Run each server as its (member, project) OS account in its own mount and network namespace. "
        "Needs root. Off: servers run as the hub's user (development only).",
    ).tag(config=True)
    tmp_size = Unicode("1g", help="Size limit of the server's private /tmp (a tmpfs).").tag(config=True)
    read_only_paths = List(
        Unicode(),
        help="Host paths the sandbox shows read-only at the same path: the Python environment and the tre package.",
    ).tag(config=True)

    pids_max = Integer(0, help="Processes and threads per server (cgroup pids.max); 0: no limit.").tag(config=True)
    memory_max = Unicode("0", help="Memory per server, e.g. 8G (cgroup memory.max); 0: no limit.").tag(config=True)
    cpus = Float(0.0, help="CPUs' worth of time per server (cgroup cpu.max); 0: no limit.").tag(config=True)
    volumes_dir = Unicode(help="Where the projects' volumes live ($TRE_HOME/volumes).").tag(config=True)
    disk_quota = Integer(0, help="Bytes per project volume; 0: no volume.").tag(config=True)

    link = Dict(help="The server's network namespace and veth pair, while it runs.")
    cgroup = Dict(help="The server's control group directories, while it runs.")

    @default("read_only_paths")
    def _default_read_only(self):
        paths = {str(Path(sys.prefix)), str(PACKAGE_DIR)}
        return sorted(paths)

    @property
    def store(self):
        return hub_store(self.db_url)

    @property
    def project_id(self) -> str:
        return self.name

    @property
    def workspace(self) -> Workspace:
        return workspace(Path(self.projects_dir), self.project_id)

    @property
    def inside_project_dir(self) -> str:
        return f"/projects/{self.project_id}" if self.isolation else str(self.workspace.root)

    # --- state kept across hub restarts ---------------------------------------------------

    def get_state(self):
        state = super().get_state()
        if self.link:
            state["link"] = self.link
        if self.cgroup:
            state["cgroup"] = self.cgroup
        return state

    def load_state(self, state):
        super().load_state(state)
        self.link = state.get("link", {})
        self.cgroup = state.get("cgroup", {})

    # --- environment ----------------------------------------------------------------------

    def make_preexec_fn(self, name):
        # The sandbox launcher drops privileges itself (after building the mount namespace).
        return None

    def user_env(self, env):
        account = self._grant_account or f"{self.user.name}"
        home = f"/home/{account}" if self.isolation else str(self._home_on_host)
        env.update(USER=account, HOME=home, SHELL="/bin/sh")
        return env

    def get_env(self):
        env = super().get_env()
        project_dir = self.inside_project_dir
        venv_bin = str(Path(sys.executable).parent)
        env.update(
            TRE_PROJECT=self.project_id,
            TRE_PROJECT_DIR=project_dir,
            TRE_EXTRACT=f"{project_dir}/{EXTRACT_FILE}",
            PATH=f"{venv_bin}:/usr/local/bin:/usr/bin:/bin",
            # Jupyter's configuration comes from the TRE (read-only), never from the home
            # directory, so a researcher cannot switch terminals or file downloads back on.
            JUPYTER_CONFIG_DIR=str(JUPYTER_CONFIG_DIR),
            # The TRE's kernel spec (shell commands answered, tre's errors in one line) and its
            # JupyterLab extension (Parquet preview, notes where Download and Terminal were).
            JUPYTER_PATH=str(JUPYTER_DATA_DIR),
            JUPYTERLAB_SETTINGS_DIR=f"{env['HOME']}/.jupyter/lab/user-settings",
            JUPYTERLAB_WORKSPACES_DIR=f"{env['HOME']}/.jupyter/lab/workspaces",
            PYTHONNOUSERSITE="1",
        )
        if self._threshold is not None:
            # The project's threshold, decided centrally (tre.safe can only raise it).
            env["TRE_OUTPUT_THRESHOLD"] = str(self._threshold)
        return env

    def get_args(self):
        args = super().get_args()
        if not self.isolation and os.geteuid() == 0:
            # Isolation off on a root-run hub (development): the server runs as root too.
            args.append("--ServerApp.allow_root=True")
        return args

    @default("notebook_dir")
    def _default_notebook_dir(self):
        return self.inside_project_dir

    @default("default_url")
    def _default_default_url(self):
        return "/lab/tree/work"

    @default("cmd")
    def _default_cmd(self):
        return [str(Path(sys.executable).parent / "jupyterhub-singleuser")]

    _grant_account: str | None = None
    _threshold: int | None = None

    @property
    def volumes(self) -> ProjectVolumes | None:
        if not (self.isolation and self.disk_quota):
            return None
        return ProjectVolumes(Path(self.volumes_dir), self.disk_quota)

    @property
    def _home_on_host(self) -> Path:
        name = self._grant_account or f"{self.user.name}-{self.project_id}"
        if self.volumes:
            return self.volumes.home(self.project_id, name)
        return Path(self.hub_dir) / "homes" / name

    def limits(self) -> cgroups.Limits:
        return cgroups.Limits(
            pids=self.pids_max, memory=cgroups.parse_size(self.memory_max, "hub_server_memory_max"), cpus=self.cpus
        )

    # --- start and stop -------------------------------------------------------------------

    async def _authorise(self):
        user, project, isolation = self.user.name, self.project_id, self.isolation
        try:
            return await self.store.call(
                lambda s: check_server_access(s, user, project, self.store.today(), isolation=isolation)
            )
        except PermissionDenied as refusal:
            await self.store.record(
                actor=user, action="hub.spawn_refused", object=f"project:{project}", details={"reason": str(refusal)}
            )
            raise web.HTTPError(403, str(refusal)) from None

    async def start(self):
        grant = await self._authorise()
        self._grant_account = grant.os_account
        project = self.project_id
        self._threshold = await self.store.call(lambda s: disclosure_threshold(s, project))
        ws = self.workspace
        if self.volumes:
            await asyncio.to_thread(self.volumes.ensure, ws.root, self.project_id)
        home = self._home_on_host
        home.mkdir(parents=True, exist_ok=True)
        home.chmod(0o700)
        owner = None
        if self.isolation:
            entry = pwd.getpwnam(grant.os_account)
            owner = (entry.pw_uid, entry.pw_gid)
            os.chown(home, *owner)
        notebooks = [n.name for n in project_notebooks(Path(self.notebooks_dir), project)]
        review = self.hub.base_url.removesuffix("hub/") + f"services/tre-review/projects/{project}"
        readme = await self.store.call(lambda s: build_project_readme(s, project, ws, notebooks, review_url=review))
        seeded = seed_notebooks(ws, Path(self.notebooks_dir), owner, readme=readme)
        if seeded.refused:
            await self.store.record(
                actor=self.user.name,
                action="project.file_refused",
                object=f"project:{self.project_id}",
                details={
                    "folder": "work",
                    "names": seeded.refused,
                    "rule": "not a regular file: never written through",
                },
            )

        if self.isolation:
            net = network.load(Path(self.hub_dir) / "network.json")
            if net is None:
                raise web.HTTPError(500, "the hub's network is not set up: start the hub with `tre hub`")
            slot = network.reserve_slot(net, Path(self.hub_dir) / "slots")
            try:
                link = await network.create_link(net, slot)
            except Exception:
                network.free_slot(Path(self.hub_dir) / "slots", slot)
                raise
            self.link = {**link.as_dict(), "slot": slot}
            self.ip, self.port = link.server_ip, network.SERVER_PORT
            group = await self._make_cgroup(grant.os_account)
            spec = SandboxSpec(
                account=grant.os_account,
                uid=owner[0],
                gid=owner[1],
                group=grant.os_group,
                project_id=self.project_id,
                project_dir=str(ws.root),
                home_dir=str(home),
                netns=link.netns_path,
                read_only=list(self.read_only_paths),
                tmp_size=self.tmp_size,
                cgroups=group.as_list(),
            )
            self.cmd = [
                sys.executable,
                "-I",
                "-m",
                "tre.hub_config.sandbox",
                spec.to_json(),
                "--",
                *self._default_cmd(),
            ]
        else:
            self.ip = "127.0.0.1"
            self.popen_kwargs = {"cwd": str(ws.root)}
        try:
            url = await super().start()
        except Exception:
            await self._kill_cgroup()
            await self._remove_link()
            raise
        await self.store.record(
            actor=self.user.name,
            action="hub.spawn",
            object=f"project:{self.project_id}",
            details={"os_account": grant.os_account, "isolation": self.isolation},
        )
        return url

    async def stop(self, now=False):
        was_running = bool(self.pid)
        await super().stop(now=now)
        # The server's pid is gone; whatever it started, detached or not, goes with its group.
        killed = await self._kill_cgroup()
        if killed:
            self.log.info("killed %d process(es) left in %s's group after the server stopped", killed, self._log_name)
        await self._remove_link()
        if was_running:
            await self.store.record(actor=self.user.name, action="hub.stop", object=f"project:{self.project_id}")

    async def _make_cgroup(self, account: str) -> cgroups.ServerGroup:
        try:
            layout = cgroups.Layout.discover()
            group = await asyncio.to_thread(
                cgroups.create, layout, cgroups.hub_id(self.hub_dir), account, self.limits()
            )
        except (ConfigError, OSError) as problem:
            await self._remove_link()
            raise web.HTTPError(500, f"the server's control group could not be made: {problem}") from None
        self.cgroup = {
            "name": group.name,
            "v2": str(group.v2) if group.v2 else None,
            "v1": {k: str(v) for k, v in group.v1.items()},
        }
        return group

    async def _kill_cgroup(self) -> int:
        """Kill every process of the server's group and remove it; returns how many were left."""
        if not self.cgroup:
            return 0
        saved = self.cgroup
        group = cgroups.ServerGroup(
            saved["name"], Path(saved["v2"]) if saved.get("v2") else None, {k: Path(v) for k, v in saved["v1"].items()}
        )
        left = len(group.pids())
        await asyncio.to_thread(group.remove)
        self.cgroup = {}
        return left

    async def _remove_link(self):
        if not self.link:
            return
        link = self.link
        await network.remove_link(
            network.ServerLink(link["netns"], link["host_if"], link["host_ip"], link["server_ip"])
        )
        network.free_slot(Path(self.hub_dir) / "slots", link["slot"])
        self.link = {}
