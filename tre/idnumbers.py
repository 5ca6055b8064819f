"""Norwegian national ID numbers: validation, classification, birth date and sex, synthetic ones.

An ID number is 11 digits DDMMYY III K1 K2: birth date, individual number, two mod-11 check
digits. Kinds, by how the date part is shifted:

- FNR (fødselsnummer): DD 01-31, MM 01-12.
- D-number (foreigners without an FNR): DD + 40.
- H-number (health service help number): MM + 40.
- FH-number (health service common help number): first digit 8 or 9, no date.
- Synthetic (the national test-data service's convention): MM + 80, so no synthetic number can
  ever be a real person's. Synthetic FNRs and D-numbers exist.

Check digits. Current rule: both weighted sums are 0 mod 11. The 2032 rule (numbers issued
from 1 January 2032): the first sum, with K1, may leave a remainder of 0, 1, 2 or 3, so K1 can
take four values; K2 is unchanged. A number valid only under the 2032 rule carries neither
century nor sex: its birth date and sex must come from the population register.

Century from the individual number (current rule): 000-499 → 1900s; 500-749 with YY ≥ 54 →
1854-1899; 500-999 with YY ≤ 39 → 2000-2039; 900-999 with YY ≥ 40 → 1940-1999.
The individual number's last digit is odd for men and even for women (current rule only).

Everything here works on numpy arrays of strings as well as on one string, so that ingest
validates millions of distinct numbers without a Python loop per number.

This module is the one recogniser of ID numbers in the code base: ingest (the identity column
and the `id_in_field` rule), extracts, the rejects files, messages and audit details, and the
output checker all ask it. It has no I/O and imports nothing of the central zone, so that it
runs in a project's kernel as well. `find_in_text` and `holds_id_number` recognise a number in
every form people write it:

- with separators between any digits: spaces (also the no-break, thin and other Unicode
  spaces), dashes (hyphen, en dash, minus ...) and dots, up to three in a row, and invisible
  format characters (zero-width space, soft hyphen ...) anywhere;
- in fullwidth or any other Unicode decimal digits, and digits that NFKC folds to 0-9
  (superscripts, mathematical digits);
- stored as a number: an integer, a float or a decimal holding it, or text in scientific
  notation (`1.0180123456E10`); and 10 digits whose leading zero was lost on the way (an ID
  number of someone born on day 1-9 of a month, read as a number by a spreadsheet).

A candidate is a run of digit groups (digits joined by separators) making 11 digits (not
inside a hexadecimal code of 16 characters or more: a hash, a hex key), or 10 not glued to a
letter, with the lost zero put back; it counts only when both mod-11 check digits hold and its first
digits can be a day and a month (D-, H- and synthetic numbers, month + 80, included), so that
phone numbers, amounts and account numbers are not false alarms. Digits glued to a longer run of
digits (a 14-digit code) are not split: nobody writes an ID number that way by accident.
"""

from __future__ import annotations

import datetime as dt
import math
import re
import unicodedata
from collections.abc import Iterable
from dataclasses import dataclass
from decimal import Decimal, InvalidOperation
from enum import StrEnum

import numpy as np

W1 = np.array([3, 7, 6, 1, 8, 9, 4, 5, 2, 1], dtype=np.int64)  # with K1 at weight 1
W2 = np.array([5, 4, 3, 2, 7, 6, 5, 4, 3, 2, 1], dtype=np.int64)  # with K2 at weight 1
SYNTHETIC_MONTH_OFFSET = 80


class IdKind(StrEnum):
    FNR = "fnr"
    D_NUMBER = "d"
    H_NUMBER = "h"
    FH_NUMBER = "fh"


class CheckRule(StrEnum):
    CURRENT = "current"
    RULE_2032 = "2032"


@dataclass(frozen=True)
class IdInfo:
    """What one valid ID number tells. `birth_date` and `sex` are None where it does not say."""

    kind: IdKind
    synthetic: bool
    rule: CheckRule
    birth_date: dt.date | None
    sex: str | None  # "M" or "K" (kvinne)


