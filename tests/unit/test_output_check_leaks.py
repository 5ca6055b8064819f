"""Leak detection: national ID numbers, project pseudonyms, and tables that list persons."""

import pandas as pd
from output_check_factories import pseudonyms, synthetic_fnr

from tre.output_check.leaks import (
    count_identity_numbers,
    count_pseudonyms,
    is_identity_number,
    is_person_level,
    value_leaks,
)


def test_valid_synthetic_numbers_are_recognised():
    for day, month, year in [(1, 1, 1950), (31, 12, 1999), (15, 6, 2004)]:
        assert is_identity_number(synthetic_fnr(day, month, year))
        assert is_identity_number(synthetic_fnr(day, month, year, d_number=True))


def test_a_wrong_check_digit_or_an_impossible_date_is_not_an_id_number():
    number = synthetic_fnr(12, 3, 1980)
    for position in (9, 10):
        changed = number[:position] + str((int(number[position]) + 1) % 10) + number[position + 1 :]
        assert not is_identity_number(changed)
    assert not is_identity_number("32" + number[2:])  # day 32
    assert not is_identity_number(number[:10])
    assert not is_identity_number(number + "0")
    assert not is_identity_number("abcdefghijk")


def test_id_numbers_are_found_in_text_written_together_or_spaced():
    number = synthetic_fnr(3, 4, 1977)
    text = f"patient {number} was seen; also {number[:6]} {number[6:]}; 123{number} is longer"
    assert count_identity_numbers(text) == 2
    wrong = number[:10] + str((int(number[10]) + 1) % 10)
    assert count_identity_numbers(f"a wrong check digit: {wrong}") == 0


def test_an_id_number_stored_as_an_integer_still_counts():
    number = synthetic_fnr(5, 1, 1990)  # starts with 0: an integer loses it
    assert number.startswith("0")
    assert value_leaks(int(number), frozenset()) == (False, True)


def test_pseudonyms_are_found_by_membership_anywhere_in_text():
    known = frozenset(pseudonyms(50))
    one = sorted(known)[7]
    assert count_pseudonyms(f"look: {one}, and again{one}.", known) == 2
    assert count_pseudonyms("nothing of the kind here at all", known) == 0
    assert value_leaks(one, known) == (True, False)


def test_person_level_tables_are_recognised():
    known = pseudonyms(300)
    listing = pd.DataFrame({"pseudonym": known[:40], "age": range(40)})
    assert is_person_level(listing, frozenset(known), max_rows=100)
    unique_rows = pd.DataFrame({"age": range(150), "kommune": ["0301"] * 150})
    assert is_person_level(unique_rows, frozenset(), max_rows=100)
    aggregate = pd.DataFrame({"kommune": ["0301", "1103"], "n": [40, 12]})
    assert not is_person_level(aggregate, frozenset(known), max_rows=100)
