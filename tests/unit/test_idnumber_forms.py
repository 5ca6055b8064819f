"""ID numbers in every form people write them, found by the one recogniser (`tre.idnumbers`).

Every number here is synthetic (month + 80). The database's first pass (`id_shape_sql`) must
let through everything the recogniser finds, and ordinary numbers must not be false alarms.
"""

from __future__ import annotations

import decimal
import functools

import duckdb
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from tre import idnumbers
from tre.idnumbers import find_in_text, holds_id_number, holds_id_numbers, is_written_id_number, redact_text
from tre.linkage.rules import id_shape_sql
from tre.output_check.leaks import value_leaks
from tre.registers import Column

BIRTHS = np.array(["1980-01-05", "1999-12-31", "2004-06-09", "1937-03-01"], dtype="datetime64[D]")
NUMBERS = [str(n) for n in idnumbers.generate_synthetic(np.random.default_rng(3), BIRTHS, np.array(["M", "K"] * 2))]
LOST_ZERO = NUMBERS[0]  # born on the 5th: its first digit is 0
SEPARATORS = [" ", "-", ".", "\u00a0", "\u2009", "\u202f", "\u2013", "\u2212", " - ", "\u3000"]
INVISIBLE = ["\u200b", "\u00ad", "\u2060", "\ufeff"]
SCRIPTS = ["0123456789", "０１２３４５６７８９", "٠١٢٣٤٥٦٧٨٩", "०१२३४५६७८९", "𝟎𝟏𝟐𝟑𝟒𝟓𝟔𝟕𝟖𝟗"]


def digits_in(number: str, script: str) -> str:
    return number.translate(str.maketrans("0123456789", script))


@functools.cache
def database() -> duckdb.DuckDBPyConnection:
    return duckdb.connect()


def shape_passes(values: list[str]) -> list[bool]:
    """What the database's first pass over a free-text column lets through."""
    condition = id_shape_sql(Column("note", "VARCHAR", "admin"), "v", None)
    query = f"SELECT coalesce({condition}, false) FROM unnest($1::VARCHAR[]) t(v)"
    return [bool(hit) for (hit,) in database().execute(query, [values]).fetchall()]


WRITTEN = [
    NUMBERS[1],
    f"Pasient {NUMBERS[1][:6]} {NUMBERS[1][6:]}",
    f"{NUMBERS[1][:6]}-{NUMBERS[1][6:]}",
    f"{NUMBERS[1][:2]}.{NUMBERS[1][2:4]}.{NUMBERS[1][4:6]} {NUMBERS[1][6:]}",
    f"fnr: {NUMBERS[2][:6]}\u00a0{NUMBERS[2][6:]}.",
    f"{NUMBERS[2][:6]} - {NUMBERS[2][6:]}",
    digits_in(NUMBERS[3], SCRIPTS[1]),
    f"ref {digits_in(NUMBERS[3], SCRIPTS[2])}",
    NUMBERS[3][:4] + "\u200b\u200b\u200b\u200b\u200b" + NUMBERS[3][4:],
    LOST_ZERO[1:],  # a spreadsheet dropped the leading zero
    f"{float(LOST_ZERO):.9e}",
    f"{float(NUMBERS[1]):.10E}",
    f"{NUMBERS[1]}.0",
    f"tlf 22334455, fnr {NUMBERS[2]}",
]

ORDINARY = [
    "22 33 44 55",
    "+47 22 33 44 55",
    "tlf 22334455 og 99887766",
    "KR0000000001",
    "HS-3240-001",
    "1 234 567,50 kr",
    "2023-03-01 10:15:00",
    "12345678901234",  # 14 digits glued: not split
    "0000000000",
    "1.5e3",
    NUMBERS[1][:10] + str((int(NUMBERS[1][10]) + 1) % 10),  # a wrong check digit
    "32" + NUMBERS[1][2:],  # day 32
]


@pytest.mark.parametrize("text", WRITTEN)
def test_every_written_form_is_found_and_redacted(text):
    assert holds_id_number(text)
    assert "(ID number)" in redact_text(text)
    assert not holds_id_number(redact_text(text))


