"""Privileged code opening project files: never through a path the project can write.

Everything in a project's `work/` and `requests/` is written by the project's own code, so to
code that runs with privileges (intake and release as root, the review page, the spawner) it
is an attacker's input: a name may be a symbolic link to the master key, a FIFO that blocks a
reader forever, a device, a hard link to someone else's file, or a sparse file of many
gigabytes. The rule: open the project's folder once from a trusted path, then walk below it
one name at a time relative to that directory descriptor, never following a link
(`openat(..., O_NOFOLLOW | O_DIRECTORY)`); open files non-blocking and decide on the open
descriptor (`fstat`) before reading a byte: regular files only, exactly one link, and no
larger than a limit. Anything else is refused with `UnsafeFile`, naming the file and the rule.
New files are created with `O_CREAT | O_EXCL | O_NOFOLLOW`, so a planted name (a dangling
link included) is never written through.

Names a project chooses (outputs, their files) follow one rule (`check_name`): letters,
digits, `-`, `_`, `.`, starting with a letter or digit, at most 100 characters.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import os
import re
import stat
import unicodedata
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath

from tre.errors import UnsafeFile, UsageError

MAX_NAME = 100
NAME_PATTERN = re.compile(rf"[A-Za-z0-9][A-Za-z0-9_.-]{{0,{MAX_NAME - 1}}}")
_DIGIT_RUN = re.compile(r"\d{11,}")
CHUNK = 1 << 20


# --- names --------------------------------------------------------------------------------


def shown(name: str, limit: int = 60) -> str:
    """An untrusted name as it may appear in a message, a page or the audit log: control and
    invisible formatting characters escaped, runs of 11 or more digits (the shape of an ID
    number) masked, long names cut."""
    text = "".join(
        c if c.isprintable() and unicodedata.category(c) != "Cf" else c.encode("unicode_escape").decode("ascii")
        for c in name
    )
    text = _DIGIT_RUN.sub(lambda m: f"<{len(m.group())} digits>", text)
    return text if len(text) <= limit else text[: limit - 1] + "…"


def name_problem(name: str) -> str | None:
    """Why `name` breaks the name rule, in words, or None when it follows it."""
    if not name:
        return "it is empty"
    if len(name) > MAX_NAME:
        return f"it has {len(name)} characters (at most {MAX_NAME})"
    if any(c in "\r\n" for c in name):
        return "it contains a line break"
    if any(unicodedata.category(c) == "Cf" for c in name):
        return "it contains an invisible formatting character (such as a right-to-left override)"
    odd = sorted({c for c in name if not (c.isascii() and (c.isalnum() or c in "-_."))})
    if odd:
        return "it contains " + ", ".join(repr(c) if c.isprintable() else ascii(c) for c in odd[:5])
    if not name[0].isalnum():
        return f"it starts with {name[0]!r}"
    return None


def is_good_name(name: str) -> bool:
    return NAME_PATTERN.fullmatch(name) is not None


def check_name(name: str, what: str = "output name") -> str:
    """`name` if it follows the rule, else a UsageError that says what is wrong and the rule."""
    problem = name_problem(name)
    if problem is not None or not is_good_name(name):
        raise UsageError(
            f"{what} {shown(name)!r} is refused: {problem or 'it breaks the rule'}; use 1-{MAX_NAME} letters, "
            "digits, '-', '_' or '.', starting with a letter or digit"
        )
    return name


def _parts(relative: str | PurePosixPath) -> list[str]:
    parts = [p for p in PurePosixPath(relative).parts if p not in ("", ".")]
    if str(relative).startswith("/") or ".." in parts or not parts:
        raise UnsafeFile(str(relative), "not a path inside the folder")
    return parts


# --- what a name is ---------------------------------------------------------------------------


def _kind(mode: int) -> str:
    if stat.S_ISLNK(mode):
        return "a symbolic link (links are never followed)"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe), not a regular file"
    if stat.S_ISSOCK(mode):
        return "a socket, not a regular file"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device, not a regular file"
    if stat.S_ISDIR(mode):
        return "a folder"
    return "not a regular file"


def _size(n: int) -> str:
    for unit, scale in (("GiB", 1 << 30), ("MiB", 1 << 20), ("KiB", 1 << 10)):
        if n >= scale:
            return f"{n / scale:.1f} {unit}"
    return f"{n} bytes"


@dataclass(frozen=True)
class Entry:
    """One name in a folder, as lstat sees it (a link is a link, never its target)."""

    name: str
    mode: int
    size: int
    links: int

    @property
    def is_file(self) -> bool:
        return stat.S_ISREG(self.mode)

    @property
    def is_dir(self) -> bool:
        return stat.S_ISDIR(self.mode)

    @property
    def kind(self) -> str:
        return "a regular file" if self.is_file else _kind(self.mode)


# --- an open folder -----------------------------------------------------------------------------


class Folder:
    """A directory opened once and walked relative to its descriptor, never through a link.

    `where` is how messages name it (e.g. `requests/queue/t1`). Use as a context manager or
    call `close()`.
    """

    def __init__(self, fd: int, where: str):
        self.fd, self.where = fd, where

    @classmethod
    def open(cls, path: Path, where: str | None = None) -> Folder:
        """Open a folder at a trusted path (one the project cannot change: its own root, the
        central store). Everything below it is reached through `folder()`."""
        try:
            fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY | os.O_CLOEXEC)
        except FileNotFoundError:
            raise UnsafeFile(str(path) if where is None else where, "does not exist") from None
        except NotADirectoryError:
            raise UnsafeFile(str(path) if where is None else where, "is not a folder") from None
        return cls(fd, str(path) if where is None else where)

    def __enter__(self) -> Folder:
        return self

    def __exit__(self, *exc) -> None:
        self.close()

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1

    def _name(self, name: str) -> str:
        return f"{self.where}/{shown(name)}" if self.where else shown(name)

    # --- looking -------------------------------------------------------------------------

    def entry(self, name: str) -> Entry | None:
        """What `name` is (a link is reported as a link), or None when nothing has that name."""
        if len(_parts(name)) != 1:
            raise UnsafeFile(self._name(name), "not a name in this folder")
        try:
            st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
        except FileNotFoundError:
            return None
        except NotADirectoryError:
            return None
        return Entry(name, st.st_mode, st.st_size, st.st_nlink)

    def exists(self, name: str) -> bool:
        """Whether anything has this name: a dangling link exists too."""
        return self.entry(name) is not None

    def entries(self) -> list[Entry]:
        """Every name in the folder, sorted, as lstat sees it."""
        found = []
        for name in sorted(os.listdir(self.fd)):
            try:
                st = os.stat(name, dir_fd=self.fd, follow_symlinks=False)
            except FileNotFoundError:
                continue  # removed while listing
            found.append(Entry(name, st.st_mode, st.st_size, st.st_nlink))
        return found

    # --- folders -------------------------------------------------------------------------

    def folder(self, relative: str, *, create: int | None = None) -> Folder:
        """The folder at `relative` below this one, each step opened without following a link.
        With `create` (a mode), missing steps are made (a planted link is never followed)."""
        fd, where = self.fd, self.where
        opened = []
        try:
            for part in _parts(relative):
                where = f"{where}/{shown(part)}" if where else shown(part)
                if create is not None:
                    with contextlib.suppress(FileExistsError):
                        os.mkdir(part, create, dir_fd=fd)
                fd = _open_dir(fd, part, where)
                opened.append(fd)
        except BaseException:
            for o in opened:
                os.close(o)
            raise
        for o in opened[:-1]:
            os.close(o)
        return Folder(fd, where)

    def make_folder(self, name: str, mode: int) -> Folder:
        """A new folder `name` (refused when the name is taken, by anything)."""
        _parts(name)
        try:
            os.mkdir(name, mode, dir_fd=self.fd)
        except FileExistsError:
            raise UnsafeFile(self._name(name), "already exists") from None
        folder = self.folder(name)
        os.fchmod(folder.fd, mode)  # mkdir's mode is masked by the umask
        return folder

    def remove_tree(self, name: str) -> None:
        """Remove `name` and everything below it; a link is removed, never followed. Raises
        UnsafeFile naming what could not be removed (everything else is gone)."""
        left = self.remove_all(name)
        if left:
            raise UnsafeFile(
                left[0], "could not be removed" + (f" (and {len(left) - 1} more)" if len(left) > 1 else "")
            )

    def remove_all(self, name: str) -> list[str]:
        """Remove `name` and everything below it, as far as it goes: never raises for what a
        project put there. Returns what stayed (names as `shown`), each with why.

        The walk is iterative (a tree any number of folders deep), holds at most three open
        descriptors, opens each folder with O_NOFOLLOW | O_DIRECTORY and checks by fstat that
        it is the folder it listed; a folder swapped for a link meanwhile is removed as a link,
        a folder moved away while it is walked is left (and named), never followed."""
        _parts(name)
        if "/" in name:
            raise UnsafeFile(self._name(name), "not a name in this folder")
        left: list[str] = []
        _remove_below(self.fd, self.where, [name], left)
        return left

    def rename(self, name: str, new_name: str, into: Folder | None = None) -> None:
        """Rename an entry (the link itself, if it is one) within this folder or into `into`."""
        _parts(name), _parts(new_name)
        os.rename(name, new_name, src_dir_fd=self.fd, dst_dir_fd=(into or self).fd)

    def chown(self, uid: int, gid: int) -> None:
        os.fchown(self.fd, uid, gid)

    def chmod(self, mode: int) -> None:
        os.fchmod(self.fd, mode)

    # --- files ---------------------------------------------------------------------------

    def open_file(self, name: str, limit: int, *, setting: str = "") -> tuple[int, os.stat_result]:
        """An open descriptor of the regular file `name` and its fstat, checked before any read:
        no link, no FIFO, device or socket, one hard link, at most `limit` bytes."""
        where = self._name(name)
        _parts(name)
        if "/" in name:
            raise UnsafeFile(where, "not a name in this folder")
        before = self.entry(name)  # decided before opening: opening a device may itself do something
        if before is None:
            raise UnsafeFile(where, "does not exist")
        if not before.is_file:
            raise UnsafeFile(where, f"is {before.kind}")
        try:
            fd = os.open(name, os.O_RDONLY | os.O_NOFOLLOW | os.O_NONBLOCK | os.O_CLOEXEC, dir_fd=self.fd)
        except FileNotFoundError:
            raise UnsafeFile(where, "does not exist") from None
        except OSError as e:
            if e.errno == errno.ELOOP:
                raise UnsafeFile(where, "is a symbolic link (links are never followed)") from None
            if e.errno in (errno.ENXIO, errno.EOPNOTSUPP, errno.EACCES):
                raise UnsafeFile(where, "is not a regular file") from None
            raise
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise UnsafeFile(where, f"is {_kind(st.st_mode)}")
            if st.st_nlink != 1:
                raise UnsafeFile(
                    where,
                    f"has {st.st_nlink} hard links: a file read here must have exactly one (copy it, do not link it)",
                )
            if st.st_size > limit:
                raise UnsafeFile(
                    where,
                    f"is {_size(st.st_size)}, over the limit of {_size(limit)}" + (f" ({setting})" if setting else ""),
                )
        except BaseException:
            os.close(fd)
            raise
        return fd, st

    def read_bytes(self, name: str, limit: int, *, setting: str = "") -> bytes:
        """The bytes of the regular file `name` (see `open_file` for what is refused)."""
        fd, st = self.open_file(name, limit, setting=setting)
        try:
            return _read_exactly(fd, st.st_size, self._name(name))
        finally:
            os.close(fd)

    def copy_file(self, name: str, target: Folder, limit: int, *, setting: str = "", mode: int = 0o600) -> dict:
        """Copy the regular file `name` into `target` under the same name (a new file there);
        returns {name, sha256, size} of the bytes copied."""
        fd, st = self.open_file(name, limit, setting=setting)
        digest = hashlib.sha256()
        try:
            out = target._create(name, mode)
            try:
                left = st.st_size
                while left > 0:
                    block = os.read(fd, min(CHUNK, left))
                    if not block:
                        raise UnsafeFile(self._name(name), "changed while it was copied (it shrank): queue it again")
                    digest.update(block)
                    _write_all(out, block)
                    left -= len(block)
                if os.read(fd, 1):
                    raise UnsafeFile(self._name(name), "changed while it was copied (it grew): queue it again")
            finally:
                os.close(out)
        finally:
            os.close(fd)
        return {"name": name, "sha256": digest.hexdigest(), "size": st.st_size}

    def write_new(self, name: str, data: bytes, mode: int = 0o600, owner: tuple[int, int] | None = None) -> None:
        """Create `name` with `data`; refused when anything (a dangling link too) has the name."""
        fd = self._create(name, mode)
        try:
            _write_all(fd, data)
            os.fchmod(fd, mode)  # the umask narrowed the mode open() gave
            if owner is not None:
                os.fchown(fd, *owner)
        finally:
            os.close(fd)

    def _create(self, name: str, mode: int) -> int:
        _parts(name)
        try:
            return os.open(
                name, os.O_WRONLY | os.O_CREAT | os.O_EXCL | os.O_NOFOLLOW | os.O_CLOEXEC, mode, dir_fd=self.fd
            )
        except FileExistsError:
            raise UnsafeFile(
                self._name(name), "already exists (a file, a folder or a link): nothing was written"
            ) from None

    def walk_files(self, limit: int) -> Iterator[tuple[str, Entry]]:
        """Every regular file below this folder (relative name, entry); anything that is not a
        regular file or a folder is refused."""
        for entry in self.entries():
            if entry.is_dir:
                with self.folder(entry.name) as sub:
                    for name, inner in sub.walk_files(limit):
                        yield f"{entry.name}/{name}", inner
            elif entry.is_file:
                yield entry.name, entry
            else:
                raise UnsafeFile(self._name(entry.name), f"is {entry.kind}")


def _open_dir(parent: int, name: str, where: str) -> int:
    try:
        return os.open(name, os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC, dir_fd=parent)
    except FileNotFoundError:
        raise UnsafeFile(where, "does not exist") from None
    except OSError as e:
        if e.errno in (errno.ELOOP, errno.ENOTDIR):
            st = os.stat(name, dir_fd=parent, follow_symlinks=False)
            raise UnsafeFile(where, f"is {_kind(st.st_mode)}, not a folder") from None
        raise


# --- removing what a project wrote -------------------------------------------------------------

_DIR_FLAGS = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
_PASSES = 3  # a folder a writer keeps filling is listed again at most this often, then left


def _why(error: OSError) -> str:
    return os.strerror(error.errno) if error.errno else error.__class__.__name__


def _unlink(folder: int, name: str, where: str, left: list[str]) -> bool:
    try:
        os.unlink(name, dir_fd=folder)
    except FileNotFoundError:
        pass
    except OSError as e:
        left.append(f"{where} ({_why(e)})")
        return False
    return True


def _rmdir(folder: int, name: str, where: str, left: list[str]) -> bool:
    try:
        os.rmdir(name, dir_fd=folder)
    except FileNotFoundError:
        pass
    except OSError as e:
        if e.errno != errno.ENOTEMPTY or not any(x.startswith(where + "/") for x in left):
            left.append(f"{where} ({_why(e)})")  # not already explained by what stayed inside
        return False
    return True


def _listing(fd: int) -> list[str] | None:
    try:
        return sorted(os.listdir(fd), reverse=True)  # popped from the end: in name order
    except OSError:
        return None


def _remove_below(top: int, top_where: str, names: list[str], left: list[str]) -> None:
    """Remove `names` in the open folder `top` and everything below them, depth first, without
    recursion: one level at a time, going down by name (O_NOFOLLOW, fstat-checked) and back up
    by `..`, checked against the folder it came from. A walk that loses its way (a folder moved
    away while walked) stops there; what resisted is in `left`."""
    fd = os.dup(top)
    # One frame per level below `top`: its name in the parent, the parent's (dev, ino), the
    # names still to remove there, the names that resisted there, the passes made.
    levels: list[tuple[str, tuple[int, int]]] = []
    wheres = [top_where]
    pending: list[list[str]] = [sorted(names, reverse=True)]
    resisted: list[set[str]] = [set()]
    passes = [_PASSES]  # the names asked for, not what else is in `top`
    try:
        while True:
            if pending[-1]:
                name = pending[-1].pop()
                if name in resisted[-1]:
                    continue
                where = f"{wheres[-1]}/{shown(name)}" if wheres[-1] else shown(name)
                try:
                    st = os.stat(name, dir_fd=fd, follow_symlinks=False)
                except FileNotFoundError:
                    continue
                except OSError as e:
                    left.append(f"{where} ({_why(e)})")
                    resisted[-1].add(name)
                    continue
                if not stat.S_ISDIR(st.st_mode):
                    if not _unlink(fd, name, where, left):
                        resisted[-1].add(name)
                    continue
                try:
                    sub = os.open(name, _DIR_FLAGS, dir_fd=fd)
                except FileNotFoundError:
                    continue
                except OSError as e:
                    if e.errno in (errno.ELOOP, errno.ENOTDIR):  # swapped for a link: that goes
                        if not _unlink(fd, name, where, left):
                            resisted[-1].add(name)
                    else:
                        left.append(f"{where} ({_why(e)})")
                        resisted[-1].add(name)
                    continue
                inner, here = os.fstat(sub), os.fstat(fd)
                if (inner.st_dev, inner.st_ino) != (st.st_dev, st.st_ino):
                    os.close(sub)  # swapped for another folder meanwhile: left, named
                    left.append(f"{where} (changed while it was removed)")
                    resisted[-1].add(name)
                    continue
                listed = _listing(sub)
                if listed is None:
                    os.close(sub)
                    left.append(f"{where} (cannot be listed)")
                    resisted[-1].add(name)
                    continue
                levels.append((name, (here.st_dev, here.st_ino)))
                wheres.append(where)
                pending.append(listed)
                resisted.append(set())
                passes.append(1)
                os.close(fd)
                fd = sub
                continue
            if passes[-1] < _PASSES:  # anything written meanwhile goes too
                again = [n for n in (_listing(fd) or []) if n not in resisted[-1]]
                if again:
                    pending[-1], passes[-1] = again, passes[-1] + 1
                    continue
            if not levels:
                return
            name, parent_id = levels.pop()
            where = wheres.pop()
            pending.pop(), passes.pop()
            inside = resisted.pop()
            try:
                up = os.open("..", _DIR_FLAGS, dir_fd=fd)
            except OSError as e:
                left.append(f"{where} ({_why(e)})")
                return
            seen = os.fstat(up)
            os.close(fd)
            fd = up
            if (seen.st_dev, seen.st_ino) != parent_id:
                left.append(f"{where} (moved while it was removed)")
                return
            if inside or not _rmdir(fd, name, where, left):
                resisted[-1].add(name)
    finally:
        os.close(fd)


def _read_exactly(fd: int, size: int, where: str) -> bytes:
    chunks, left = [], size
    while left > 0:
        block = os.read(fd, min(CHUNK, left))
        if not block:
            raise UnsafeFile(where, "changed while it was read (it shrank)")
        chunks.append(block)
        left -= len(block)
    if os.read(fd, 1):
        raise UnsafeFile(where, "changed while it was read (it grew)")
    return b"".join(chunks)


def _write_all(fd: int, data: bytes) -> None:
    view = memoryview(data)
    while view:
        written = os.write(fd, view)
        view = view[written:]


def open_project_folder(project_root: Path, relative: str) -> Folder:
    """A folder below a project's root (which the project cannot replace), reached without
    following links: `open_project_folder(ws.root, "requests/queue")`."""
    with Folder.open(project_root, "") as root:
        return root.folder(relative)
