"""§ 4-11 storage limits, run by `tre retention run` on the CLI's clock: counted from the first
linkage (a rebuild never restarts it), a warning ahead, and at the end everything of the linked
data set deleted, links planted in work/ removed but never followed, the release record kept."""

from __future__ import annotations

import datetime as dt
from pathlib import Path

import pytest
from test_extracts import clock
from test_extracts import world as extracts_world

world = extracts_world  # its own instance in this module: these tests delete and lock
FIRST = dt.datetime(2026, 11, 26, 12, 0, tzinfo=dt.UTC)  # sugar's first build; its approval keeps 2 years
END = "2028-11-26"


@pytest.fixture(scope="module")
def linked(world):
    world.ok("extract", "build", "sugar", as_user="ada", clock=clock(FIRST))
    # A rebuild half a year later: the clock does not restart.
    world.ok("extract", "build", "sugar", as_user="ada", clock=clock(dt.datetime(2027, 6, 1, 9, tzinfo=dt.UTC)))
    return world


def test_retention_counts_from_the_first_linkage_and_never_restarts(linked):
    extracts = linked.ok("extract", "list", "--json", as_user="ada").json()
    ready = [e for e in extracts if e["project"] == "sugar" and e["status"] == "ready"]
    assert [e["purge_after"] for e in ready] == [END]
    early = clock(dt.datetime(2028, 6, 1, tzinfo=dt.UTC))  # 178 days ahead: not yet warned
    assert linked.ok("retention", "run", as_user="ada", clock=early).out.strip() == "no project to warn or delete"


def test_the_project_is_warned_once_ahead_and_its_readme_shows_the_end(linked):
    ahead = clock(dt.datetime(2028, 9, 1, tzinfo=dt.UTC))  # 86 days before the end
    assert (
        linked.ok("retention", "run", as_user="ada", clock=ahead).out.strip() == f"sugar: retention ends {END}, warned"
    )
    assert linked.ok("retention", "run", as_user="ada", clock=ahead).out.strip() == "no project to warn or delete"
    log = linked.ok("audit", "log", "--action", "retention.warn", "--json", as_user="ada").json()
    assert [(e["object"], e["details"]["deadline"]) for e in log] == [("project:sugar", END)]
    readme = Path(linked.environ["TRE_PROJECTS_DIR"]) / "sugar" / "work" / "README.md"
    assert f"Deleted after {END}" in readme.read_text()


def test_at_the_end_everything_goes_but_the_release_record_and_links_are_never_followed(linked, tmp_path):
    projects, central = Path(linked.environ["TRE_PROJECTS_DIR"]), Path(linked.environ["TRE_HOME"]) / "central"
    sugar = projects / "sugar"
    outside = tmp_path / "outside"
    (outside / "folder").mkdir(parents=True)
    (outside / "folder" / "victim.txt").write_text("not the project's")
    (outside / "victim.txt").write_text("not the project's")
    # The project's copies (one with ID numbers, as from a § 4-5 delivery) and its planted links.
    (sugar / "work" / "copies").mkdir()
    (sugar / "work" / "copies" / "with_fnr.csv").write_text("fnr\n")
    (sugar / "work" / "escape").symlink_to(outside / "folder")
    (sugar / "work" / "copies" / "file_link").symlink_to(outside / "victim.txt")
    homes = Path(linked.environ["TRE_HOME"]) / "hub" / "homes"
    for home in ("rita-sugar", "rita-heart"):  # a member's home for this project, and for another
        (homes / home).mkdir(parents=True)
        (homes / home / "copy.csv").write_text("pseudonym\n")
    (homes / "rita-sugar" / "escape").symlink_to(outside / "folder")
    (sugar / "requests" / "queue" / "table-1").mkdir(parents=True, exist_ok=True)
    (sugar / "requests" / "queue" / "table-1" / "evidence.parquet").write_bytes(b"rows")
    assert (central / "keys" / "sugar.duckdb").exists()

    after = clock(dt.datetime(2028, 11, 27, 3, tzinfo=dt.UTC))
    out = linked.ok("retention", "run", as_user="ada", clock=after).out.strip()
    assert out.startswith(f"sugar: retention ended {END}, deleted data, work, requests, homes, key_table")
    assert not (homes / "rita-sugar").exists() and (homes / "rita-heart" / "copy.csv").exists()
    assert not (sugar / "data").exists() and list((sugar / "work").iterdir()) == []
    assert list((sugar / "requests" / "queue").iterdir()) == []
    assert not (central / "keys" / "sugar.duckdb").exists()
    assert (
        (outside / "folder" / "victim.txt").read_text() == (outside / "victim.txt").read_text() == "not the project's"
    )
    status = {s["project"]: s for s in linked.ok("project", "status", "--json", as_user="ada", clock=after).json()}
    assert status["sugar"]["status"] == "locked"
    steps = linked.ok("audit", "log", "--action", "retention.delete", "--json", as_user="ada").json()
    assert {e["details"]["step"] for e in steps} == {"data", "work", "requests", "homes", "key_table"}
    assert len(linked.ok("audit", "log", "--action", "retention.end", "--json", as_user="ada").json()) == 1
    released = linked.ok("releases", "list", "--json", as_user="kari").json()
    assert "sugar" in {r["project"] for r in released}  # § 4-10: the release record stays

    # Daily again: nothing left to delete, nothing audited twice, and a rebuild is refused.
    assert linked.ok("retention", "run", as_user="ada", clock=after).out.strip() == "no project to warn or delete"
    assert len(linked.ok("audit", "log", "--action", "retention.end", "--json", as_user="ada").json()) == 1
    assert linked("extract", "build", "sugar", as_user="ada", clock=after).code != 0
    # Unlocked and rebuilt: the data set is still past its end, and goes at the next run.
    linked.ok("project", "unlock", "sugar", as_user="ada", clock=after)
    linked.ok("extract", "build", "sugar", as_user="ada", clock=after)
    rerun = linked.ok("retention", "run", "--json", as_user="ada", clock=after).json()
    assert [(d["project"], d["deleted"]["data"], d["deleted"]["key_table"]) for d in rerun] == [("sugar", True, True)]
    assert not (sugar / "data").exists()


