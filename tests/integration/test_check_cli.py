"""`tre check ...` as scripts and reviewers use it."""

import json

import pytest
from output_check_factories import add_project, make_extract, make_notebook, pseudonyms, synthetic_fnr

from tre.safe import Session

CELLS = (
    "kommune,sex,n\n0301,F,1\n0301,M,20\n0301,X,30\n1103,F,25\n1103,M,2\n1103,X,40\n4601,F,33\n4601,M,27\n4601,X,12\n"
)


@pytest.fixture
def cells(tmp_path):
    path = tmp_path / "cells.csv"
    path.write_text(CELLS)
    return path


def test_check_table_needs_no_store_and_prints_the_contract(cli, cells, tmp_path):
    result = cli("check", "table", str(cells), "--count-column", "n", "--protect", "--json")
    assert result.code == 0, result.err
    report = result.json()
    assert report["status"] == "protected"  # small cells were hidden
    assert report["parameters"]["threshold"] == 5 and report["parameters"]["version"]
    assert len(report["inputs"][0]["sha256"]) == 64
    assert len(report["cells"]) == 16  # 9 cells, 3 + 3 margins and the grand total
    by_key = {tuple(c["key"].values()): c for c in report["cells"]}
    assert set(by_key[("0301", "F")]) >= {"key", "value", "published", "status", "checks"}
    assert by_key[("0301", "F")] | {"interval": None} == {
        "key": {"kommune": "0301", "sex": "F"},
        "value": 1,
        "published": None,
        "status": "primary",
        "checks": ["MinimumThresholdCheck"],
        "interval": None,
    }
    assert by_key[("Total", "Total")]["published"] == 190
    assert sorted(c["status"] for c in report["cells"]).count("secondary") == 2
    assert not (tmp_path / "home").exists()  # nothing of a TRE installation was touched


def test_a_failing_table_exits_with_the_disclosure_code(cli, cells):
    result = cli("check", "table", str(cells), "--count-column", "n", "--json")
    assert result.code == 10
    assert result.json()["status"] == "fail"
    assert result.err.startswith("tre: check failed: 2 cell(s)") and result.err.count("\n") == 1
    text = cli("check", "table", str(cells), "--count-column", "n")
    assert "MinimumThresholdCheck" in text.out and "kommune=0301, sex=F" in text.out


def test_an_approval_threshold_and_other_remedies(cli, cells):
    report = cli("check", "table", str(cells), "--count-column", "n", "--threshold", "13", "--protect", "--json").json()
    assert report["parameters"]["threshold"] == 13
    assert {c["value"] for c in report["cells"] if c["status"] == "primary"} == {1, 2, 12}
    merged = cli(
        "check", "table", str(cells), "--count-column", "n", "--protect", "--method", "midpoint6", "--json"
    ).json()
    assert {c["status"] for c in merged["cells"]} == {"rounded"}


def test_released_tables_are_compared(cli, cells, tmp_path):
    earlier = tmp_path / "earlier.csv"
    earlier.write_text("kommune,n\n0301,51\n1103,70\n4601,72\nTotal,193\n")
    result = cli("check", "table", str(cells), "--count-column", "n", "--released", str(earlier), "--json")
    report = result.json()
    assert result.code == 10 and report["status"] == "fail"
    assert any(f["check"] == "DifferencingCheck" and "earlier.csv" in f["message"] for f in report["findings"])
    # 1103 and the grand total differ from the earlier release by 3: protecting hides them
    protected = cli(
        "check", "table", str(cells), "--count-column", "n", "--protect", "--released", str(earlier), "--json"
    )
    hidden = {tuple(c["key"].values()) for c in protected.json()["cells"] if "DifferencingCheck" in c["checks"]}
    assert protected.code == 0 and hidden == {("1103", "Total"), ("Total", "Total")}
    assert all(c["published"] is None for c in protected.json()["cells"] if "DifferencingCheck" in c["checks"])


def test_html_report_is_self_contained(cli, cells, tmp_path):
    page = tmp_path / "report.html"
    cli.ok("check", "table", str(cells), "--count-column", "n", "--protect", "--html", str(page))
    html = page.read_text()
    assert "<table class='grid'>" in html and "#f4b6b6" in html and "fewer units than the threshold" in html
    assert "<script" not in html and "http://" not in html and "https://" not in html and "src=" not in html


@pytest.mark.parametrize(
    "argv, code, message",
    [
        (["missing.csv", "--count-column", "n"], 6, "no such file"),
        (["{cells}", "--count-column", "count"], 1, "no column 'count'"),
        (["{cells}", "--count-column", "n", "--method", "merge"], 2, "--method needs --protect"),
        (["{total}", "--count-column", "n"], 1, "category 'Total'"),
    ],
)
def test_bad_input_gets_one_line(cli, cells, tmp_path, argv, code, message):
    total = tmp_path / "total.csv"
    total.write_text("kommune,n\n0301,12\nTotal,12\n")
    argv = [a.format(cells=cells, total=total) for a in argv]
    result = cli("check", "table", *argv)
    assert result.code == code and message in result.err and result.err.count("\n") == 1
    assert "Traceback" not in result.err


