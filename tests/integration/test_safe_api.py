"""The researchers' API: `import tre.safe as safe` in a project, and what it queues."""

import io
import json
import os

import pandas as pd
import pytest
from output_check_factories import make_extract, pseudonyms, records

import tre.safe as safe
from tre.errors import UserError
from tre.output_check import load_parameters
from tre.output_check.notebooks import build_notebook_report
from tre.output_check.sources import read_released_tables
from tre.safe import SafeError, Session, status_html


@pytest.fixture
def project(tmp_path):
    project_dir = tmp_path / "p1"
    people = pseudonyms(500, seed=2)
    make_extract(project_dir, people)
    return project_dir, people


@pytest.fixture
def session(project):
    out = io.StringIO()
    session = Session(project[0], "p1", out=out)
    session.people = project[1]
    return session


def _queued(project_dir, name):
    directory = project_dir / "requests" / "queue" / name
    return (
        directory,
        json.loads((directory / "meta.json").read_text()),
        json.loads((directory / "report.json").read_text()),
    )


def test_crosstab_returns_the_protected_table_and_queues_it(session, project):
    data = records(400, persons=session.people)
    table = session.crosstab(data.kommune, data.sex, margins=True)
    assert table.loc["1151"].isna().all() or table.loc["1151", "All"] > 0  # 1151 is a tiny municipality
    assert table.loc["All", "All"] == 400  # NPR keeps totals
    assert table.min().min() >= 5
    assert all(str(t) == "Int64" for t in table.dtypes)  # counts stay whole numbers; hidden cells are <NA>
    assert table.attrs["tre_status"] == "protected"
    said = session.out.getvalue()
    assert "tre.safe: output_0 (crosstab) protected" in said
    # which cells were too small, which were hidden to protect them, and what would help
    assert "cell(s) hidden as too small (kommune=1151, sex=" in said and "more hidden to protect them" in said
    assert "merge small categories (method='merge'), or use coarser bands" in said
    assert "the check report: requests/queue/output_0/report.html" in said
    shown = status_html(table)
    assert shown.count(">hidden</td>") == int(table.isna().sum().sum()) > 0 and "NaN" not in shown
    assert 'href="' in shown and "output_0/report.html" in shown
    directory, meta, report = _queued(project[0], "output_0")
    assert sorted(p.name for p in directory.iterdir()) == [
        "cells.csv", "cells.csv.json", "evidence.json", "evidence.parquet", "meta.json", "report.html",
        "report.json", "table.csv",
    ]  # fmt: skip
    assert meta["kind"] == "frequency" and meta["call"] == "crosstab" and meta["project"] == "p1"
    assert meta["os_user"] and meta["created_at"] and "session.crosstab(data.kommune" in meta["arguments"]["code"]
    assert {f["name"] for f in meta["files"]} == {
        "cells.csv", "cells.csv.json", "table.csv", "evidence.json", "evidence.parquet",
    }  # fmt: skip
    assert report["status"] == "protected" and report["parameters"]["threshold"] == 5


def test_magnitude_tables_keep_contributors_for_dominance(session):
    data = records(400, persons=session.people)
    data.loc[data.index[data.kommune == "4601"][0], "cost"] = 5_000_000  # one payer dominates 4601
    table = session.pivot_table(data, values="cost", index="kommune", columns="sex", aggfunc="sum")
    report = json.loads((session.queue / "output_0" / "report.json").read_text())
    flagged = {tuple(c["key"].values()) for c in report["cells"] if "NKCheck" in c["checks"]}
    assert ("4601", "Total") in flagged
    assert table.loc["4601"].isna().any()


def test_regressions_report_residual_degrees_of_freedom(session):
    data = records(300, persons=session.people)
    exog = data[["age"]].assign(const=1.0)
    results = session.ols(data.cost, exog)
    assert results.tre_status == "pass" and results.df_resid == 298
    small = session.ols(data.cost.head(8), exog.head(8), name="tiny")
    assert small.tre_status == "fail"
    report = json.loads((session.queue / "tiny" / "report.json").read_text())
    assert report["findings"][0]["check"] == "MinimumDoFCheck" and report["residual_dof"] == 6
    logit = session.logit((data.cost > 2000).astype(int), exog)
    assert logit.tre_status == "pass"
    assert (session.queue / "output_0" / "summary.txt").read_text().startswith("                            OLS")


def test_hist_draws_from_checked_counts_with_round_edges(session):
    data = records(300, persons=session.people)
    figure = session.hist(data, "age", bins=6)
    edges = json.loads((figure.path.parent / "report.json").read_text())["bins"]
    assert float(edges[0]) < data.age.min() and float(edges[-1]) > data.age.max()
    assert all(float(e) == round(float(e)) for e in edges)
    assert figure.path.read_bytes().startswith(b"\x89PNG")
    bundle = figure._repr_mimebundle_()
    assert "image/png" in bundle and 'data-tre-output="output_0"' in bundle["text/html"]


