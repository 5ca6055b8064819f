"""The example notebooks, run headless with papermill against freshly built demo extracts,
the way a researcher would run them in the project's JupyterLab."""

from __future__ import annotations

import io
import json
import os
import shutil
from pathlib import Path

import pytest
from rich.console import Console

from tre import demo
from tre.config import load_settings
from tre.db import Store
from tre.headless import run_notebook
from tre.output_check.kinds import Check

REPO = Path(__file__).resolve().parents[2]
# What must never be in an output: an ID number, a pseudonym, a list of persons.
LEAK_CHECKS = {Check.IDENTITY_NUMBER, Check.PSEUDONYM, Check.PERSON_LEVEL}
NOTEBOOKS = {
    "diabetes": ("diabetes_followup.ipynb", 5),
    "heartcohort": ("heart_rehabilitation.ipynb", 3),
    "bergen-care": ("bergen_care_statistics.ipynb", 1),
}


@pytest.fixture(scope="module")
def demo_tre(tmp_path_factory):
    """The demo path up to the extracts, on a small synthetic population."""
    base = tmp_path_factory.mktemp("notebooks")
    env = {k: v for k, v in os.environ.items() if not k.startswith("TRE_")}
    env["TRE_CLI_IDENTITY"] = "demo"  # who acts is asserted here, as in make demo (tre/identity.py)
    env["TRE_PROJECT_DISK_QUOTA"] = "0"  # no loop-mounted volumes unless a test wants them
    env.update(TRE_HOME=str(base / "home"), TRE_PROJECTS_DIR=str(base / "projects"), TRE_HUB_ISOLATION="off")
    settings = load_settings(env)
    console = Console(file=io.StringIO())
    state = demo.Demo(
        settings, Store(settings.db_url), demo.DemoOptions(persons=8000, years=2), say=lambda _: None, console=console
    )
    demo.run(state, steps=demo.STEPS[: demo.STEPS.index(demo.step_extracts_once) + 1])
    return settings, env


def empty_queue(project_dir: Path) -> None:
    queue = project_dir / "requests" / "queue"
    shutil.rmtree(queue, ignore_errors=True)
    queue.mkdir(parents=True)


@pytest.mark.slow
@pytest.mark.parametrize("project", sorted(NOTEBOOKS))
def test_notebook_runs_and_queues_only_checked_outputs(demo_tre, project, tmp_path):
    settings, env = demo_tre
    notebook, outputs = NOTEBOOKS[project]
    project_dir = settings.projects_dir / project
    empty_queue(project_dir)
    executed = tmp_path / notebook
    run_notebook(REPO / "notebooks" / notebook, executed, project_dir=project_dir, project=project, cwd=tmp_path)
    queue = project_dir / "requests" / "queue"
    queued = sorted(p.name for p in queue.iterdir())
    assert len(queued) == outputs, queued
    for name in queued:
        report = json.loads((queue / name / "report.json").read_text())
        assert report["status"] in ("pass", "protected", "review"), (name, report["status"])
        leaks = [f for f in report["findings"] if f["check"] in LEAK_CHECKS]
        assert not leaks, (name, leaks)
        # frames from tre.connect() carry their persons: cells count persons, not records
        assert not [f for f in report["findings"] if f["check"] == Check.UNIT_COUNT], name
        # The whole notebook cell that made it is kept for the reviewers.
        meta = json.loads((queue / name / "meta.json").read_text())
        assert "safe." in meta["arguments"]["cell"] and meta["arguments"]["code"] in meta["arguments"]["cell"]

    from conftest import CLI

    cli = CLI(env)
    checked = cli("check", "notebook", str(executed), "--project", project, "--json", as_user="ada")
    assert checked.code == 0, checked.err
    assert checked.json()["status"] in ("pass", "protected", "review")


@pytest.mark.slow
def test_a_notebook_that_shows_id_numbers_fails_its_check(demo_tre, tmp_path):
    """The § 4-5 cohort has ID numbers in the extract; a notebook that shows them cannot pass."""
    import nbformat

    settings, env = demo_tre
    nb = nbformat.read(REPO / "notebooks" / "heart_rehabilitation.ipynb", as_version=4)
    nb.cells.append(nbformat.v4.new_code_cell('con.sql("SELECT fnr, sex FROM persons LIMIT 3").df()'))
    leaky = tmp_path / "leaky.ipynb"
    nbformat.write(nb, leaky)
    executed = tmp_path / "leaky-run.ipynb"
    project_dir = settings.projects_dir / "heartcohort"
    empty_queue(project_dir)
    run_notebook(leaky, executed, project_dir=project_dir, project="heartcohort", cwd=tmp_path)
    from conftest import CLI

    checked = CLI(env)("check", "notebook", str(executed), "--project", "heartcohort", "--json", as_user="ada")
    assert checked.code != 0 and checked.json()["status"] == "fail"
    assert not any(ch.isdigit() and len(ch) == 11 for ch in checked.out.split())  # the report redacts them
