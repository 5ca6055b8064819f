"""The authority's CSV of the record of releases: a recipient or legal basis that starts like a
spreadsheet formula is written as text, never as a formula."""

from tre.linkage.releases import INSPECTION_COLUMNS, inspection_csv


def test_formula_cells_are_neutralised_and_numbers_stay():
    text = inspection_csv(
        [{"record": 7, "recipient": '=HYPERLINK("http://x")', "legal_basis": "@SUM(A1)", "persons": 12}]
    )
    header, row = text.splitlines()
    assert header.split(",") == list(INSPECTION_COLUMNS)
    assert row.startswith("7,") and "'=HYPERLINK" in row and "'@SUM(A1)" in row and ",12," in row
