"""Control groups: every server's processes in a group of their own, killed as one, within limits.

A process a researcher starts from a kernel can leave the server's process tree (a double
fork with `setsid`, `nohup`, a new process group) and ignore SIGTERM and SIGHUP; killing the
server's pid leaves it running with the project's data. What it cannot leave is its control
group: the sandbox launcher puts itself into the server's group (as root, before it drops to
the researcher's account, and /sys/fs/cgroup does not exist inside the sandbox), and every
descendant is born in it. Stopping the server kills the whole group.

What the machine offers decides where things go, at run time:

- cgroup v2 (the unified hierarchy) holds membership and does the kill: `cgroup.kill` kills
  every process of the group at once, including one forking at that moment (Linux >= 5.14);
  without it the group is frozen (`cgroup.freeze`), killed and thawed until empty;
- the limits (`pids.max`, `memory.max`, `cpu.max`) go into the v2 group when its parent can
  delegate those controllers to it; on a hybrid machine whose controllers are bound to cgroup
  v1 hierarchies (the v2 hierarchy then has none), they go into the v1 `pids`, `memory` and
  `cpu` hierarchies instead (`pids.max`, `memory.limit_in_bytes`, `cpu.cfs_quota_us`);
- a machine with only v1 kills with the v1 `freezer` (freeze, kill, thaw).

A configured limit that cannot be applied refuses the start (a limit that silently does not
hold is worse than none). Groups are made under the hub process's own group in each hierarchy
(`.../tre-<hub id>/<server>`), so a hub started inside a delegated subtree (a systemd unit with
`Delegate=yes`) stays inside it; the hub id is derived from its state directory, so the next
start of the same hub finds and kills what a crashed one left.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import signal
import time
from dataclasses import dataclass, field
from pathlib import Path

from tre.errors import ConfigError

CONTROLLERS = ("pids", "memory", "cpu")
HUB_GROUP = "hub"  # JupyterHub, its proxy and services (`tre hub`); the servers' groups beside it
CPU_PERIOD_US = 100_000
_SIZE = re.compile(r"^\s*(\d+(?:\.\d+)?)\s*([KMGT]?)(?:i?B)?\s*$", re.IGNORECASE)
_UNITS = {"": 1, "K": 1 << 10, "M": 1 << 20, "G": 1 << 30, "T": 1 << 40}


def parse_size(text: str, what: str) -> int:
    """Bytes from '512M', '8G', '2GiB', '1048576'; 0 means no limit."""
    match = _SIZE.match(str(text))
    if not match:
        raise ConfigError(f"{what} must be a size such as 512M or 8G (0: no limit), got {text!r}")
    number, unit = match.groups()
    return int(float(number) * _UNITS[unit.upper()])


@dataclass(frozen=True)
class Limits:
    """What one server may use; 0 means no limit for that resource."""

    pids: int = 0
    memory: int = 0  # bytes
    cpus: float = 0.0  # CPUs' worth of time per period

    def wanted(self) -> list[str]:
        return [c for c, v in (("pids", self.pids), ("memory", self.memory), ("cpu", self.cpus)) if v]

    def __post_init__(self):
        if self.pids < 0 or self.memory < 0 or self.cpus < 0:
            raise ConfigError("server limits must be 0 (no limit) or positive")


@dataclass(frozen=True)
class Hierarchy:
    """One mounted cgroup hierarchy and this process's place in it."""

    mount: Path
    version: int  # 1 or 2
    controllers: frozenset[str]  # v1: the controllers bound to it; v2: those its root offers
    own: str  # this process's cgroup, relative to the mount ("/" or "/a/b")

    def base(self, hub_id: str) -> Path:
        # Inside the hub (JupyterHub runs in <base>/hub), the servers' groups are its siblings.
        own = self.own.removesuffix(f"/tre-{hub_id}/{HUB_GROUP}") or "/"
        return self.mount / own.lstrip("/") / f"tre-{hub_id}"


def _parse_mountinfo(text: str) -> list[tuple[str, Path, str, set[str]]]:
    """(fstype, mount point, root inside the hierarchy, super options) of every cgroup mount."""
    found = []
    for line in text.splitlines():
        left, _, right = line.partition(" - ")
        fields, tail = left.split(), right.split()
        if len(fields) < 5 or len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        found.append((tail[0], Path(fields[4]), fields[3], set(tail[2].split(","))))
    return found


def _own_paths(text: str) -> dict[str, str]:
    """From /proc/self/cgroup: '' (v2) or each v1 controller -> this process's path."""
    own = {}
    for line in text.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        _, controllers, path = parts
        if not controllers:
            own[""] = path
        for controller in controllers.split(","):
            if controller:
                own[controller] = path
    return own


def _relative(path: str, root: str) -> str:
    # In a cgroup namespace or a bind-mounted subtree the mount's root is not "/".
    if root != "/" and path.startswith(root):
        path = path[len(root) :] or "/"
    return path


