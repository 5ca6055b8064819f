"""An approval with threshold 10, through a hub-spawned, isolated server: 10 in the kernel,
in the queue, at intake and in the review (the approval's parameters reach the kernel)."""

from __future__ import annotations

import json
import textwrap

import pytest

from tre.models import Approval

from .conftest import running_hub

pytestmark = [pytest.mark.e2e, pytest.mark.slow]


@pytest.fixture(scope="module")
def hub(tmp_path_factory):
    from .conftest import _tools_missing

    missing = _tools_missing()
    if missing:
        pytest.skip(missing)
    with running_hub(tmp_path_factory, isolation="on", projects={"alpha": (["rita"], 365)}) as hub:
        with hub.store.transaction() as session:
            approval = session.query(Approval).filter_by(project_id="alpha").one()
            approval.document = {**approval.document, "threshold": 10}
        yield hub


def test_an_approval_threshold_of_10_reaches_kernel_queue_intake_and_review(hub):
    rita = hub.researcher("rita")
    assert rita.spawn("alpha").status in (201, 202)
    rita.wait_ready("alpha")
    try:
        result = rita.run(
            "alpha",
            textwrap.dedent(
                """
                import os
                import pandas as pd
                import tre.safe as safe
                print(os.environ.get("TRE_OUTPUT_THRESHOLD"), safe.session().params.threshold)
                df = pd.DataFrame({"kommune": ["0301"] * 40 + ["1103"] * 7, "sex": ["F", "M"] * 23 + ["F"]})
                safe.crosstab(df.kommune, df.sex, name="by_kommune")
                """
            ),
        )
    finally:
        rita.stop("alpha")
    assert result.error is None, result
    assert result.stdout.splitlines()[0] == "10 10"
    queued = hub.workspace("alpha").queue / "by_kommune" / "report.json"
    assert json.loads(queued.read_text())["parameters"]["threshold"] == 10
    code, out, err = hub.cli("request", "new", "alpha", "--json", as_user="rita")
    assert code == 0, err
    label = json.loads(out)["request"]
    context = ["--population", "all", "--shows", "persons", "--relation", "first"]
    code, out, err = hub.cli("request", "add", label, "by_kommune", *context, "--json", as_user="rita")
    assert code == 0, err
    assert not (hub.workspace("alpha").queue / "by_kommune").exists()  # taken in as root, from the sandbox's files
    assert hub.cli("request", "submit", label, as_user="rita")[0] == 0
    assert hub.cli("user", "add", "nils", "--role", "officer")[0] == 0
    code, out, err = hub.cli("review", "show", label, "--json", as_user="nils")
    assert code == 0, err
    assert json.loads(out)["files"][0]["threshold"] == 10