def test_custom_outputs_need_review_and_leaks_fail(session, project, tmp_path):
    note = tmp_path / "note.txt"
    note.write_text("method notes\n")
    assert session.custom_output(note, comment="methods") is True
    leaky = tmp_path / "leaky.txt"
    leaky.write_text(f"check {project[1][0]}\n")
    session.custom_output(leaky)
    listing = session.finalise()
    assert listing[["output", "status"]].to_dict("records") == [
        {"output": "output_0", "status": "review"},
        {"output": "output_1", "status": "fail"},
    ]
    assert project[1][0] not in (session.queue / "output_1" / "report.json").read_text()


def test_released_tables_feed_the_differencing_check(session, project):
    data = records(400, persons=session.people)
    session.crosstab(data.kommune, data.sex, name="first")
    # the review workflow releases it: copy its published table and sidecar into released/
    released = project[0] / "released" / "REL-1"
    released.mkdir(parents=True)
    for name in ("cells.csv", "cells.csv.json"):
        (released / name).write_bytes((session.queue / "first" / name).read_bytes())
    assert len(read_released_tables(project[0] / "released")[0]) == 1
    fewer = data.drop(data.index[(data.kommune == "0301") & (data.sex == "F")][:2])
    table = session.crosstab(fewer.kommune, fewer.sex, name="second")
    report = json.loads((session.queue / "second" / "report.json").read_text())
    assert any("DifferencingCheck" in c["checks"] for c in report["cells"])
    assert pd.isna(table.loc["0301", "F"])


def test_bad_calls_and_names_are_refused(session):
    data = records(50, persons=session.people)
    with pytest.raises(SafeError, match="values need an aggfunc"):
        session.crosstab(data.kommune, data.sex, values=data.cost)
    with pytest.raises(SafeError, match="normalize is not supported"):
        session.crosstab(data.kommune, data.sex, normalize=True)
    session.crosstab(data.kommune, data.sex, name="one")
    first = json.loads((session.queue / "one" / "meta.json").read_text())
    session.crosstab(data.kommune, data.sex, name="one")  # a notebook run again, same results: kept
    assert "one (crosstab) is already queued with the same results" in session.out.getvalue()
    assert json.loads((session.queue / "one" / "meta.json").read_text()) == first
    session.crosstab(data.sex, data.kommune, name="one")  # different results: a new version, never a replacement
    assert "WARNING: an output named one is already queued with different results; this one is queued as one-2" in (
        session.out.getvalue()
    )
    assert json.loads((session.queue / "one" / "meta.json").read_text()) == first
    again = json.loads((session.queue / "one-2" / "meta.json").read_text())
    assert again["name"] == "one-2" and again["arguments"] != first["arguments"]
    assert sorted(p.name for p in session.queue.iterdir()) == ["one", "one-2"]  # nothing half-written
    for bad in ("one\n", "one\u202eeno", "x" * 300):
        with pytest.raises(UserError, match="is refused: it"):
            session.crosstab(data.kommune, data.sex, name=bad)
    assert sorted(p.name for p in session.queue.iterdir()) == ["one", "one-2"]


def test_outside_a_project_the_module_calls_say_what_is_missing(monkeypatch):
    monkeypatch.delenv("TRE_PROJECT_DIR", raising=False)
    with pytest.raises(SafeError, match="TRE_PROJECT_DIR and TRE_PROJECT"):
        safe.crosstab(pd.Series(["a"]), pd.Series(["b"]))


NOTEBOOK = """
import tre
import tre.safe as safe
con = tre.connect()
df = con.sql("select * from persons").df()
"""


@pytest.mark.slow
def test_a_notebook_using_tre_safe_in_a_real_kernel_passes_its_check(project, tmp_path):
    """The kernel shows each safe table with its status; the notebook check recognises them."""
    import nbformat
    from nbclient import NotebookClient

    notebook = nbformat.v4.new_notebook()
    notebook.cells = [
        nbformat.v4.new_code_cell(NOTEBOOK),
        nbformat.v4.new_code_cell("safe.crosstab(df.kommune, df.sex)"),
        nbformat.v4.new_code_cell("safe.pivot_table(df, values='age', index='kommune', aggfunc='mean')"),
        nbformat.v4.new_code_cell("safe.hist(df, 'age', bins=5)"),
    ]
    env = {"TRE_PROJECT_DIR": str(project[0]), "TRE_PROJECT": "p1"}
    old = {k: os.environ.get(k) for k in env}
    os.environ.update(env)
    try:
        NotebookClient(notebook, timeout=120, kernel_name="python3").execute()
    finally:
        for k, v in old.items():
            os.environ.pop(k) if v is None else os.environ.__setitem__(k, v)
    path = tmp_path / "analysis.ipynb"
    nbformat.write(notebook, str(path))
    html = notebook.cells[1].outputs[-1]["data"]["text/html"]
    assert 'data-tre-output="output_0"' in html and ">protected</b>" in html
    report = build_notebook_report(
        path, load_parameters(), frozenset(project[1]), queue_dir=project[0] / "requests" / "queue"
    )
    assert report.status == "protected", report.summary()  # its tables were protected
    assert [o["type"] for o in report.as_dict()["outputs"]][-1] == "image"
