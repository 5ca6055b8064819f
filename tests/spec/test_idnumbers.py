"""ID-number rules: a table of numbers in, what `tre.idnumbers` must say out.

Every number here is synthetic (month + 80) or not a person's number at all (FH, broken).
"""

import datetime as dt

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from tables import parse_table

from tre.idnumbers import check_digits, generate_synthetic, is_valid, parse, validate_array, validate_ascii

SPEC = """
number       | valid | kind | synthetic | rule    | birth date | sex | reason
25907144022  | yes   | fnr  | yes       | current | 1971-10-25 | K   |
25907144103  | yes   | fnr  | yes       | current | 1971-10-25 | M   |
15828512339  | yes   | fnr  | yes       | current | 1985-02-15 | M   |
15828512681  | yes   | fnr  | yes       | current | 1985-02-15 | K   |
29828001262  | yes   | fnr  | yes       | current | 1980-02-29 | K   |
29828101283  | no    |      |           |         |            |     | birth date
01817760186  | yes   | fnr  | yes       | current | 1877-01-01 | M   |
01810580263  | yes   | fnr  | yes       | current | 2005-01-01 | K   |
01817780020  | no    |      |           |         |            |     | birth date
01819995059  | yes   | fnr  | yes       | current | 1999-01-01 | K   |
45907144074  | yes   | d    | yes       | current | 1971-10-05 | K   |
71907144040  | yes   | d    | yes       | current | 1971-10-31 | K   |
91889123473  | yes   | fh   | no        | current |            |     |
25907144030  | yes   | fnr  | yes       | 2032    |            |     |
25907144049  | yes   | fnr  | yes       | 2032    |            |     |
25907144057  | yes   | fnr  | yes       | 2032    |            |     |
25907144023  | no    |      |           |         |            |     | check digits
25907144012  | no    |      |           |         |            |     | check digits
2590714402   | no    |      |           |         |            |     | not 11 digits
259071440221 | no    |      |           |         |            |     | not 11 digits
2590714402x  | no    |      |           |         |            |     | not 11 digits
"""


def spec_rows():
    return parse_table(SPEC)


@pytest.mark.parametrize("row", spec_rows(), ids=lambda r: f"case-{spec_rows().index(r)}")
def test_spec_table(row):
    info = parse(row["number"])
    assert (info is not None) == (row["valid"] == "yes")
    result = validate_array([row["number"]])
    assert result["reason"][0] == row["reason"]
    if info is None:
        return
    assert info.kind.value == row["kind"]
    assert info.synthetic == (row["synthetic"] == "yes")
    assert info.rule.value == row["rule"]
    assert (info.birth_date.isoformat() if info.birth_date else "") == row["birth date"]
    assert (info.sex or "") == row["sex"]


def test_2032_rule_can_be_switched_off():
    assert is_valid("25907144030")
    assert not is_valid("25907144030", allow_2032=False)
    assert is_valid("25907144022", allow_2032=False)


def _h_number() -> str:
    # An H-number (month + 40) is built here rather than written out: it is not synthetic.
    nine = "01" + "45" + "80" + "123"
    return nine + check_digits(nine)


def test_h_number_is_classified_with_its_date():
    info = parse(_h_number())
    assert info.kind.value == "h" and not info.synthetic
    assert info.birth_date == dt.date(1980, 5, 1)


def test_rubbish_inputs_are_invalid_not_errors():
    result = validate_array([None, float("nan"), "", " " * 11, "٠١٢٣٤٥٦٧٨٩٠"])
    assert not result["valid"].any()
    assert set(result["reason"]) == {"not 11 digits"}


# --- an independent scalar reference, checked against the vectorised code -----------------

W1 = [3, 7, 6, 1, 8, 9, 4, 5, 2]
W2 = [5, 4, 3, 2, 7, 6, 5, 4, 3, 2]


def reference_check_rule(number: str) -> str:
    d = [int(c) for c in number]
    r1 = (sum(a * b for a, b in zip(d[:9], W1, strict=True)) + d[9]) % 11
    r2 = (sum(a * b for a, b in zip(d[:10], W2, strict=True)) + d[10]) % 11
    if r2 != 0:
        return ""
    return "current" if r1 == 0 else ("2032" if r1 <= 3 else "")


@settings(max_examples=300, deadline=None)
@given(st.text(alphabet="0123456789", min_size=11, max_size=11))
def test_check_digit_rule_matches_a_scalar_reference(number):
    result = validate_array([number])
    if result["valid"][0]:
        assert result["rule"][0] == reference_check_rule(number)
    else:
        assert reference_check_rule(number) == "" or result["reason"][0] == "birth date"


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1), st.booleans())
def test_generated_synthetic_numbers_are_valid_unique_and_round_trip(seed, d_number):
    rng = np.random.default_rng(seed)
    births = np.datetime64("1854-01-01") + rng.integers(0, 185 * 365, 2000).astype("timedelta64[D]")
    sexes = np.where(rng.random(2000) < 0.5, "M", "K")
    numbers = generate_synthetic(rng, births, sexes, d_number=d_number)
    result = validate_array(numbers, allow_2032=False)
    assert result["valid"].all() and result["synthetic"].all()
    assert len(set(numbers)) == len(numbers)
    assert (result["birth_date"] == births).all()
    assert (result["sex"] == sexes).all()
    assert set(result["kind"]) == {"d" if d_number else "fnr"}


def test_validate_ascii_says_what_validate_array_says():
    numbers = [r["number"] for r in spec_rows() if len(r["number"]) == 11]
    by_strings = validate_array(numbers)
    by_buffer = validate_ascii("".join(numbers).encode("ascii"))
    for key, values in by_strings.items():
        assert np.array_equal(values.astype(str), by_buffer[key].astype(str)), key


def test_validate_ascii_in_chunks_says_the_same(monkeypatch):
    numbers = [r["number"] for r in spec_rows() if len(r["number"]) == 11]
    whole = validate_ascii("".join(numbers).encode("ascii"))
    monkeypatch.setattr("tre.idnumbers.CLASSIFY_CHUNK", 3)  # chunks of 3 numbers and a shorter last one
    chunked = validate_ascii("".join(numbers).encode("ascii"))
    assert len(numbers) % 3 and len(chunked["valid"]) == len(numbers)
    for key, values in whole.items():
        assert np.array_equal(values.astype(str), chunked[key].astype(str)), key
