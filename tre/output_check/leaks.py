"""Leaks: project pseudonyms, national ID numbers, and tables that list persons.

Nothing here ever returns or prints the leaked value itself: callers get counts and
positions, so a report can say *where* a leak is without repeating it.
"""

from __future__ import annotations

from collections.abc import Iterable

import pandas as pd

from tre import idnumbers


def is_identity_number(text: str) -> bool:
    """True when `text` is one FNR, D-number, H-number or synthetic test number with valid check
    digits, in any written form (`tre.idnumbers`, the one recogniser of ID numbers)."""
    return idnumbers.is_written_id_number(text)


def count_identity_numbers(text: str) -> int:
    """How many ID numbers `text` holds, in any written form."""
    return idnumbers.count_in_text(text)


def count_pseudonyms(text: str, pseudonyms: frozenset[str]) -> int:
    """How many of the project's pseudonyms appear anywhere in `text` (as substrings)."""
    if not pseudonyms or not text:
        return 0
    lengths = {len(p) for p in pseudonyms}
    found = 0
    for length in lengths:
        for start in range(0, len(text) - length + 1):
            if text[start : start + length] in pseudonyms:
                found += 1
    return found


def redact_text(text: str, pseudonyms: frozenset[str]) -> str:
    """`text` with every pseudonym and every valid ID number replaced by a placeholder."""
    text = idnumbers.redact_text(text, "(redacted ID number)")
    if not pseudonyms:
        return text
    out, i = [], 0
    lengths = sorted({len(p) for p in pseudonyms}, reverse=True)
    while i < len(text):
        hit = next((n for n in lengths if text[i : i + n] in pseudonyms), None)
        if hit:
            out.append("(redacted pseudonym)")
            i += hit
        else:
            out.append(text[i])
            i += 1
    return "".join(out)


def value_leaks(value, pseudonyms: frozenset[str]) -> tuple[bool, bool]:
    """(is a pseudonym or holds one, is or holds an ID number) for one table value or label."""
    if value is None:
        return False, False
    if isinstance(value, float):
        if value != value or not value.is_integer():
            return False, False
        value = int(value)
    text = str(value)
    return (
        text in pseudonyms or count_pseudonyms(text, pseudonyms) > 0,
        idnumbers.holds_id_number(value),  # an integer that lost its leading zero too
    )


def scan_values(values: Iterable, pseudonyms: frozenset[str]) -> tuple[int, int]:
    """(values holding a pseudonym, values holding an ID number) among `values`."""
    pseud = ident = 0
    for v in values:
        p, i = value_leaks(v, pseudonyms)
        pseud += p
        ident += i
    return pseud, ident


def scan_frame(frame: pd.DataFrame, pseudonyms: frozenset[str]) -> dict[str, tuple[int, int]]:
    """Per column (and "(index)", "(header)"): how many values hold a pseudonym or ID number."""
    out: dict[str, tuple[int, int]] = {}
    header = [str(c) for c in frame.columns.to_flat_index()]
    out["(header)"] = scan_values(header, pseudonyms)
    out["(index)"] = scan_values((str(i) for i in frame.index.to_flat_index()), pseudonyms)
    for column in frame.columns:
        out[str(column)] = scan_values(frame[column].tolist(), pseudonyms)
    return out


def is_person_level(frame: pd.DataFrame, pseudonyms: frozenset[str], max_rows: int) -> bool:
    """True when `frame` looks like one row per person rather than one row per group.

    Either a column (or the index) holds pseudonyms in most of its rows, or the table has
    more than `max_rows` rows and every row is a unique combination of its values.
    """
    if frame.empty:
        return False
    columns = [frame.index.to_series().astype(str)] + [frame[c] for c in frame.columns]
    if pseudonyms:
        for column in columns:
            hits = sum(value_leaks(v, pseudonyms)[0] for v in column.head(1000).tolist())
            if hits >= max(1, min(len(column), 1000) // 2):
                return True
    if len(frame) > max_rows:
        as_text = frame.astype(str)
        return not as_text.duplicated().any()
    return False