@dataclass(frozen=True)
class Layout:
    """Which hierarchies this machine has, as seen by this process."""

    v2: Hierarchy | None
    v1: dict[str, Hierarchy] = field(default_factory=dict)  # controller -> its v1 hierarchy

    @classmethod
    def discover(cls, proc: Path = Path("/proc/self")) -> Layout:
        mounts = _parse_mountinfo((proc / "mountinfo").read_text())
        own = _own_paths((proc / "cgroup").read_text())
        v2, v1 = None, {}
        for fstype, point, root, options in mounts:
            if fstype == "cgroup2" and v2 is None and "" in own:
                offered = (point / "cgroup.controllers").read_text().split()
                v2 = Hierarchy(point, 2, frozenset(offered), _relative(own[""], root))
            elif fstype == "cgroup":
                bound = {c for c in options if c in (*CONTROLLERS, "freezer") and c in own}
                for controller in bound:
                    v1.setdefault(controller, Hierarchy(point, 1, frozenset(bound), _relative(own[controller], root)))
        return cls(v2, v1)

    def describe(self) -> str:
        parts = []
        if self.v2:
            parts.append(
                f"cgroup v2 at {self.v2.mount} (controllers: {' '.join(sorted(self.v2.controllers)) or 'none'})"
            )
        if self.v1:
            parts.append("cgroup v1 " + ", ".join(f"{c} at {h.mount}" for c, h in sorted(self.v1.items())))
        return "; ".join(parts) or "no cgroup hierarchy mounted"

    def placement(self, limits: Limits) -> dict[str, Hierarchy]:
        """Where each wanted limit goes: v2 when it offers the controller, else its v1 hierarchy."""
        where = {}
        missing = []
        for controller in limits.wanted():
            if self.v2 and controller in self.v2.controllers:
                where[controller] = self.v2
            elif controller in self.v1:
                where[controller] = self.v1[controller]
            else:
                missing.append(controller)
        if missing:
            raise ConfigError(
                f"server limits need the cgroup controller(s) {', '.join(missing)}, which this machine does not "
                f"offer ({self.describe()}); set the limit to 0 or enable the controller"
            )
        return where


def hub_id(hub_dir: Path | str) -> str:
    """A short, stable name for one hub installation's groups (from its state directory)."""
    return hashlib.sha256(str(Path(hub_dir).resolve()).encode()).hexdigest()[:10]


def _write(path: Path, value: str) -> None:
    with open(path, "w") as f:
        f.write(value)


def _read(path: Path) -> str:
    try:
        return path.read_text()
    except (FileNotFoundError, ProcessLookupError, OSError):
        return ""


@dataclass(frozen=True)
class ServerGroup:
    """The group(s) of one server: its directory in each hierarchy it uses."""

    name: str
    v2: Path | None
    v1: dict[str, Path]  # controller -> directory

    @property
    def directories(self) -> list[Path]:
        dirs = [self.v2] if self.v2 else []
        return dirs + sorted(set(self.v1.values()))

    def as_list(self) -> list[str]:
        """What the sandbox launcher writes its pid into."""
        return [str(d) for d in self.directories]

    def pids(self) -> set[int]:
        found = set()
        for directory in self.directories:
            found |= {int(p) for p in _read(directory / "cgroup.procs").split()}
        return found

    def kill(self, timeout: float = 10) -> int:
        """Kill every process of the group and wait until it is empty; returns how many were seen."""
        seen = len(self.pids())
        deadline = time.monotonic() + timeout
        while True:
            pids = self.pids()
            if not pids:
                return seen
            if time.monotonic() > deadline:
                raise RuntimeError(f"server group {self.name}: {len(pids)} process(es) survived the kill")
            self._kill_once(pids)
            time.sleep(0.05)

    def _kill_once(self, pids: set[int]) -> None:
        if self.v2 and (self.v2 / "cgroup.kill").exists():
            _write(self.v2 / "cgroup.kill", "1")
            return
        freezer = self._freezer()
        if freezer:
            freezer.freeze()
        try:
            for pid in pids | self.pids():
                with contextlib.suppress(ProcessLookupError):
                    os.kill(pid, signal.SIGKILL)
        finally:
            if freezer:
                freezer.thaw()

    def _freezer(self):
        if self.v2 and (self.v2 / "cgroup.freeze").exists():
            return _Freezer(self.v2 / "cgroup.freeze", "1", "0")
        if "freezer" in self.v1:
            return _Freezer(self.v1["freezer"] / "freezer.state", "FROZEN", "THAWED")
        return None

    def remove(self) -> None:
        """Kill what is left and remove the directories (children first)."""
        self.kill()
        for directory in self.directories:
            _rmdir(directory)


@dataclass(frozen=True)
class _Freezer:
    path: Path
    on: str
    off: str

    def freeze(self) -> None:
        _write(self.path, self.on)

    def thaw(self) -> None:
        _write(self.path, self.off)


def _rmdir(directory: Path, timeout: float = 15) -> None:
    # A killed process keeps its group busy until its parent has reaped it; an orphan's parent is
    # init, which may take a moment.
    deadline = time.monotonic() + timeout
    while True:
        try:
            directory.rmdir()
            return
        except FileNotFoundError:
            return
        except OSError as e:
            if e.errno != errno.EBUSY or time.monotonic() > deadline:
                raise
            time.sleep(0.1)


