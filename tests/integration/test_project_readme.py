"""What a researcher finds in work/ at the first start (issue 18): a README with the approval,
the period, the variables and a data dictionary, the output rules and how to request a release;
only the project's own example notebooks, without test-only cells. work/ is the project's to
write, and the spawner is root: every trick a project could play with the README's name fails."""

from __future__ import annotations

import json
import os

import duckdb
import pytest
from factories import make_approval, make_project

from tre.config import load_settings
from tre.db import Store
from tre.project_readme import README_MARK, build_project_readme
from tre.workspace import NOTEBOOKS_MARKER, TEST_ONLY, Workspace, project_notebooks, seed_notebooks


def _notebook(projects=None, cells=()) -> str:
    metadata = {"kernelspec": {"name": "python3"}} | ({"tre": {"projects": projects}} if projects is not None else {})
    return json.dumps({"cells": list(cells), "metadata": metadata, "nbformat": 4, "nbformat_minor": 5})


def _cell(source: str, tags=()) -> dict:
    return {
        "cell_type": "code",
        "metadata": {"tags": list(tags)},
        "source": source,
        "outputs": [1],
        "execution_count": 3,
    }


@pytest.fixture
def project(initialised, tre_env, tmp_path):
    """Project `alpha` with an approval, and an extract's manifest and Parquet file in data/."""
    settings = load_settings(tre_env)
    store = Store(settings.db_url)
    with store.transaction() as session:
        approval = make_approval(session, make_project(session, "alpha", "Diabetes follow-up"), threshold=10)
        approval.document = {
            **approval.document,
            "threshold": 10,
            "conditions": ["Only aggregate results may leave.", "No attempt to re-identify anyone."],
            "purpose_description": "GP follow-up after discharge",
            "date_precision": "month",
        }
    ws = Workspace(settings.projects_dir / "alpha")
    ws.work.mkdir(parents=True)
    ws.data.mkdir()
    con = duckdb.connect()
    con.execute(
        "COPY (SELECT 'p1' AS pseudonym, TIMESTAMP '1960-03-01' AS birth_date, 'K' AS sex, '0301' AS municipality) "
        f"TO '{ws.data / 'persons.parquet'}' (FORMAT parquet)"
    )
    manifest = {
        "extract": 4,
        "period": {"from": "2023-01-01", "to": "2024-12-31"},
        "date_precision": "month",
        "variables": {"dsf": ["birth_date", "sex", "municipality"]},
        "tables": {"persons": 1},
        "cohort_size": 1,
        "disclosure": {"threshold": 10},
        "built_at": "2026-11-30T12:00:00+00:00",
        "notes": ["dates are coarsened to the month: a date stands for the first day of its month"],
    }
    (ws.data / "manifest.json").write_text(json.dumps(manifest))
    return store, ws, tmp_path


def _readme(store, ws, notebooks=()) -> str:
    with store.transaction() as session:
        return build_project_readme(session, "alpha", ws, list(notebooks), review_url="/services/tre-review/")


def test_the_readme_gives_the_approval_the_data_the_rules_and_the_way_out(project):
    store, ws, _ = project
    text = _readme(store, ws, ["diabetes_followup.ipynb"])
    assert text.startswith(README_MARK + "\n")
    for expected in (
        "# alpha: Diabetes follow-up",
        "- **Reference** REF-2026-0001 (approval `approval-alpha`",
        "- **Purpose**: GP follow-up after discharge",
        "- Only aggregate results may leave.",
        "- **Period**: 2023-01-01 to 2024-12-31",
        "dates at month precision",
        "#### `persons` (1 rows)",
        "| `birth_date` | date | date of birth (month precision) |",
        "| `sex` | text | M or K | M, K |",
        "| `municipality` | text | municipality number of residence | municipality numbers (0301 Oslo ...) |",
        "at least **10 persons**",
        "## How to request a release",
        "exception request",
        "(/services/tre-review/)",
        "- `diabetes_followup.ipynb`",
    ):
        assert expected in text, expected
    valid_until = text.split("until ")[1][:10]
    assert valid_until.count("-") == 2


def test_only_the_projects_notebooks_without_test_cells(project):
    store, ws, tmp_path = project
    notebooks = tmp_path / "notebooks"
    notebooks.mkdir()
    (notebooks / "mine.ipynb").write_text(
        _notebook(["alpha"], [_cell("import tre"), _cell("project_dir = '/tmp/x'  # tests only", [TEST_ONLY])])
    )
    (notebooks / "theirs.ipynb").write_text(_notebook(["beta"]))
    (notebooks / "everyone.ipynb").write_text(_notebook())
    (notebooks / "broken.ipynb").write_text("not json")
    assert [p.name for p in project_notebooks(notebooks, "alpha")] == ["everyone.ipynb", "mine.ipynb"]
    seeded = seed_notebooks(ws, notebooks, None, readme=_readme(store, ws))
    assert seeded.copied == ["everyone.ipynb", "mine.ipynb"] and seeded.readme
    copy = json.loads((ws.work / "mine.ipynb").read_text())
    assert [c["source"] for c in copy["cells"]] == ["import tre"]
    assert copy["cells"][0]["outputs"] == [] and copy["cells"][0]["execution_count"] is None
    assert not (ws.work / "theirs.ipynb").exists()


def test_the_readme_is_kept_up_to_date_unless_the_researchers_wrote_their_own(project):
    store, ws, tmp_path = project
    readme = ws.work / "README.md"
    seed_notebooks(ws, tmp_path, None, readme="old\n".join([README_MARK, ""]))
    seed_notebooks(ws, tmp_path, None, readme=_readme(store, ws))
    assert "## The approval" in readme.read_text()
    readme.write_text("# Our own notes\n")
    again = seed_notebooks(ws, tmp_path, None, readme=_readme(store, ws))
    assert not again.readme and readme.read_text() == "# Our own notes\n"
    assert [p.name for p in ws.work.iterdir() if p.name.startswith(".README")] == []


def test_a_planted_readme_is_never_written_through(project):
    store, ws, tmp_path = project
    target = tmp_path / "etc-shadow"
    readme = ws.work / "README.md"
    readme.symlink_to(target)  # dangling: root would create the file anywhere
    seeded = seed_notebooks(ws, tmp_path, None, readme=_readme(store, ws))
    assert "README.md" in seeded.refused and not target.exists() and readme.is_symlink()
    readme.unlink()
    outside = tmp_path / "outside.md"
    outside.write_text(README_MARK + "\nsomeone else's file\n")
    os.link(outside, readme)  # a hard link to a file outside work/, with the mark
    seeded = seed_notebooks(ws, tmp_path, None, readme=_readme(store, ws))
    assert "README.md" in seeded.refused and outside.read_text().endswith("someone else's file\n")
    readme.unlink()
    readme.mkdir()
    seeded = seed_notebooks(ws, tmp_path, None, readme=_readme(store, ws))
    assert "README.md" in seeded.refused and readme.is_dir()
    assert (ws.work / NOTEBOOKS_MARKER).is_file()
