"""Privileged reads and writes of project folders, attacked as a project's code would: links,
FIFOs, devices, sockets, hard links, sparse files, names that are not names."""

from __future__ import annotations

import os
import stat
import threading
import time

import pytest

from tre.errors import UnsafeFile, UsageError
from tre.project_files import Folder, check_name, shown

LIMIT = 1 << 20


@pytest.fixture
def project(tmp_path):
    root = tmp_path / "project"
    (root / "requests" / "queue" / "t1").mkdir(parents=True)
    (root / "requests" / "queue" / "t1" / "cells.csv").write_text("a,n\nx,5\n")
    secret = tmp_path / "host"
    secret.mkdir()
    (secret / "master.key").write_text("the master key\n")
    return root, secret


def _queue(root):
    with Folder.open(root, "") as top:
        return top.folder("requests/queue/t1")


def test_a_regular_file_is_read(project):
    root, _ = project
    with _queue(root) as folder:
        assert folder.read_bytes("cells.csv", LIMIT) == b"a,n\nx,5\n"
        assert folder.where == "requests/queue/t1"


def test_a_symlinked_file_or_folder_is_never_followed(project):
    root, secret = project
    queue = root / "requests" / "queue" / "t1"
    (queue / "key.csv").symlink_to(secret / "master.key")
    with _queue(root) as folder, pytest.raises(UnsafeFile, match="key.csv: is a symbolic link"):
        folder.read_bytes("key.csv", LIMIT)
    # a folder on the way replaced by a link to a host folder
    (root / "requests" / "queue" / "t2").symlink_to(secret)
    with Folder.open(root, "") as top, pytest.raises(UnsafeFile) as refused:
        top.folder("requests/queue/t2")
    assert str(refused.value) == "requests/queue/t2: is a symbolic link (links are never followed), not a folder"
    with Folder.open(root, "") as top, pytest.raises(UnsafeFile):
        top.folder("requests/../../host")


def test_a_fifo_device_or_socket_is_refused_without_blocking(project):
    root, _ = project
    queue = root / "requests" / "queue" / "t1"
    os.mkfifo(queue / "pipe.csv")
    started = time.monotonic()
    with _queue(root) as folder, pytest.raises(UnsafeFile, match="pipe.csv: is a FIFO"):
        folder.read_bytes("pipe.csv", LIMIT)
    assert time.monotonic() - started < 2
    if os.geteuid() == 0:
        os.mknod(queue / "null.csv", stat.S_IFCHR | 0o600, os.makedev(1, 3))
        with _queue(root) as folder, pytest.raises(UnsafeFile, match="null.csv: is a device"):
            folder.read_bytes("null.csv", LIMIT)
    os.mknod(queue / "sock.csv", stat.S_IFSOCK | 0o600)  # a socket's inode, as bind() leaves it
    with _queue(root) as folder, pytest.raises(UnsafeFile, match="sock.csv: is a socket"):
        folder.read_bytes("sock.csv", LIMIT)


def test_a_fifo_swapped_in_after_the_check_does_not_block_either(project):
    """Between the lstat and the open, the name becomes a FIFO: the non-blocking open and the
    fstat on the descriptor still refuse it."""
    root, _ = project
    queue = root / "requests" / "queue" / "t1"
    with _queue(root) as folder:
        original = folder.entry
        done = threading.Event()

        def swap(name):
            found = original(name)
            (queue / name).unlink()
            os.mkfifo(queue / name)
            done.set()
            return found

        folder.entry = swap
        with pytest.raises(UnsafeFile, match="cells.csv: is a FIFO"):
            folder.read_bytes("cells.csv", LIMIT)
    assert done.is_set()


def test_a_hard_link_is_refused(project):
    root, secret = project
    os.link(secret / "master.key", root / "requests" / "queue" / "t1" / "key.csv")
    with _queue(root) as folder, pytest.raises(UnsafeFile, match="key.csv: has 2 hard links"):
        folder.read_bytes("key.csv", LIMIT)


def test_a_sparse_file_over_the_limit_is_refused_before_a_byte_is_read(project):
    root, _ = project
    with open(root / "requests" / "queue" / "t1" / "huge.csv", "wb") as f:
        f.truncate(8 << 30)  # 8 GiB of nothing
    started = time.monotonic()
    with _queue(root) as folder, pytest.raises(UnsafeFile) as refused:
        folder.read_bytes("huge.csv", LIMIT, setting="output_file_limit")
    assert time.monotonic() - started < 1
    assert str(refused.value) == (
        "requests/queue/t1/huge.csv: is 8.0 GiB, over the limit of 1.0 MiB (output_file_limit)"
    )


