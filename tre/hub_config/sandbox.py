"""The sandbox a researcher's server runs in: its own network and mount namespace, one project.

Run as root by the spawner (`python -I -m tre.hub_config.sandbox SPEC -- COMMAND...`); it

0. moves itself into the server's control group(s) (`tre.hub_config.cgroups`), so that every
   process the server will ever start is in it, within its limits, and dies with it;
1. joins the server's network namespace (made by `tre.hub_config.network`), so the only
   route out leads to the hub's API address;
2. enters a new mount namespace and builds a fresh root on a tmpfs from an allow-list: the
   system's `/usr` (read-only), a few files of `/etc`, the venv and the `tre` package
   (read-only), a private `/tmp` and `/dev/shm`, the account's home, a `/proc` that hides
   other users' processes, and `/projects/<id>` with `data/` and `released/` read-only and
   `work/`, `requests/` writable. Nothing else of the machine exists in there: not the TRE's
   state directory, not the central zone, not another project, not another user's home;
3. pivots into that root, detaches the old one, drops to the (member, project) OS account
   with the project group as its only group and no_new_privs set;
4. installs the seccomp filter (`tre.hub_config.seccomp`: no new namespaces, no mounts, no
   kernel keys, BPF, io_uring, ptrace, ...) and execs the server.

The kernel enforces all of it; the Jupyter interface is not involved.
"""

from __future__ import annotations

import ctypes
import json
import os
import sys
from dataclasses import dataclass, field
from pathlib import Path

from tre.hub_config import cgroups, seccomp

CLONE_NEWNS = 0x00020000
CLONE_NEWNET = 0x40000000
MS_RDONLY = 1
MS_NOSUID = 2
MS_NODEV = 4
MS_NOEXEC = 8
MS_REMOUNT = 32
MS_BIND = 4096
MS_REC = 16384
MS_PRIVATE = 1 << 18
MNT_DETACH = 2
PR_SET_NO_NEW_PRIVS = 38
SYS_PIVOT_ROOT = 155  # x86_64

# What a Python server needs from /etc; everything else of /etc stays outside.
ETC_ALLOWED = (
    "alternatives",
    "ca-certificates",
    "ca-certificates.conf",
    "fonts",
    "host.conf",
    "ld.so.cache",
    "ld.so.conf",
    "ld.so.conf.d",
    "localtime",
    "locale.alias",
    "mime.types",
    "nsswitch.conf",
    "ssl",
    "timezone",
)
# Debian's merged /usr: these are symlinks into /usr.
USR_LINKS = ("bin", "lib", "lib32", "lib64", "libx32", "sbin")


@dataclass
class SandboxSpec:
    """Everything the sandbox needs; written by the spawner, read by this launcher."""

    account: str
    uid: int
    gid: int
    group: str
    project_id: str
    project_dir: str  # on the host
    home_dir: str  # on the host
    netns: str | None  # path under /run/netns, or None for no network isolation
    read_only: list[str] = field(default_factory=list)  # host paths shown read-only at the same path
    tmp_size: str = "1g"
    cgroups: list[str] = field(default_factory=list)  # the server's cgroup directories, joined first
    seccomp: bool = True  # install the system-call filter before exec

    @property
    def inside_project_dir(self) -> str:
        return f"/projects/{self.project_id}"

    @property
    def inside_home(self) -> str:
        return f"/home/{self.account}"

    def to_json(self) -> str:
        return json.dumps(self.__dict__, sort_keys=True)

    @classmethod
    def from_json(cls, text: str) -> SandboxSpec:
        return cls(**json.loads(text))


_libc = ctypes.CDLL(None, use_errno=True)
_libc.mount.argtypes = [ctypes.c_char_p, ctypes.c_char_p, ctypes.c_char_p, ctypes.c_ulong, ctypes.c_char_p]
_libc.umount2.argtypes = [ctypes.c_char_p, ctypes.c_int]


def _check(result: int, what: str) -> None:
    if result != 0:
        errno = ctypes.get_errno()
        raise OSError(errno, f"{what}: {os.strerror(errno)}")


