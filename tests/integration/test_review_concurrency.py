"""Officers acting at the same moment from separate processes leave one consistent state."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest
from conftest import CLI
from review_world import PROJECT, build_world

from tre.models import AuditEvent, Review, Vote

TRE = str(Path(sys.executable).parent / "tre")


@pytest.fixture
def world(tmp_path):
    return build_world(tmp_path)


def _at_once(env, *commands: list[str]) -> list[subprocess.CompletedProcess]:
    """Start every command before waiting for any: real processes racing for the store."""
    procs = [
        subprocess.Popen([TRE, *c], env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for c in commands
    ]
    results = []
    for p, c in zip(procs, commands, strict=True):
        out, err = p.communicate(timeout=120)
        results.append(subprocess.CompletedProcess(c, p.returncode, out, err))
    return results


def test_officers_voting_and_submitting_at_once(world):
    cli = CLI(world.env)
    world.queue_table("t1")
    label = cli.ok("request", "new", PROJECT, "--json", as_user="rita").json()["request"]
    cli.ok(
        "request",
        "add",
        label,
        "t1",
        "--population",
        "all adults",
        "--shows",
        "counts",
        "--relation",
        "first",
        as_user="rita",
    )
    cli.ok("request", "submit", label, as_user="rita")

    votes = _at_once(
        world.env,
        *[
            ["review", "vote", label, "t1", "approve", "--comment", f"{o} agrees", "--as", o]
            for o in ("olav", "oda", "otto")
        ],
    )
    codes = sorted(r.returncode for r in votes)
    assert codes == [0, 0, 9], [r.stderr for r in votes]
    refused = next(r for r in votes if r.returncode == 9)
    assert "cannot start a third review" in refused.stderr
    reviewers = [c[-1] for c, r in zip((v.args for v in votes), votes, strict=True) if r.returncode == 0]

    submits = _at_once(world.env, *[["review", "submit", label, "--as", o] for o in reviewers])
    assert [r.returncode for r in submits] == [0, 0], [r.stderr for r in submits]

    with world.store.transaction() as session:
        reviews = session.query(Review).all()
        assert sorted(r.reviewer.name for r in reviews) == sorted(reviewers)
        assert all(r.status.value == "submitted" for r in reviews)
        assert session.query(Vote).count() == 2
        decided = session.query(AuditEvent).filter(AuditEvent.action == "request.decide").all()
        assert len(decided) == 1 and '"status":"approved"' in decided[0].details
    assert cli.ok("request", "status", label, "--json", as_user="rita").json()["status"] == "approved"
    assert cli.ok("audit", "verify", "--json", as_user="ada").json()["ok"] is True
