"""The Parquet preview researchers get in JupyterLab (tre.hub_config.lab): the first rows with
readable values, and nothing outside the server's root or that is not a Parquet file."""

from __future__ import annotations

import datetime as dt
import os

import pandas as pd
import pytest
from tornado.web import HTTPError

from tre.hub_config.lab import MAX_COLUMNS, closed_page, parquet_path, parquet_preview


@pytest.fixture
def root(tmp_path):
    (tmp_path / "project" / "data").mkdir(parents=True)
    frame = pd.DataFrame(
        {
            "pseudonym": [f"P{i:04d}" for i in range(300)],
            "birth_date": pd.to_datetime(["1960-03-01"] * 300),
            "score": [float("nan")] + [i / 2 for i in range(299)],
            "note": ["x" * 500] * 300,
        }
    )
    frame.to_parquet(tmp_path / "project" / "data" / "persons.parquet")
    return tmp_path / "project"


def test_the_first_rows_with_dates_as_dates_and_no_nan(root):
    preview = parquet_preview(root / "data" / "persons.parquet", 200)
    assert preview["total_rows"] == 300 and len(preview["rows"]) == 200
    assert [(c["name"], c["type"]) for c in preview["columns"]] == [
        ("pseudonym", "text"),
        ("birth_date", "date"),
        ("score", "double"),
        ("note", "text"),
    ]
    first, second = preview["rows"][:2]
    assert first[1] == dt.date(1960, 3, 1).isoformat() and first[2] is None and second[2] == 0
    assert len(first[3]) == 200 and first[3].endswith("…")  # long text cut for the page


def test_wide_files_show_their_first_columns(tmp_path):
    pd.DataFrame({f"c{i}": [i] for i in range(MAX_COLUMNS + 5)}).to_parquet(tmp_path / "wide.parquet")
    preview = parquet_preview(tmp_path / "wide.parquet", 10)
    assert len(preview["columns"]) == MAX_COLUMNS and preview["total_columns"] == MAX_COLUMNS + 5


@pytest.mark.parametrize(
    "relative, status",
    [
        ("../secret.parquet", 400),
        ("data/../../secret.parquet", 400),
        ("data/persons.csv", 400),
        ("", 400),
        ("data/none.parquet", 404),
        ("data/outside.parquet", 404),  # a link that leads out of the root
        ("data/folder.parquet", 404),
    ],
)
def test_nothing_outside_the_root_and_nothing_but_parquet(root, relative, status):
    (root.parent / "secret.parquet").write_bytes(b"PAR1")
    os.symlink(root.parent / "secret.parquet", root / "data" / "outside.parquet")
    (root / "data" / "folder.parquet").mkdir()
    with pytest.raises(HTTPError) as refused:
        parquet_path(root, relative)
    assert refused.value.status_code == status


def test_inside_the_root_it_is_found(root):
    assert parquet_path(root, "/data/persons.parquet") == (root / "data" / "persons.parquet").resolve()


def test_the_closed_page_escapes_what_was_asked_for():
    page = closed_page("download", project="alpha", back="/user/rita/alpha/lab", path="work/<script>x</script>.csv")
    assert "<script>" not in page and "&lt;script&gt;" in page and "Downloads are closed in the TRE" in page