def _mount(source: str | None, target: str, fstype: str | None, flags: int, data: str | None = None) -> None:
    def enc(s):
        return s.encode() if s is not None else None

    _check(_libc.mount(enc(source), enc(target), enc(fstype), flags, enc(data)), f"mount {target}")


def _bind(source: str, target: str, *, read_only: bool, flags: int = MS_NOSUID | MS_NODEV) -> None:
    _mount(source, target, None, MS_BIND | MS_REC)
    # A bind mount takes its read-only flag only on a remount.
    _mount(None, target, None, MS_REMOUNT | MS_BIND | flags | (MS_RDONLY if read_only else 0))


def _target(root: Path, path: str, *, is_dir: bool = True) -> str:
    target = root / path.lstrip("/")
    if is_dir:
        target.mkdir(parents=True, exist_ok=True)
    else:
        target.parent.mkdir(parents=True, exist_ok=True)
        target.touch(exist_ok=True)
    return str(target)


def _bind_path(root: Path, host: str, inside: str, *, read_only: bool) -> None:
    if not os.path.lexists(host):
        return
    if os.path.islink(host):
        link = root / inside.lstrip("/")
        link.parent.mkdir(parents=True, exist_ok=True)
        if not os.path.lexists(link):
            link.symlink_to(os.readlink(host))
        return
    _bind(host, _target(root, inside, is_dir=os.path.isdir(host)), read_only=read_only)


def _write(root: Path, inside: str, text: str, mode: int = 0o644) -> None:
    path = root / inside.lstrip("/")
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text(text)
    path.chmod(mode)


def build_root(spec: SandboxSpec, root: Path) -> None:
    """Populate the tmpfs at `root` with the allow-listed view of the machine."""
    root.chmod(0o755)
    _bind_path(root, "/usr", "/usr", read_only=True)
    for name in USR_LINKS:
        host = f"/{name}"
        if os.path.islink(host):
            (root / name).symlink_to(os.readlink(host))
        elif os.path.isdir(host):
            _bind_path(root, host, host, read_only=True)
    for name in ETC_ALLOWED:
        _bind_path(root, f"/etc/{name}", f"/etc/{name}", read_only=True)
    _write(
        root,
        "/etc/passwd",
        f"root:x:0:0::/root:/usr/sbin/nologin\n{spec.account}:x:{spec.uid}:{spec.gid}::{spec.inside_home}:/bin/sh\n",
    )
    _write(root, "/etc/group", f"root:x:0:\n{spec.group}:x:{spec.gid}:\n")
    _write(root, "/etc/hosts", "127.0.0.1 localhost\n::1 localhost\n")
    _write(root, "/etc/hostname", "tre-project\n")
    _write(root, "/etc/resolv.conf", "# no name service: this server has no network beyond the hub\n")

    # /dev: the harmless character devices only, and a private shared-memory tmpfs.
    dev = root / "dev"
    dev.mkdir()
    for name in ("null", "zero", "full", "random", "urandom", "tty"):
        _bind(f"/dev/{name}", _target(root, f"/dev/{name}", is_dir=False), read_only=False, flags=MS_NOSUID | MS_NOEXEC)
    for name, target in (
        ("fd", "/proc/self/fd"),
        ("stdin", "/proc/self/fd/0"),
        ("stdout", "/proc/self/fd/1"),
        ("stderr", "/proc/self/fd/2"),
    ):
        (dev / name).symlink_to(target)
    _mount("tmpfs", _target(root, "/dev/shm"), "tmpfs", MS_NOSUID | MS_NODEV, "mode=1777,size=256m")
    # A private instance of the pseudo-terminals: a notebook's `!command` runs in one.
    _mount("devpts", _target(root, "/dev/pts"), "devpts", MS_NOSUID | MS_NOEXEC, "newinstance,ptmxmode=0666,mode=0620")
    (dev / "ptmx").symlink_to("pts/ptmx")
    # A fresh procfs that shows only this account's processes.
    _mount("proc", _target(root, "/proc"), "proc", MS_NOSUID | MS_NODEV | MS_NOEXEC, "hidepid=invisible")
    # sysfs of the server's own network namespace (numpy and DuckDB read CPU counts here).
    _mount("sysfs", _target(root, "/sys"), "sysfs", MS_RDONLY | MS_NOSUID | MS_NODEV | MS_NOEXEC)
    _mount("tmpfs", _target(root, "/tmp"), "tmpfs", MS_NOSUID | MS_NODEV, f"mode=1777,size={spec.tmp_size}")
    # After the private /tmp: an installation under /tmp (a checkout in /tmp/...) is bound onto
    # it, where it would otherwise be hidden under it. Its mount points in the sticky /tmp are
    # root's, so the researcher can neither remove nor replace them.
    for path in spec.read_only:
        _bind_path(root, path, path, read_only=True)

    _bind(spec.home_dir, _target(root, spec.inside_home), read_only=False)
    inside = spec.inside_project_dir
    _bind(spec.project_dir, _target(root, inside), read_only=False)
    for sub in ("data", "released"):
        if os.path.isdir(os.path.join(spec.project_dir, sub)):
            _bind(os.path.join(spec.project_dir, sub), f"{root}{inside}/{sub}", read_only=True)
    # The directories made on the tmpfs on the way are root's and world-readable; nothing in
    # them but the mount points.