def test_files_that_resist_never_stop_retention(linked):
    """A 3000-folder-deep tree and an immutable file in work/: the project is still locked, its key
    table, data, homes and every other file deleted; what stayed is named (audited), the run exits
    non-zero, and the next run finishes once it can."""
    import os
    import subprocess

    projects, home = Path(linked.environ["TRE_PROJECTS_DIR"]), Path(linked.environ["TRE_HOME"])
    sugar, after = projects / "sugar", clock(dt.datetime(2028, 11, 28, 3, tzinfo=dt.UTC))
    linked.ok("project", "unlock", "sugar", as_user="ada", clock=after)
    linked.ok("extract", "build", "sugar", as_user="ada", clock=after)
    fd = os.open(sugar / "work", os.O_RDONLY)
    for _ in range(3000):
        os.mkdir("d", dir_fd=fd)
        inner = os.open("d", os.O_RDONLY, dir_fd=fd)
        os.close(fd)
        fd = inner
    os.close(fd)
    stuck = sugar / "work" / "stuck.csv"
    stuck.write_text("pseudonym\n")
    (home / "hub" / "homes" / "rita-sugar").mkdir(parents=True)
    (home / "hub" / "homes" / "rita-sugar" / "copy.csv").write_text("pseudonym\n")
    subprocess.run(["chattr", "+i", str(stuck)], check=True)
    try:
        run = linked("retention", "run", as_user="ada", clock=after)
        assert run.code != 0 and "retention incomplete" in run.err and "work/stuck.csv" in run.err
        assert "Traceback" not in run.err
        assert [p.name for p in (sugar / "work").iterdir()] == ["stuck.csv"]
        assert not (sugar / "data").exists() and not (home / "hub" / "homes" / "rita-sugar").exists()
        assert not (home / "central" / "keys" / "sugar.duckdb").exists()
        status = {s["project"]: s for s in linked.ok("project", "status", "--json", as_user="ada", clock=after).json()}
        assert status["sugar"]["status"] == "locked"
        events = linked.ok("audit", "log", "--action", "retention.incomplete", "--json", as_user="ada").json()
        assert events[-1]["details"]["stayed"] == ["work/stuck.csv (Operation not permitted)"]
    finally:
        subprocess.run(["chattr", "-i", str(stuck)], check=True)
    assert linked("retention", "run", as_user="ada", clock=after).code == 0
    assert list((sugar / "work").iterdir()) == []


def test_at_the_end_only_the_released_files_of_central_copies_stay(tmp_path):
    """Every central copy of the project's requests goes but the released `leaving/` files the
    § 4-10 record needs: evidence and the kernel's reports, of released requests too."""
    from conftest import CLI
    from review_world import PROJECT, build_world
    from sqlalchemy import select

    from tre.enums import ExtractStatus
    from tre.models import Approval, Extract

    w = build_world(tmp_path)
    cli = CLI(w.env)
    context = ["--population", "adults", "--shows", "persons", "--relation", "the first output"]
    labels = []
    for name in ("kept", "dropped"):
        w.queue_table(name)
        label = cli.ok("request", "new", PROJECT, "--json", as_user="rita").json()["request"]
        cli.ok("request", "add", label, name, *context, as_user="rita")
        labels.append(label)
    cli.ok("request", "submit", labels[0], as_user="rita")
    for officer in ("olav", "oda"):
        cli.ok("review", "vote", labels[0], "kept", "approve", "--comment", "safe", as_user=officer)
        cli.ok("review", "submit", labels[0], as_user=officer)
    cli.ok("release", labels[0], as_user="olav")
    central = w.settings.outputs_dir / PROJECT
    assert list(central.rglob("evidence.*")) and (central / labels[1]).is_dir()
    with w.store.transaction() as s:
        approval = s.execute(select(Approval).where(Approval.project_id == PROJECT)).scalars().first()
        s.add(
            Extract(
                project_id=PROJECT,
                approval_id=approval.id,
                approval_version=1,
                status=ExtractStatus.READY,
                built_at=dt.datetime(2014, 1, 1, tzinfo=dt.UTC),
                built_by="ada",
            )
        )
    done = cli.ok("retention", "run", "--json", as_user="ada").json()
    assert done[0]["deleted"]["central_request_copies"] == 2
    assert sorted(str(p.relative_to(central)) for p in central.rglob("*") if p.is_file()) == sorted(
        str(p.relative_to(central)) for p in (central / labels[0] / "kept" / "leaving").rglob("*") if p.is_file()
    )
    assert (central / labels[0] / "kept" / "leaving").is_dir() and not (central / labels[1]).exists()
    (event,) = [
        e
        for e in cli.ok("audit", "log", "--action", "retention.delete", "--json", as_user="ada").json()
        if e["details"]["step"] == "central_request_copies"
    ]
    assert sorted(event["details"]["copies"]) == sorted([labels[1], f"{labels[0]}/kept/received"])