def _enable(parent: Path, controllers: list[str]) -> None:
    """Delegate v2 controllers from `parent` to its children (EBUSY: the parent has processes)."""
    offered = set(_read(parent / "cgroup.subtree_control").split())
    wanted = [c for c in controllers if c not in offered]
    if not wanted:
        return
    try:
        _write(parent / "cgroup.subtree_control", " ".join(f"+{c}" for c in wanted))
    except OSError as e:
        raise ConfigError(
            f"cannot delegate the cgroup controllers {', '.join(wanted)} below {parent} ({e.strerror}): run the hub "
            "in a cgroup of its own with delegation (a systemd unit with Delegate=yes), or set the limits to 0"
        ) from None


def create(layout: Layout, hub: str, server: str, limits: Limits) -> ServerGroup:
    """Make a server's group(s) with its limits; replaces a leftover of the same name."""
    if not re.fullmatch(r"[a-z0-9][a-z0-9_.-]{0,63}", server):
        raise ValueError(f"not a usable cgroup name: {server!r}")
    placement = layout.placement(limits)
    v2_dir = None
    if layout.v2:
        base = layout.v2.base(hub)
        v2_controllers = [c for c, h in placement.items() if h is layout.v2]
        if v2_controllers:
            _enable(base.parent, v2_controllers)
        base.mkdir(exist_ok=True)
        if v2_controllers:
            _enable(base, v2_controllers)
        v2_dir = base / server
    v1_dirs = {}
    for controller, hierarchy in placement.items():
        if hierarchy.version == 1:
            v1_dirs[controller] = hierarchy.base(hub) / server
    if v2_dir is None and "freezer" in layout.v1:
        v1_dirs["freezer"] = layout.v1["freezer"].base(hub) / server
    if v2_dir is None and not v1_dirs:
        raise ConfigError(f"no cgroup hierarchy to hold the server's processes ({layout.describe()})")
    group = ServerGroup(server, v2_dir, v1_dirs)
    if any(d.exists() for d in group.directories):
        group.remove()
    for directory in group.directories:
        directory.parent.mkdir(exist_ok=True)
        directory.mkdir()
    _apply(group, placement, limits)
    return group


def _apply(group: ServerGroup, placement: dict[str, Hierarchy], limits: Limits) -> None:
    for controller, hierarchy in placement.items():
        directory = group.v2 if hierarchy.version == 2 else group.v1[controller]
        if controller == "pids":
            _write(directory / "pids.max", str(limits.pids))
        elif controller == "memory" and hierarchy.version == 2:
            _write(directory / "memory.max", str(limits.memory))
            if (directory / "memory.swap.max").exists():
                _write(directory / "memory.swap.max", "0")
        elif controller == "memory":
            _write(directory / "memory.limit_in_bytes", str(limits.memory))
            if (directory / "memory.memsw.limit_in_bytes").exists():
                _write(directory / "memory.memsw.limit_in_bytes", str(limits.memory))
        elif controller == "cpu" and hierarchy.version == 2:
            _write(directory / "cpu.max", f"{max(1000, int(limits.cpus * CPU_PERIOD_US))} {CPU_PERIOD_US}")
        elif controller == "cpu":
            _write(directory / "cpu.cfs_period_us", str(CPU_PERIOD_US))
            _write(directory / "cpu.cfs_quota_us", str(max(1000, int(limits.cpus * CPU_PERIOD_US))))


def join(directories: list[str], pid: int | None = None) -> None:
    """Move `pid` (default: this process) into each group; its children are born there."""
    pid = os.getpid() if pid is None else pid
    for directory in directories:
        _write(Path(directory) / "cgroup.procs", str(pid))


def existing(layout: Layout, hub: str) -> list[ServerGroup]:
    """The server groups a hub (running or crashed) has made."""
    names = set()
    hierarchies = ([layout.v2] if layout.v2 else []) + list({id(h): h for h in layout.v1.values()}.values())
    for hierarchy in hierarchies:
        base = hierarchy.base(hub)
        if base.is_dir():
            names |= {p.name for p in base.iterdir() if p.is_dir()}
    groups = []
    for name in sorted(names):
        v2 = layout.v2.base(hub) / name if layout.v2 and (layout.v2.base(hub) / name).is_dir() else None
        v1 = {c: h.base(hub) / name for c, h in layout.v1.items() if (h.base(hub) / name).is_dir()}
        groups.append(ServerGroup(name, v2, v1))
    return groups


def release_all(layout: Layout, hub: str) -> int:
    """Kill and remove every server group of a hub, then the hub's own directories; returns the
    number of groups removed (at hub start, for a crashed predecessor, and at hub shutdown)."""
    groups = existing(layout, hub)
    for group in groups:
        group.remove()
    hierarchies = ([layout.v2] if layout.v2 else []) + list(layout.v1.values())
    for hierarchy in hierarchies:
        base = hierarchy.base(hub)
        if base.is_dir():
            _rmdir(base)
    return len(groups)