def test_new_files_are_never_written_through_a_planted_name(project, tmp_path):
    root, secret = project
    work = root / "work"
    work.mkdir()
    (work / "notebook.ipynb").symlink_to(tmp_path / "created-by-root")  # dangling
    with Folder.open(root, "") as top, top.folder("work") as folder:
        assert folder.exists("notebook.ipynb")
        with pytest.raises(UnsafeFile, match="already exists"):
            folder.write_new("notebook.ipynb", b"{}")
        folder.write_new("fresh.txt", b"ok", 0o640)
    assert not (tmp_path / "created-by-root").exists()
    assert (work / "fresh.txt").read_bytes() == b"ok" and stat.S_IMODE((work / "fresh.txt").stat().st_mode) == 0o640


def test_a_tree_is_removed_without_following_links(project):
    root, secret = project
    queue = root / "requests" / "queue" / "t1"
    (queue / "inside").symlink_to(secret)
    with Folder.open(root, "") as top, top.folder("requests/queue") as folder:
        folder.remove_tree("t1")
    assert not queue.exists() and (secret / "master.key").is_file()


@pytest.mark.parametrize(
    "name, why",
    [
        ("by_kommune\n", "it contains a line break"),
        ("tab\u202eelbat", "it contains an invisible formatting character (such as a right-to-left override)"),
        ("x" * 300, "it has 300 characters (at most 100)"),
        (".hidden", "it starts with '.'"),
        ("a/b", "it contains '/'"),
        ("", "it is empty"),
    ],
)
def test_names_follow_one_rule(name, why):
    with pytest.raises(UsageError) as refused:
        check_name(name)
    message = str(refused.value)
    assert why in message and "use 1-100 letters, digits" in message
    assert "\n" not in message and "\u202e" not in message and len(message) < 300


def test_names_are_shown_safely():
    assert shown("a\u202eb\nc") == "a\\u202eb\\nc"
    assert shown("t12345678901") == "t<11 digits>"
    assert check_name("by_kommune-2.v1") == "by_kommune-2.v1"


def test_a_tree_of_any_depth_is_removed_with_few_open_descriptors(tmp_path):
    """Iterative, not recursive: 3000 nested folders go, with the descriptor limit at 64."""
    import resource

    deep = tmp_path / "work" / "deep"
    deep.mkdir(parents=True)
    fd = os.open(deep, os.O_RDONLY)
    for _ in range(3000):
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(os.open("copy.csv", os.O_WRONLY | os.O_CREAT, dir_fd=fd))
    os.close(fd)
    soft, hard = resource.getrlimit(resource.RLIMIT_NOFILE)
    with Folder.open(tmp_path / "work", "work") as work:
        resource.setrlimit(resource.RLIMIT_NOFILE, (64, hard))
        try:
            work.remove_tree("deep")
        finally:
            resource.setrlimit(resource.RLIMIT_NOFILE, (soft, hard))
    assert list((tmp_path / "work").iterdir()) == []


@pytest.mark.skipif(os.geteuid() != 0, reason="chattr +i needs root")
def test_what_resists_removal_is_named_and_everything_else_goes(tmp_path):
    import subprocess

    work = tmp_path / "work"
    (work / "a" / "b").mkdir(parents=True)
    (work / "a" / "b" / "stuck\n1234567890123.csv").write_text("x")
    (work / "a" / "b" / "other.csv").write_text("x")
    (work / "a" / "c").mkdir()
    (work / "a" / "c" / "copy.csv").write_text("x")
    stuck = work / "a" / "b" / "stuck\n1234567890123.csv"
    subprocess.run(["chattr", "+i", str(stuck)], check=True)
    try:
        with Folder.open(work, "work") as folder:
            left = folder.remove_all("a")
            with pytest.raises(UnsafeFile, match="could not be removed"):
                folder.remove_tree("a")
        assert left == ["work/a/b/stuck\\n<13 digits>.csv (Operation not permitted)"]
        assert sorted(p.name for p in work.rglob("*")) == ["a", "b", stuck.name]
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
