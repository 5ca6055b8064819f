"""Without isolation (no root, or hub_isolation = off) the hub still works, and says it is unsafe."""

import textwrap

import pytest

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


def test_dev_hub_runs_a_project_server_and_warns(dev_hub):
    rita = dev_hub.researcher("rita")
    assert rita.spawn("alpha").status in (201, 202)
    rita.wait_ready("alpha")
    result = rita.run(
        "alpha",
        textwrap.dedent(
            """
            import os, duckdb
            print(os.environ["TRE_PROJECT_DIR"])
            print(duckdb.connect(os.environ["TRE_EXTRACT"], read_only=True).execute("select count(*) from contacts").fetchone()[0])
            """
        ),
    )
    assert result.error is None, result
    project_dir, rows = result.stdout.split()
    assert project_dir == str(dev_hub.settings.projects_dir / "alpha") and rows == "42"
    assert "OS isolation is off" in dev_hub.running.log.read_text()
    assert rita.server_get("alpha", "files/work/example.ipynb").status == 403
    rita.stop("alpha")
