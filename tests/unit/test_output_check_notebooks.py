"""Notebooks and files: every output a reader would see is checked."""

import pandas as pd
from output_check_factories import make_notebook, pseudonyms, synthetic_fnr

from tre.output_check import load_parameters
from tre.output_check.notebooks import build_file_report, build_notebook_report, parse_html_tables, render_notebook_html
from tre.output_check.reports import render_html

P = load_parameters()
KNOWN = pseudonyms(40)


def _statuses(report):
    return [(o["cell"], o["type"], o["status"]) for o in report.as_dict()["outputs"]]


def test_html_tables_are_read_back_as_pandas_shows_them():
    frame = pd.DataFrame({"F": [12, 30], "M": [7, 41]}, index=pd.Index(["0301", "1103"], name="kommune"))
    (parsed,) = parse_html_tables(frame.to_html())
    assert list(parsed.columns) == ["F", "M"] and parsed.to_numpy().tolist() == [["12", "7"], ["30", "41"]]
    wide = pd.crosstab(
        pd.Series(["a", "a", "b"], name="x"),
        [pd.Series(["u", "v", "u"], name="y"), pd.Series(["p", "p", "q"], name="z")],
    )
    (parsed,) = parse_html_tables(wide.to_html())
    assert parsed.shape == wide.shape


def test_a_clean_notebook_passes(tmp_path):
    frame = pd.DataFrame({"n": [120, 45]}, index=["F", "M"])
    path = make_notebook(
        tmp_path / "ok.ipynb", [("print('hello')", [{"stream": "hello\n"}]), ("t", [{"html": frame.to_html()}])]
    )
    report = build_notebook_report(path, P, frozenset(KNOWN))
    assert report.status == "pass", report.summary()


def test_leaks_in_text_tables_errors_and_markdown_fail(tmp_path):
    person = KNOWN[3]
    number = synthetic_fnr(9, 9, 1960)
    listing = pd.DataFrame({"id": KNOWN[:10], "age": range(10)}).to_html()
    path = make_notebook(
        tmp_path / "leaky.ipynb",
        [
            ("print(p)", [{"stream": f"first person: {person}\n"}]),
            ("df", [{"html": listing}]),
            ("raise", [{"error": f"KeyError: {number}"}]),
            ("", [{"markdown": f"see {number}"}]),
            ("1", [{"text": "42"}]),
        ],
    )
    report = build_notebook_report(path, P, frozenset(KNOWN))
    assert report.status == "fail"
    assert _statuses(report) == [
        (1, "text", "fail"),
        (2, "table", "fail"),
        (3, "error", "fail"),
        (4, "markdown", "fail"),
        (5, "text", "pass"),
    ]
    checks = {f.check for f in report.findings}
    assert {"PseudonymCheck", "IdentityNumberCheck", "PersonLevelCheck"} <= checks
    text = str(report.as_dict()) + render_html(report, "leaky")
    assert person not in text and number not in text  # the report never repeats a leaked value


def test_small_counts_in_a_displayed_table_fail_and_other_statistics_need_review(tmp_path):
    counts = pd.DataFrame({"n": [120, 3]}, index=["F", "M"]).to_html()
    means = pd.DataFrame({"mean cost": [1234.5, 987.25]}, index=["F", "M"]).to_html()
    path = make_notebook(tmp_path / "t.ipynb", [("a", [{"html": counts}]), ("b", [{"html": means}])])
    assert _statuses(build_notebook_report(path, P, frozenset())) == [(1, "table", "fail"), (2, "table", "review")]


def test_an_image_without_data_needs_a_person_and_with_its_table_is_checked(tmp_path):
    table = pd.DataFrame({"count": [40, 52]}, index=["[0, 10)", "[10, 20)"]).to_html()
    path = make_notebook(
        tmp_path / "fig.ipynb", [("plt.show()", [{"png": True}]), ("safe.hist", [{"png": True, "html": table}])]
    )
    report = build_notebook_report(path, P, frozenset())
    assert _statuses(report) == [(1, "image", "review"), (2, "image", "pass")]
    assert report.status == "review"


def test_the_rendered_notebook_has_no_scripts(tmp_path):
    path = make_notebook(tmp_path / "r.ipynb", [("print(1)", [{"stream": "1\n"}])])
    rendered = render_notebook_html(path)
    assert "print" in rendered and "<script" not in rendered.lower()


def test_single_files(tmp_path):
    (tmp_path / "t.csv").write_text("kommune,n\n0301,40\n1151,2\n")
    (tmp_path / "note.txt").write_text(f"contact {KNOWN[0]}\n")
    (tmp_path / "fig.png").write_bytes(b"\x89PNG\r\n\x1a\n")
    assert build_file_report(tmp_path / "t.csv", P, frozenset()).status == "fail"
    assert build_file_report(tmp_path / "note.txt", P, frozenset(KNOWN)).status == "fail"
    assert build_file_report(tmp_path / "fig.png", P, frozenset()).status == "review"
