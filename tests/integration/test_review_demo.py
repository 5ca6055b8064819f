"""The demo's review step: queued outputs to a released bundle, as `tre demo` calls it."""

from __future__ import annotations

import io
import json
import zipfile

import pytest
from conftest import CLI
from review_world import PROJECT, build_world

from tre.errors import UserError
from tre.output_check.demo import review_and_release


def test_the_demo_releases_the_queued_outputs_and_returns_the_bundle(tmp_path):
    world = build_world(tmp_path)
    world.queue_table("by_kommune", seed=1)
    world.queue_table("by_kommune_2024", seed=2)
    said = io.StringIO()
    bundle = review_and_release(
        world.store, world.settings, PROJECT, author="rita", say=lambda line: said.write(line + "\n")
    )
    assert bundle == world.settings.exports_dir / PROJECT / "REQ-1.zip" and bundle.is_file()
    with zipfile.ZipFile(bundle) as z:
        manifest = json.loads(z.read("REQ-1/manifest.json"))
    assert [o["name"] for o in manifest["outputs"]] == ["by_kommune", "by_kommune_2024"]
    assert {v["reviewer"] for o in manifest["outputs"] for v in o["votes"]} == {"olav", "oda"}
    assert manifest["outputs"][0]["context"]["relation"] == "made in the same notebook as by_kommune_2024"
    assert "olav released REQ-1" in said.getvalue()
    status = CLI(world.env).ok("request", "status", "REQ-1", "--json", as_user="rita").json()
    assert status["status"] == "released"
    # Again, with nothing queued: the same bundle, nothing new.
    assert review_and_release(world.store, world.settings, PROJECT, author="rita", say=lambda _: None) == bundle


def test_the_demo_does_not_override_a_failed_check(tmp_path):
    world = build_world(tmp_path)
    failing = world.project_dir / "work" / "few.csv"
    failing.parent.mkdir(parents=True, exist_ok=True)
    failing.write_text("region,n\nNord,2\nSor,40\n")
    from tre.safe import Session

    Session(world.project_dir, PROJECT, out=io.StringIO()).custom_output(failing, name="few")
    with pytest.raises(UserError, match="the demo does not override failed checks: few failed"):
        review_and_release(world.store, world.settings, PROJECT, author="rita", say=lambda _: None)