def _pivot(root: Path) -> None:
    os.chdir(root)
    # pivot_root(".", "."): the old root ends up stacked under the new one and is detached.
    _check(ctypes.CDLL(None, use_errno=True).syscall(SYS_PIVOT_ROOT, b".", b"."), "pivot_root")
    _check(_libc.umount2(b".", MNT_DETACH), "detach the old root")
    os.chdir("/")
    # The new root itself read-only: the researcher writes only to the mounts made writable.
    _mount(None, "/", None, MS_REMOUNT | MS_BIND | MS_RDONLY | MS_NOSUID | MS_NODEV)


def _drop_privileges(spec: SandboxSpec) -> None:
    os.setgroups([spec.gid])
    os.setgid(spec.gid)
    os.setuid(spec.uid)
    # No setuid binary (su, mount) can give the privileges back.
    _check(ctypes.CDLL(None, use_errno=True).prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "no_new_privs")
    if os.getuid() == 0 or os.geteuid() == 0:
        raise OSError("privileges were not dropped")


def enter(spec: SandboxSpec) -> None:
    """Enter the sandbox in this process (root only). Afterwards the process is the account."""
    cgroups.join(spec.cgroups)
    if spec.netns:
        fd = os.open(spec.netns, os.O_RDONLY)
        _check(_libc.setns(fd, CLONE_NEWNET), "join the network namespace")
        os.close(fd)
    _check(_libc.unshare(CLONE_NEWNS), "unshare the mount namespace")
    _mount(None, "/", None, MS_REC | MS_PRIVATE)
    # A tmpfs mounted on an existing, empty directory, visible only in this namespace.
    staging = Path("/run/tre-sandbox")
    staging.mkdir(mode=0o700, exist_ok=True)
    _mount("tmpfs", str(staging), "tmpfs", MS_NOSUID | MS_NODEV, "mode=0755,size=16m")
    build_root(spec, staging)
    _pivot(staging)
    _drop_privileges(spec)
    os.umask(0o007)  # work/ is shared by the project group, and by no one else
    os.chdir(spec.inside_project_dir)
    if spec.seccomp:
        seccomp.install()  # last: it refuses mount, unshare, setns, which the steps above used


def main(argv: list[str]) -> None:
    if len(argv) < 3 or argv[1] != "--":
        sys.stderr.write("usage: python -m tre.hub_config.sandbox SPEC_JSON -- COMMAND [ARGS...]\n")
        raise SystemExit(2)
    spec = SandboxSpec.from_json(argv[0])
    command = argv[2:]
    enter(spec)
    os.execvpe(command[0], command, os.environ)


if __name__ == "__main__":
    main(sys.argv[1:])
