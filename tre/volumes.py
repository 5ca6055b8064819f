"""A disk quota per project: everything a project can write lives on a filesystem of its own.

With isolation (root) and `project_disk_quota` above 0, each project gets a sparse ext4 image
(`$TRE_HOME/volumes/<id>.ext4`, 0600 root) of that size, loop-mounted at
`$TRE_HOME/volumes/<id>/` (nodev, nosuid). On it:

    work/        bound onto projects/<id>/work      (root:<group> 2770, as before)
    requests/    bound onto projects/<id>/requests  (root:<group> 2770, with queue/)
    homes/       root 0711; homes/<account>/ the (member, project) account's home, 0700,
                 bound into that account's sandbox only

So the project's notebooks, queued outputs and its members' homes share one fixed amount of
space: a researcher who writes until the disk is full fills the project's volume (ENOSPC in
the kernel), never the machine's disk. The machine's ext4 root has no project quotas turned
on and cannot get them while mounted (`tune2fs -O quota,project` needs it unmounted), which is
why a filesystem per project is the quota here. Sparse: an image takes only the blocks used.

Mounts do not survive a reboot; `ensure` (run by `tre project provision`, the hub's start and
every server start) mounts what is missing. Raising the quota grows the image online
(resize2fs) at the next `ensure`; lowering it does not shrink a volume.
A workspace made before the volume existed has its work/ and requests/ moved onto it once,
copying without following links.
"""

from __future__ import annotations

import os
import shutil
import stat
import subprocess
from dataclasses import dataclass
from pathlib import Path

from tre.errors import ConfigError

MOUNT_OPTIONS = "nodev,nosuid"
BOUND = ("work", "requests")


def _run(argv: list[str]) -> str:
    result = subprocess.run(argv, capture_output=True, text=True)
    if result.returncode != 0:
        raise ConfigError(f"{argv[0]} failed for a project volume: {result.stderr.strip() or result.returncode}")
    return result.stdout


def _mounts() -> dict[str, str]:
    """Mount point -> source, from /proc/self/mountinfo (escaped characters decoded)."""
    found = {}
    with open("/proc/self/mountinfo") as f:
        for line in f:
            fields = line.split()
            point = fields[4].encode().decode("unicode_escape")
            found[point] = fields[3]
    return found


def is_mounted(path: Path) -> bool:
    return str(path) in _mounts()