@pytest.mark.parametrize("text", ORDINARY)
def test_ordinary_numbers_are_no_false_alarms(text):
    assert not holds_id_number(text)
    assert redact_text(text) == text


def test_numbers_stored_as_numbers():
    for value in (int(NUMBERS[1]), float(NUMBERS[1]), decimal.Decimal(NUMBERS[1]), np.int64(NUMBERS[1])):
        assert holds_id_number(value), repr(value)
    for value in (int(LOST_ZERO), np.float64(LOST_ZERO), decimal.Decimal(LOST_ZERO + ".000")):
        assert holds_id_number(value), repr(value)  # the leading zero restored
    for value in (float(NUMBERS[1]) + 0.5, 22334455, True, None, float("nan"), decimal.Decimal("NaN")):
        assert not holds_id_number(value), repr(value)
    assert list(holds_id_numbers([NUMBERS[1], "x", int(LOST_ZERO), None])) == [True, False, True, False]


def test_the_database_pass_lets_through_every_written_form():
    assert all(shape_passes(WRITTEN))
    # and spares the common ordinary values (the recogniser would say no to them anyway)
    assert shape_passes(["KR0000000001", "HS-3240-001", "22 33 44 55", "1 234 567,50"]) == [False] * 4


@settings(max_examples=200, deadline=None)
@given(
    number=st.sampled_from(NUMBERS),
    cuts=st.lists(st.integers(1, 10), max_size=4, unique=True),
    separator=st.sampled_from(SEPARATORS),
    invisible=st.sampled_from([""] + INVISIBLE),
    script=st.sampled_from(SCRIPTS),
    before=st.sampled_from(["", "Pasient ", "x", "ID:", "nr. "]),
    after=st.sampled_from(["", " ok", "x", ".", ", tlf 22334455"]),
)
def test_any_mix_of_separators_scripts_and_context(number, cuts, separator, invisible, script, before, after):
    written = digits_in(number, script)
    for cut in sorted(cuts, reverse=True):
        written = written[:cut] + separator + invisible + written[cut:]
    text = before + written + after
    assert holds_id_number(text), text
    [(start, end)] = find_in_text(text)
    assert text[start:end].startswith(digits_in(number, script)[0])
    assert shape_passes([text]) == [True], text


def test_a_whole_value_is_one_number_or_not():
    assert is_written_id_number(f" {NUMBERS[1][:6]} {NUMBERS[1][6:]} ")
    assert not is_written_id_number(f"x {NUMBERS[1]}")


def test_the_output_checker_uses_the_same_recogniser():
    assert value_leaks(np.int64(LOST_ZERO), frozenset()) == (False, True)
    assert value_leaks(f"{NUMBERS[2][:6]}\u00a0{NUMBERS[2][6:]}", frozenset()) == (False, True)
    assert value_leaks("22 33 44 55", frozenset()) == (False, False)


def test_false_alarm_rates():
    """Phone numbers and amounts are never taken for ID numbers; of arbitrary 11-digit numbers
    about one in 76 passes every check (that is what two check digits can tell), and the
    measured rate stays there. Digits inside a hexadecimal code (a hash, a hex key) or ten
    digits glued to letters are the code's."""
    rng = np.random.default_rng(1)
    phones = [
        f"+47 {n // 10**6:02d} {n // 10**4 % 100:02d} {n // 100 % 100:02d} {n % 100:02d}"
        for n in rng.integers(2 * 10**7, 10**8, 20_000)
    ]
    amounts = [f"{n:,}".replace(",", " ") + ",50 kr" for n in rng.integers(0, 10**9, 20_000)]
    assert not holds_id_numbers(phones).any() and not holds_id_numbers(amounts).any()
    arbitrary = holds_id_numbers([f"{n:011d}" for n in rng.integers(0, 10**11, 50_000)]).mean()
    assert 0.008 < arbitrary < 0.02
    hexes = ["".join(rng.choice(list("0123456789abcdef"), 16)) for _ in range(20_000)]
    assert not holds_id_numbers(hexes).any()
    assert holds_id_number(f"ID{NUMBERS[1]}") and holds_id_number(f"fnr{NUMBERS[1]}.")
    assert not holds_id_number(f"ab{LOST_ZERO[1:]}cd")  # ten digits inside a code