def test_the_installed_command_runs_as_a_process(cli, cells):
    result = cli.subprocess("check", "table", str(cells), "--count-column", "n", "--protect", "--json")
    assert result.code == 0 and json.loads(result.out)["status"] == "protected"


# --- the --project forms ----------------------------------------------------------------


@pytest.fixture
def project(store, tre_env, tmp_path):
    """Project p1 in the store with an extract of 60 persons."""
    from pathlib import Path

    add_project(store, "p1")
    project_dir = Path(tre_env["TRE_PROJECTS_DIR"]) / "p1"
    people = pseudonyms(300, seed=5)
    make_extract(project_dir, people)
    return project_dir, people


def test_notebook_check_needs_a_known_user_and_a_known_project(initialised, project, tmp_path):
    notebook = make_notebook(tmp_path / "n.ipynb", [("print(1)", [{"stream": "1\n"}])])
    assert initialised("check", "notebook", str(notebook), "--project", "p1").code == 5
    unknown = initialised("check", "notebook", str(notebook), "--project", "nope", as_user="ada")
    assert unknown.code == 6 and "no project 'nope'" in unknown.err
    ok = initialised("check", "notebook", str(notebook), "--project", "p1", "--json", as_user="ada")
    assert ok.code == 0 and ok.json()["status"] == "pass"


def test_notebook_check_finds_the_projects_pseudonyms(initialised, project, tmp_path):
    _, people = project
    number = synthetic_fnr(1, 2, 1955)
    notebook = make_notebook(
        tmp_path / "n.ipynb", [("print(df.head())", [{"stream": f"{people[4]}  71\n"}]), ("x", [{"text": number}])]
    )
    page = tmp_path / "nb.html"
    result = initialised(
        "check", "notebook", str(notebook), "--project", "p1", "--json", "--html", str(page), as_user="ada"
    )
    report = result.json()
    assert result.code == 10 and report["status"] == "fail"
    assert [o["status"] for o in report["outputs"]] == ["fail", "fail"]
    assert people[4] not in result.out + result.err + page.read_text()
    assert number not in result.out + page.read_text()
    assert "The notebook as rendered" in page.read_text()


def test_output_check_of_a_queued_output_and_of_a_tampered_one(initialised, project, tre_env):
    project_dir, people = project
    import io

    from output_check_factories import records

    session = Session(project_dir, "p1", out=io.StringIO())
    data = records(300, persons=people)
    session.crosstab(data.kommune, data.sex, name="by-kommune")
    queued = project_dir / "requests" / "queue" / "by-kommune"
    ok = initialised("check", "output", str(queued), "--project", "p1", "--json", as_user="ada")
    assert ok.code == 0 and ok.json()["status"] == "protected"
    (queued / "table.csv").write_text("kommune,F,M\n1151,1,2\n")
    tampered = initialised("check", "output", str(queued), "--project", "p1", "--json", as_user="ada")
    assert tampered.code == 10 and "table.csv changed after the output was made" in tampered.out


def test_magnitude_and_rate_tables(cli, tmp_path):
    contributors = tmp_path / "costs.csv"
    rows = ["kommune,n,cost"] + [f"0301,1,{v}" for v in (100, 120, 90, 110, 95, 105)]
    rows += [f"1103,1,{v}" for v in (5000, 20, 30, 25, 40, 35)] + ["4601,1,60", "4601,1,70"]
    contributors.write_text("\n".join(rows) + "\n")
    report = cli(
        "check", "table", str(contributors), "--count-column", "n", "--value-column", "cost", "--statistic", "mean",
        "--protect", "--json",
    ).json()  # fmt: skip
    by = {c["key"]["kommune"]: c for c in report["cells"]}
    assert report["kind"] == "magnitude" and report["statistic"] == "mean"
    assert by["1103"]["checks"] == ["NKCheck", "PPercentCheck"] and by["1103"]["published"] is None
    assert by["0301"]["published"] == 103.333333 and by["0301"]["units"] == 6
    rates = tmp_path / "rates.csv"
    rates.write_text("kommune,cases,pop\n0301,120,700000\n1151,2,1100\n4601,40,80000\n")
    report = cli(
        "check", "table", str(rates), "--count-column", "cases", "--denominator-column", "pop", "--protect", "--json"
    ).json()
    by = {c["key"]["kommune"]: c for c in report["cells"]}
    assert report["kind"] == "rate" and by["0301"]["published"] == round(120 / 700000 * 1000, 6)  # per 1000
    assert by["1151"]["published"] is None and by["1151"]["numerator"] == 2
    assert by["4601"]["status"] == "secondary"  # else the total rate would give 1151's numerator away
