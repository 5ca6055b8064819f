"""An approval's own threshold is the one value the kernel, the queue, intake, the CLI and the
review use; the kernel's environment cannot lower it. (The same through a hub-spawned server:
tests/e2e/test_threshold_hub.py.)"""

from __future__ import annotations

import io
import json

import pytest
from output_check_factories import records
from review_world import PROJECT, build_world

import tre.safe as safe
from tre.safe import SafeError, Session

CONTEXT = ["--population", "adults", "--shows", "persons", "--relation", "first"]


@pytest.fixture
def world(tmp_path):
    world = build_world(tmp_path, threshold=10)
    manifest = world.project_dir / "data" / "manifest.json"  # as `tre extract build` writes it
    manifest.write_text(json.dumps({"format": "tre-extract/1", "disclosure": {"threshold": 10}}))
    return world


def test_the_kernel_cannot_lower_the_project_threshold(world, monkeypatch):
    monkeypatch.setenv("TRE_PROJECT_DIR", str(world.project_dir))
    monkeypatch.setenv("TRE_PROJECT", PROJECT)
    monkeypatch.setenv("TRE_OUTPUT_THRESHOLD", "3")
    safe._session_for.cache_clear()
    try:
        assert safe.session().params.threshold == 10
        monkeypatch.setenv("TRE_OUTPUT_THRESHOLD", "12")  # stricter is allowed
        assert safe.session().params.threshold == 12
        monkeypatch.setenv("TRE_OUTPUT_THRESHOLD", "ten")
        with pytest.raises(SafeError, match="TRE_OUTPUT_THRESHOLD must be a whole number above 0, got 'ten'"):
            safe.session()
    finally:
        safe._session_for.cache_clear()
    assert Session(world.project_dir, PROJECT, threshold=5).params.threshold == 10


def test_threshold_10_in_the_queue_intake_the_cli_and_the_review(world):
    cli = world.cli
    data = records(400)
    Session(world.project_dir, PROJECT, out=io.StringIO()).crosstab(data.kommune, data.sex, name="t10")
    queued = json.loads((world.project_dir / "requests" / "queue" / "t10" / "report.json").read_text())
    assert queued["parameters"]["threshold"] == 10
    checked = cli.ok("check", "output", str(world.project_dir / "requests" / "queue" / "t10"), "--project", PROJECT,
                     "--json", as_user="rita").json()  # fmt: skip
    assert checked["parameters"]["threshold"] == 10
    lower = cli("check", "output", "x.csv", "--project", PROJECT, "--threshold", "5", as_user="rita")
    assert lower.code == 2 and "checks outputs with threshold 10 (its approval)" in lower.err
    label = cli.ok("request", "new", PROJECT, "--json", as_user="rita").json()["request"]
    cli.ok("request", "add", label, "t10", *CONTEXT, as_user="rita")
    cli.ok("request", "submit", label, as_user="rita")
    shown = cli.ok("review", "show", label, "--json", as_user="olav").json()["files"][0]
    assert shown["threshold"] == 10
    assert "checked with threshold 10" in cli.ok("review", "show", label, as_user="olav").out


def test_an_output_checked_below_the_project_threshold_is_refused(world):
    """A kernel that got around the floor (the manifest out of its sight) checked at 5."""
    (world.project_dir / "data" / "manifest.json").unlink()
    data = records(400)
    Session(world.project_dir, PROJECT, threshold=5, out=io.StringIO()).crosstab(data.kommune, data.sex, name="t5")
    cli = world.cli
    label = cli.ok("request", "new", PROJECT, "--json", as_user="rita").json()["request"]
    refused = cli("request", "add", label, "t5", as_user="rita")
    assert refused.code == 1
    assert "output t5 was checked with threshold 5, project diabetes needs 10" in refused.err