@dataclass(frozen=True)
class ProjectVolumes:
    """The project volumes of one installation."""

    root: Path  # $TRE_HOME/volumes
    size: int  # bytes per project

    def image(self, project_id: str) -> Path:
        return self.root / f"{project_id}.ext4"

    def mount_point(self, project_id: str) -> Path:
        return self.root / project_id

    def home(self, project_id: str, account: str) -> Path:
        return self.mount_point(project_id) / "homes" / account

    def ensure(self, project_dir: Path, project_id: str) -> Path:
        """Create, grow and mount the project's volume, and bind work/ and requests/ from it."""
        self.root.mkdir(mode=0o700, parents=True, exist_ok=True)
        self.root.chmod(0o700)
        project_dir.mkdir(parents=True, exist_ok=True)
        image, point = self.image(project_id), self.mount_point(project_id)
        if not image.exists():
            self._make_image(image, project_id)
        elif image.stat().st_size < self.size:
            os.truncate(image, self.size)
            if is_mounted(point):
                _run(["resize2fs", self._device(point), f"{self.size // 1024}K"])
        point.mkdir(mode=0o700, exist_ok=True)
        if not is_mounted(point):
            _run(["mount", "-o", f"loop,{MOUNT_OPTIONS}", str(image), str(point)])
            if image.stat().st_size > self._fs_size(point):
                _run(["resize2fs", self._device(point)])
        point.chmod(0o711)
        homes = point / "homes"
        homes.mkdir(mode=0o711, exist_ok=True)
        for name in BOUND:
            inside, outside = point / name, project_dir / name
            if not os.path.lexists(inside):
                inside.mkdir(mode=0o700)
            if is_mounted(outside):
                continue
            if outside.is_symlink() or (outside.exists() and not outside.is_dir()):
                raise ConfigError(f"{outside} is not a directory: the project's {name}/ cannot be put on its volume")
            if outside.is_dir():
                _move_contents(outside, inside)
            else:
                outside.mkdir(mode=0o700)
            _run(["mount", "--bind", "-o", MOUNT_OPTIONS, str(inside), str(outside)])
        return point

    def release(self, project_dir: Path, project_id: str) -> None:
        """Unmount the binds and the volume (the image and its contents stay)."""
        for name in BOUND:
            outside = project_dir / name
            while is_mounted(outside):
                _run(["umount", str(outside)])
        point = self.mount_point(project_id)
        while is_mounted(point):
            _run(["umount", str(point)])

    def usage(self, project_id: str) -> tuple[int, int] | None:
        """(bytes used, bytes in total) of a mounted volume."""
        point = self.mount_point(project_id)
        if not is_mounted(point):
            return None
        stats = os.statvfs(point)
        return (stats.f_blocks - stats.f_bfree) * stats.f_frsize, stats.f_blocks * stats.f_frsize

    def _make_image(self, image: Path, project_id: str) -> None:
        partial = image.with_name(image.name + ".partial")
        fd = os.open(partial, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        os.close(fd)
        os.truncate(partial, self.size)
        _run(
            [
                "mkfs.ext4",
                "-q",
                "-F",
                "-m",
                "0",
                "-L",
                f"tre-{project_id}"[:16],
                "-E",
                "lazy_itable_init=1,lazy_journal_init=1,root_owner=0:0",
                str(partial),
            ]
        )
        os.replace(partial, image)

    @staticmethod
    def _device(point: Path) -> str:
        return _run(["findmnt", "-n", "-o", "SOURCE", "--target", str(point)]).strip()

    @staticmethod
    def _fs_size(point: Path) -> int:
        stats = os.statvfs(point)
        return stats.f_blocks * stats.f_frsize


def _move_contents(source: Path, target: Path) -> None:
    """Copy a folder's entries onto the volume without following links, then empty it."""
    _copy_tree(source, target)
    for entry in os.scandir(source):
        if entry.is_dir(follow_symlinks=False):
            shutil.rmtree(entry.path)
        else:
            os.unlink(entry.path)


def _copy_tree(source: Path, target: Path) -> None:
    # Links stay links (never resolved by root); FIFOs, sockets and devices are left behind;
    # a file is opened without following links and without blocking, then checked by fstat.
    for entry in os.scandir(source):
        destination = target / entry.name
        st = entry.stat(follow_symlinks=False)
        if entry.is_symlink():
            os.symlink(os.readlink(entry.path), destination)
        elif entry.is_dir(follow_symlinks=False):
            destination.mkdir()
            _copy_tree(Path(entry.path), destination)
        elif not _copy_file(entry.path, destination):
            continue
        os.chown(destination, st.st_uid, st.st_gid, follow_symlinks=False)
        if not entry.is_symlink():
            os.chmod(destination, stat.S_IMODE(st.st_mode))


def _copy_file(source: str, destination: Path) -> bool:
    try:
        fd = os.open(source, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK)
    except OSError:
        return False
    with os.fdopen(fd, "rb") as f:
        if not stat.S_ISREG(os.fstat(fd).st_mode):
            return False
        with open(destination, "xb") as out:
            shutil.copyfileobj(f, out)
    return True


def volumes(settings, *, isolation: bool) -> ProjectVolumes | None:
    """The installation's project volumes, or None (isolation off, or quota 0)."""
    from tre.hub_config.cgroups import parse_size

    size = parse_size(settings.project_disk_quota, "project_disk_quota")
    if not isolation or size == 0:
        return None
    if size < 16 << 20:
        raise ConfigError(f"project_disk_quota {settings.project_disk_quota!r} is too small: at least 16M")
    return ProjectVolumes(settings.home / "volumes", size)