# --- vectorised core ----------------------------------------------------------------------


def _digits(numbers) -> tuple[np.ndarray, np.ndarray]:
    """(n × 11 digit matrix, mask of well-formed entries: exactly 11 ASCII digits)."""
    # U12 keeps one character more than an ID number, so that longer strings stay invalid;
    # None and NaN become "None"/"nan" and fail the digit test.
    text = np.asarray(numbers).astype("U12").ravel()
    lengths = np.char.str_len(text)
    codes = np.ascontiguousarray(text).view(np.uint32).reshape(-1, 12)[:, :11]
    digits = codes.astype(np.int64) - ord("0")
    well_formed = (lengths == 11) & np.all((digits >= 0) & (digits <= 9), axis=1)
    return np.where(well_formed[:, None], digits, 0), well_formed


def _remainders(d: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    # Weights of the digits' own type: a mixed-type product takes numpy's slow path (5× slower).
    return (d[:, :10] @ W1.astype(d.dtype)) % 11, (d @ W2.astype(d.dtype)) % 11


def _date_parts(d: np.ndarray):
    day = d[:, 0] * 10 + d[:, 1]
    month = d[:, 2] * 10 + d[:, 3]
    yy = d[:, 4] * 10 + d[:, 5]
    individual = d[:, 6] * 100 + d[:, 7] * 10 + d[:, 8]
    return day, month, yy, individual


def _kind_codes(d: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """(kind code 0=FNR 1=D 2=H 3=FH -1=none, synthetic?, real day, real month)."""
    day, month, _, _ = _date_parts(d)
    synthetic = month > SYNTHETIC_MONTH_OFFSET
    m = np.where(synthetic, month - SYNTHETIC_MONTH_OFFSET, month)
    is_h = (m > 40) & (m <= 52) & ~synthetic
    real_month = np.where(is_h, m - 40, m)
    is_fh = d[:, 0] >= 8
    is_d = (day > 40) & (day <= 71) & ~is_fh
    real_day = np.where(is_d, day - 40, day)
    plain = (real_day >= 1) & (real_day <= 31) & (real_month >= 1) & (real_month <= 12)
    kind = np.full(len(d), -1, dtype=d.dtype)
    kind = np.where(plain & ~is_d & ~is_h, 0, kind)
    kind = np.where(plain & is_d & ~is_h, 1, kind)
    kind = np.where(plain & is_h & ~is_d, 2, kind)
    kind = np.where(is_fh, 3, kind)
    return kind, synthetic & (kind >= 0) & (kind <= 1), real_day, real_month


def _years(yy: np.ndarray, individual: np.ndarray) -> np.ndarray:
    """Birth year by the current rule's century table; -1 where the table has no century."""
    year = np.full(len(yy), -1, dtype=yy.dtype)
    year = np.where(individual <= 499, 1900 + yy, year)
    year = np.where((individual >= 500) & (individual <= 749) & (yy >= 54), 1800 + yy, year)
    year = np.where((individual >= 500) & (yy <= 39), 2000 + yy, year)
    year = np.where((individual >= 900) & (yy >= 40), 1900 + yy, year)
    return year


_DAYS_IN_MONTH = np.array([31, 28, 31, 30, 31, 30, 31, 31, 30, 31, 30, 31])


def _real_dates(year, month, day) -> np.ndarray:
    """Which (year, month, day) triples are calendar dates."""
    ok = (year > 0) & (month >= 1) & (month <= 12) & (day >= 1)
    leap = (year % 4 == 0) & ((year % 100 != 0) | (year % 400 == 0))
    last = _DAYS_IN_MONTH[np.clip(month, 1, 12) - 1] + ((month == 2) & leap)
    return ok & (day <= last)


def validate_array(numbers, *, allow_2032: bool = True) -> dict[str, np.ndarray]:
    """Validate many ID numbers at once.

    Returns arrays aligned with `numbers`: `valid` (bool), `reason` (why not: "" when valid),
    `kind` (IdKind value or ""), `synthetic` (bool), `rule` (CheckRule value or ""),
    `birth_date` (datetime64[D], NaT where unknown), `sex` ("M", "K" or "").
    """
    return _as_strings(_classify(*_digits(numbers), allow_2032=allow_2032))


def validate_ascii(buffer: bytes, *, allow_2032: bool = True) -> dict[str, np.ndarray]:
    """`validate_array` for n numbers given as one buffer of n × 11 ASCII bytes (no strings made)."""
    return _as_strings(classify_ascii(buffer, allow_2032=allow_2032))


# What the integer codes of `classify_ascii` stand for: index = code.
REASONS = ("", "check digits", "birth date", "not 11 digits")
KINDS = (*(k.value for k in IdKind), "")
SEXES = ("", "M", "K")
RULES = ("", CheckRule.CURRENT.value, CheckRule.RULE_2032.value)
CLASSIFY_CHUNK = 1 << 18  # numbers


def classify_ascii(buffer: bytes, *, allow_2032: bool = True) -> dict[str, np.ndarray]:
    """`validate_ascii` with small integer codes in place of strings: `reason`, `kind`, `sex`
    and `rule` index `REASONS`, `KINDS`, `SEXES` and `RULES`. Millions of numbers in a second:
    no string is made per number."""
    # In chunks: the temporaries of a chunk fit the CPU's cache and are reused by malloc, where
    # those of millions of numbers at once are fresh pages each (twice the time, all faults).
    view = memoryview(buffer)
    step = CLASSIFY_CHUNK * 11
    parts = [_classify_chunk(view[i : i + step], allow_2032) for i in range(0, len(view), step)] or [
        _classify_chunk(view, allow_2032)
    ]
    return {name: np.concatenate([part[name] for part in parts]) for name in parts[0]}


def _classify_chunk(buffer, allow_2032: bool) -> dict[str, np.ndarray]:
    # int16 digits: a fraction of the memory traffic of int64; every sum and year below fits.
    codes = np.frombuffer(buffer, dtype=np.uint8).reshape(-1, 11).astype(np.int16) - ord("0")
    well_formed = np.all((codes >= 0) & (codes <= 9), axis=1)
    if not well_formed.all():
        codes = np.where(well_formed[:, None], codes, 0)
    return _classify(codes, well_formed, allow_2032=allow_2032)


def _as_strings(codes: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    strings = {"reason": REASONS, "kind": KINDS, "sex": SEXES, "rule": RULES}
    return {k: np.array(strings[k])[v] if k in strings else v for k, v in codes.items()}


def _classify(d: np.ndarray, well_formed: np.ndarray, *, allow_2032: bool) -> dict[str, np.ndarray]:
    r1, r2 = _remainders(d)
    current = well_formed & (r1 == 0) & (r2 == 0)
    rule_2032 = well_formed & (r1 <= 3) & (r2 == 0) & ~current & allow_2032
    kind_code, synthetic, real_day, real_month = _kind_codes(d)
    _, _, yy, individual = _date_parts(d)
    year = _years(yy, individual)

    has_date = (kind_code >= 0) & (kind_code <= 2)
    date_ok = _real_dates(year, real_month, real_day)
    # Under the current rule the date must be a real date in the century the number encodes;
    # a 2032-rule number only needs a plausible day and month (its century is not encoded).
    plausible = has_date & (real_day >= 1) & (real_day <= 31) & (real_month >= 1) & (real_month <= 12)
    shape_ok = np.where(current, (has_date & date_ok) | (kind_code == 3), plausible | (kind_code == 3))
    valid = (current | rule_2032) & shape_ok

    reason = np.zeros(len(d), dtype=np.int8)  # indexes REASONS
    reason[~valid & well_formed & ~(current | rule_2032)] = 1
    reason[~valid & (current | rule_2032) & ~shape_ok] = 2
    reason[~well_formed] = 3
    kind = np.where(valid & (kind_code >= 0), kind_code, len(KINDS) - 1).astype(np.int8)

    dated = valid & current & has_date & date_ok
    months_since_epoch = (np.where(dated, year, 1970) - 1970) * 12 + np.where(dated, real_month, 1) - 1
    first_of_month = months_since_epoch.astype("datetime64[M]").astype("datetime64[D]")
    birth_date = np.where(dated, first_of_month + (np.where(dated, real_day, 1) - 1), np.datetime64("NaT", "D"))
    sex = np.where(valid & current & (kind_code != 3), 2 - d[:, 8] % 2, 0).astype(np.int8)
    rule = np.where(valid & current, 1, np.where(valid & rule_2032, 2, 0)).astype(np.int8)
    return {
        "valid": valid,
        "reason": reason,
        "kind": kind,
        "synthetic": valid & synthetic,
        "rule": rule,
        "birth_date": birth_date,
        "sex": sex,
    }


# --- one number ---------------------------------------------------------------------------


def is_valid(number: str, *, allow_2032: bool = True) -> bool:
    return bool(validate_array([number], allow_2032=allow_2032)["valid"][0])


def parse(number: str, *, allow_2032: bool = True) -> IdInfo | None:
    """What a valid number tells, or None when it is not a valid ID number."""
    r = validate_array([number], allow_2032=allow_2032)
    if not r["valid"][0]:
        return None
    birth = r["birth_date"][0]
    return IdInfo(
        kind=IdKind(r["kind"][0]),
        synthetic=bool(r["synthetic"][0]),
        rule=CheckRule(r["rule"][0]),
        birth_date=None if np.isnat(birth) else birth.astype(dt.date),
        sex=str(r["sex"][0]) or None,
    )


def check_digits(first_nine: str) -> str | None:
    """The two current-rule check digits for nine digits, or None when no valid pair exists."""
    d = np.array([int(c) for c in first_nine], dtype=np.int64)
    k1 = (11 - (d @ W1[:9]) % 11) % 11
    if k1 == 10:
        return None
    k2 = (11 - (np.append(d, k1) @ W2[:10]) % 11) % 11
    return None if k2 == 10 else f"{k1}{k2}"


# --- synthetic numbers --------------------------------------------------------------------


def _individual_ranges(years: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """The individual-number range [low, high] the current rule gives each birth year."""
    low = np.select([years < 1900, years < 2000, years < 2040], [500, 0, 500], default=-1)
    high = np.select([years < 1900, years < 2000, years < 2040], [749, 499, 999], default=-1)
    if np.any(low < 0) or np.any(years < 1854):
        raise ValueError("synthetic ID numbers exist for birth years 1854-2039 only")
    return low, high


def generate_synthetic(
    rng: np.random.Generator, birth_dates: np.ndarray, sexes: np.ndarray, *, d_number: bool = False
) -> np.ndarray:
    """Unique synthetic ID numbers (month + 80; D-numbers also day + 40) for the given people.

    `birth_dates` is datetime64[D], `sexes` holds "M"/"K". Vectorised: the only loop redraws
    the few numbers whose check digit would be 10 or that collide.
    """
    birth_dates = np.asarray(birth_dates, dtype="datetime64[D]")
    sexes = np.asarray(sexes)
    n = len(birth_dates)
    years = birth_dates.astype("datetime64[Y]").astype(int) + 1970
    months = birth_dates.astype("datetime64[M]").astype(int) % 12 + 1
    days = (birth_dates - birth_dates.astype("datetime64[M]").astype("datetime64[D]")).astype(int) + 1
    low, high = _individual_ranges(years)
    dd = days + (40 if d_number else 0)
    mm = months + SYNTHETIC_MONTH_OFFSET
    yy = years % 100
    base = np.stack([dd // 10, dd % 10, mm // 10, mm % 10, yy // 10, yy % 10], axis=1)
    male = sexes == "M"

    keys = np.zeros(n, dtype=np.int64)  # the numbers as integers: fast to sort and compare
    taken = np.empty(0, dtype=np.int64)  # sorted
    todo = np.arange(n)
    powers = 10 ** np.arange(10, -1, -1, dtype=np.int64)
    while len(todo):
        parity = male[todo].astype(int)  # odd individual numbers for men, even for women
        first = low[todo] + (parity - low[todo]) % 2
        count = (high[todo] - first) // 2 + 1
        pick = first + 2 * rng.integers(0, count)
        digits = np.concatenate([base[todo], np.stack([pick // 100, pick // 10 % 10, pick % 10], axis=1)], axis=1)
        k1 = (11 - (digits @ W1[:9]) % 11) % 11
        k2 = (11 - (np.concatenate([digits, k1[:, None]], axis=1) @ W2[:10]) % 11) % 11
        key = np.concatenate([digits, k1[:, None], k2[:, None]], axis=1) @ powers
        # Keep numbers with valid check digits that nobody has yet (the first of equal ones
        # drawn in this round); redraw the rest.
        candidates = np.flatnonzero((k1 != 10) & (k2 != 10))
        order = candidates[np.argsort(key[candidates], kind="stable")]
        ordered = key[order]
        repeated = np.r_[False, ordered[1:] == ordered[:-1]]
        pos = np.minimum(np.searchsorted(taken, ordered), max(len(taken) - 1, 0))
        clash = (taken[pos] == ordered) if len(taken) else np.zeros(len(ordered), dtype=bool)
        kept = order[~repeated & ~clash]
        keys[todo[kept]] = key[kept]
        taken = np.sort(np.concatenate([taken, key[kept]]))
        todo = np.delete(todo, kept)
    if n == 0:
        return np.empty(0, dtype="U11")  # np.char.zfill fails on an empty array
    return np.char.zfill(keys.astype(str), 11)


# --- ID numbers inside text and values, in every form people write them --------------------

INVISIBLE = "\u200b"  # what every invisible format character (Unicode category Cf) folds to


class _Fold(dict):
    """A `str.translate` table that folds each character to one character for matching, so that
    positions in the folded text are positions in the original: digit-like characters to 0-9,
    spaces to " ", dashes to "-", dots to ".", invisible format characters to INVISIBLE; every
    other character stays. Filled lazily: a text meets few distinct characters."""

    def __missing__(self, code: int) -> str:
        char = chr(code)
        folded = unicodedata.normalize("NFKC", char)
        category = unicodedata.category(char)
        if len(folded) == 1 and "0" <= folded <= "9":
            out = folded
        elif category == "Nd":
            out = str(unicodedata.decimal(char))
        elif char == "\t" or category == "Zs" or folded == " ":
            out = " "
        elif category == "Pd" or char == "\u2212" or folded == "-":
            out = "-"
        elif folded == "." or char in "\u00b7\u2024\u2027\u2219\u22c5":
            out = "."
        elif category == "Cf":
            out = INVISIBLE
        else:
            out = char
        self[code] = out
        return out


_FOLD = _Fold()
_GAP = rf"(?:{INVISIBLE}*[ .\-]){{1,3}}{INVISIBLE}*|{INVISIBLE}+"
_SEQUENCE = re.compile(rf"[0-9]+(?:(?:{_GAP})[0-9]+)*")
_GROUP = re.compile(r"[0-9]+")
# 1.0180123456E10, 1,018012345e+9: a number written in scientific notation, standing alone (in
# "64c7111e7", a hex code, it is not one).
_SCIENTIFIC = re.compile(r"(?<![0-9A-Za-z.,])([0-9]+)(?:[.,]([0-9]+))?[eE]\+?([0-9]{1,3})(?![0-9A-Za-z])")
_MIN_DIGITS = 10


def fold(text: str) -> str:
    """`text` with every character folded for matching (see `_Fold`); the same length."""
    return text if text.isascii() and "\t" not in text else text.translate(_FOLD)


def _number_digits(value: Decimal) -> str | None:
    """The 11 digits an integral value of 10 or 11 digits stands for, leading zero restored."""
    if not value.is_finite() or value != value.to_integral_value():
        return None
    digits = str(abs(int(value)))
    return digits.zfill(11) if len(digits) in (10, 11) else None


def _text_candidates(text: str) -> list[tuple[int, int, str]]:
    """(start, end, 11 digits) of every run of digit groups in `text` that makes an ID-number
    shape: 11 digits, or 10 (the lost zero restored); not yet validated."""
    folded = fold(text)
    scientific = "e" in folded or "E" in folded
    if not scientific and sum(folded.count(d) for d in "0123456789") < _MIN_DIGITS:
        return []
    found: list[tuple[int, int, str]] = []
    if scientific:
        for m in _SCIENTIFIC.finditer(folded):
            try:
                value = Decimal(f"{m.group(1)}.{m.group(2) or 0}e{m.group(3)}")
            except InvalidOperation:
                continue
            digits = _number_digits(value)
            if digits:
                found.append((m.start(), m.end(), digits))
        if found:  # the mantissa's digits are no run of their own
            for start, end, _ in found:
                folded = folded[:start] + "x" * (end - start) + folded[end:]
    for sequence in _SEQUENCE.finditer(folded):
        groups = [(g.start(), g.end()) for g in _GROUP.finditer(sequence.group(0))]
        base = sequence.start()
        for i, (first, _) in enumerate(groups):
            length = 0
            for j in range(i, len(groups)):
                length += groups[j][1] - groups[j][0]
                if length > 11:
                    break
                start, end = base + first, base + groups[j][1]
                if (length == 11 and not _in_hex_code(folded, start, end)) or (
                    length == 10 and _stands_alone(folded, start, end)
                ):
                    digits = "".join(folded[base + a : base + b] for a, b in groups[i : j + 1])
                    found.append((start, end, digits.zfill(11)))
    return found


def _stands_alone(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is not glued to a letter: a number that lost its leading zero
    was read as a number, so it stands alone; ten digits inside an opaque code such as
    "bdf9482405980aba" are no ID number (one in a hundred such runs would pass its checks)."""
    return not (start > 0 and text[start - 1].isalpha()) and not (end < len(text) and text[end].isalpha())


_HEX = frozenset("0123456789abcdefABCDEF")


def _in_hex_code(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] is part of a hexadecimal code of 16 characters or more (a hash,
    a hex key such as historic IPLOS's pseudonyms): glued to its letters, its digits are the
    code's, not an ID number (one such code in ten thousand holds 11 digits that pass)."""
    left, right = start, end
    while left > 0 and text[left - 1].isascii() and text[left - 1].isalnum():
        left -= 1
    while right < len(text) and text[right].isascii() and text[right].isalnum():
        right += 1
    token = text[left:right]
    return (left < start or right > end) and len(token) >= 16 and _HEX.issuperset(token) and not token.isdigit()


def _value_candidates(value) -> list[tuple[int, int, str]]:
    """Candidates in one value of any type: text, a number, bytes."""
    if value is None or isinstance(value, bool | np.bool_):
        return []
    if isinstance(value, int | np.integer):
        digits = _number_digits(Decimal(int(value)))
        return [(0, 0, digits)] if digits else []
    if isinstance(value, float | np.floating):
        if not math.isfinite(value) or not 1e9 <= abs(value) < 1e11:
            return []
        digits = _number_digits(Decimal(float(value)))
        return [(0, 0, digits)] if digits else []
    if isinstance(value, Decimal):
        digits = _number_digits(value) if value.is_finite() else None
        return [(0, 0, digits)] if digits else []
    if isinstance(value, bytes | bytearray | memoryview):
        value = bytes(value).decode("utf-8", errors="replace")
    return _text_candidates(value if isinstance(value, str) else str(value))


def _valid(candidates: list[str]) -> np.ndarray:
    """Which candidates are ID numbers, for finding them: both check digits hold (the current
    rule or the 2032 rule) and the date part can be a day and a month (synthetic, D- and
    H-numbers included), or it is an FH-number. Looser than `validate_array`, which also wants
    the century the individual number gives: finding errs on the side of a number."""
    if not candidates:
        return np.zeros(0, dtype=bool)
    d, well_formed = _digits(np.array(candidates, dtype="U11"))
    r1, r2 = _remainders(d)
    kind, _, _, _ = _kind_codes(d)
    return well_formed & (r2 == 0) & (r1 <= 3) & (kind >= 0)


def find_in_text(text: str) -> list[tuple[int, int]]:
    """Where `text` holds a valid ID number in any written form: (start, end) spans in `text`,
    sorted, overlapping ones merged."""
    candidates = _text_candidates(text)
    valid = _valid([digits for _, _, digits in candidates])
    spans: list[tuple[int, int]] = []
    for (start, end, _), ok in sorted(zip(candidates, valid, strict=True)):
        if not ok:
            continue
        if spans and start < spans[-1][1]:
            spans[-1] = (spans[-1][0], max(end, spans[-1][1]))
        else:
            spans.append((start, end))
    return spans


def count_in_text(text: str) -> int:
    """How many ID numbers `text` holds, in any written form."""
    return len(find_in_text(text))


def redact_text(text: str, placeholder: str = "(ID number)") -> str:
    """`text` with every ID number, in any written form, replaced by `placeholder`."""
    spans = find_in_text(text)
    for start, end in reversed(spans):
        text = text[:start] + placeholder + text[end:]
    return text


def holds_id_number(value) -> bool:
    """Whether one value (text, an integer, a float, a decimal, bytes) is or holds an ID number."""
    return bool(holds_id_numbers([value])[0])


def holds_id_numbers(values: Iterable) -> np.ndarray:
    """`holds_id_number` for many values at once (one validation for all their candidates)."""
    owners: list[int] = []
    candidates: list[str] = []
    count = 0
    for index, value in enumerate(values):
        count = index + 1
        for _, _, digits in _value_candidates(value):
            owners.append(index)
            candidates.append(digits)
    holds = np.zeros(count, dtype=bool)
    valid = _valid(candidates)
    holds[np.array(owners, dtype=np.int64)[valid]] = True
    return holds


def is_written_id_number(value) -> bool:
    """Whether `value` as a whole is one ID number in some written form (nothing else in it)."""
    if not isinstance(value, str):
        return holds_id_number(value)
    stripped = fold(value).strip(" " + INVISIBLE)
    spans = find_in_text(stripped)
    return spans == [(0, len(stripped))]


# The same shapes for a database's regular expression engine (RE2: no look-around), as a
# cheap first pass over millions of fields; `holds_id_number` decides on what it lets through.
# It matches every ASCII text in which `find_in_text` can find a number: a window of digit
# groups with a possible date (11 digits: day 01-31 or 41-71 and month 01-12, 41-52 or 81-92;
# or a first digit 8 or 9, an FH-number; 10 digits not glued to a letter: day 1-9 with its zero
# lost), or scientific
# notation with the exponent 9 or 10. Text with other than ASCII goes through whole when it
# holds ten digit-like characters at all.
_G = r"[ .\t-]{0,3}"
_D = "[0-9]"
_DAY = rf"(?:0{_G}[1-9]|[12]{_G}{_D}|3{_G}[01]|4{_G}[1-9]|[56]{_G}{_D}|7{_G}[01])"
_MONTH = rf"(?:0{_G}[1-9]|1{_G}[0-2]|4{_G}[1-9]|5{_G}[0-2]|8{_G}[1-9]|9{_G}[0-2])"
_REST = rf"(?:{_G}{_D}){{7}}"
SQL_SHAPE = (
    rf"(?:^|[^0-9])(?:{_DAY}{_G}{_MONTH}{_REST}|[89](?:{_G}{_D}){{10}})(?:[^0-9]|$)"
    rf"|(?:^|[^0-9A-Za-z])[1-9]{_G}{_MONTH}{_REST}(?:[^0-9A-Za-z]|$)"
    rf"|[0-9][eE]\+?0*(?:9|10)(?:[^0-9A-Za-z]|$)"
)
SQL_UNICODE_SHAPE = r"\pN(?:[^\pN]*\pN){9}"
