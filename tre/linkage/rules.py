"""The row rules of ingest: what each field must be, as SQL over the staged text.

A delivery is staged as text (every column VARCHAR), so that one bad value costs one row and
not the file. Each column gets one CASE that names the first rule the value breaks; a row
breaking any rule is a reject (rule, column, line) and is not stored. Values are taken as
delivered: an empty field is missing, surrounding spaces make a code unknown.

Rules that need the whole delivery or the store (ID numbers, duplicates, keys stored by an
earlier delivery) are applied by `tre.linkage.ingest`; they are named here too.
"""

from __future__ import annotations

import duckdb

from tre.idnumbers import SQL_SHAPE, SQL_UNICODE_SHAPE
from tre.linkage.store import literal, quote
from tre.registers import CODE_LISTS, ICD10, ICPC2, Column, Source, municipality_numbers

RULES = {
    "control_character": "a control character (NUL, tab, ...) in the field",
    "too_long": "longer than the field limit",
    "missing": "a required field is empty",
    "bad_type": "not a value of the column's type (whole number, number, ISO date, timestamp, true/false)",
    "time_zone": "a time with a UTC offset or a time zone; times are Norwegian local time, written without one",
    "unknown_municipality": "not one of the 357 municipality numbers of 2024",
    "unknown_code": "not in the column's code list",
    "bad_icpc2": "not an ICPC-2 code (a chapter letter and two digits)",
    "bad_icd10": "not an ICD-10 code (a letter, two digits and up to two more, no dot)",
    "out_of_range": "below the column's minimum or above its maximum (dates: before 1854)",
    "future_date": "a date after the day of ingest",
    "date_order": "a date before the date it must follow (death before birth, discharge before admission ...)",
    "formula": "starts with =, +, - or @ (a spreadsheet formula)",
    "id_in_field": "a valid ID number, in any written form, in a field that is not an ID-number column",
    "id_not_11_digits": "the ID number is not 11 digits",
    "id_check_digits": "the ID number's check digits are wrong",
    "id_birth_date": "the ID number's date part is not a date",
    "duplicate": "the same record key as an earlier line of this delivery",
    "id_history_cycle": "an ID change that closes a cycle (A replaced by B, B by A): no number would be current",
}
# What `idnumbers.validate_array` says, as rule names.
ID_RULES = {"not 11 digits": "id_not_11_digits", "check digits": "id_check_digits", "birth date": "id_birth_date"}
MAX_FIELD = 200
FORMULA_STARTS = ("=", "+", "-", "@")
EARLIEST_DATE = "1854-01-01"  # the oldest birth date an ID number can hold
FUTURE_ALLOWED = {("iplos", "end_date")}  # a service decision may end after the day of ingest
EMBEDDED_NEWLINE = "embedded_newline"  # not a row rule: a hard failure (line numbers would shift)
OUTSIDE_PERIOD = "outside_period"  # not a row rule: a finding (a late report is a real record)
DATE_FORMAT = "%Y-%m-%d"
TIMESTAMP_FORMATS = (
    "%Y-%m-%d %H:%M:%S",
    "%Y-%m-%d %H:%M:%S.%f",
    "%Y-%m-%dT%H:%M:%S",
    "%Y-%m-%dT%H:%M:%S.%f",
    "%Y-%m-%d %H:%M",
    "%Y-%m-%dT%H:%M",
    DATE_FORMAT,
)
# After a time of day: Z, an offset (+14:00, -0530, +01) or a zone's name (UTC, Europe/Oslo).
ZONE_SUFFIX = r"[0-9]\s*(?:[zZ]|[+-][0-9]{1,2}(?::?[0-9]{2})?|[A-Za-z][A-Za-z_]*(?:/[A-Za-z_/+-]+)?)\s*$"


def create_code_tables(con: duckdb.DuckDBPyConnection) -> None:
    """One small table per code list (`__tre_code_<name>`): `NOT IN (SELECT ...)` is a hash
    lookup, where a long literal IN list is evaluated value by value."""
    lists = {"municipality": sorted(municipality_numbers()), **{k: list(v) for k, v in CODE_LISTS.items()}}
    for name, codes in lists.items():
        con.execute(
            f"CREATE OR REPLACE TEMP TABLE {quote('__tre_code_' + name)} AS SELECT unnest($1::VARCHAR[]) AS code",
            [codes],
        )


def typed_name(c: Column) -> str:
    """The staged value of a typed column cast once (see `validation_sql`)."""
    return quote("__typed_" + c.name)


def typed_sql(c: Column, ref: str | None = None) -> str | None:
    """The staged text of a typed column (`ref`, default the column itself) as its type, NULL
    where it is not one; None for text columns. Dates and times are read strictly: an ISO date
    is a date and nothing more, a time carries no offset or zone (a cast would drop them
    silently: 10:15+14:00 would be stored as 10:15)."""
    if c.role == "identity" or c.type == "VARCHAR":
        return None
    v = f"NULLIF({ref or quote(c.name)}, '')"
    if c.type == "DATE":
        return f"CAST(try_strptime({v}, {literal(DATE_FORMAT)}) AS DATE)"
    if c.type == "TIMESTAMP":
        return f"try_strptime({v}, [{', '.join(literal(f) for f in TIMESTAMP_FORMATS)}])"
    return f"TRY_CAST({v} AS {'DOUBLE' if c.type == 'INTEGER' else c.type})"


def stored_sql(c: Column, ref: str) -> str:
    """The value to store for the staged text `ref` of a column that passed the rules."""
    v = f"NULLIF({ref}, '')"
    if c.type in ("DATE", "TIMESTAMP"):
        return typed_sql(c, ref)
    return v if c.type == "VARCHAR" else f"CAST({v} AS {c.type})"


def column_cases(
    source: Source, c: Column, *, today: str, control: bool, period: tuple[str, str] | None = None
) -> list[tuple[str, str | None]]:
    """The tests of column `c` in order, as (SQL condition, rule it breaks); the first true one
    decides, and a rule of None means the field is fine (an optional field left empty).

    `control`: also look for control characters and line breaks (a scan of the file's bytes
    tells when a CSV delivery has none, which saves a regular expression per field).
    `period`: the delivery's first and last day (ISO dates): a row whose event lies outside is
    marked `outside_period`, which ingest takes out as a finding (it is no reject).
    """
    raw = quote(c.name)
    v = f"NULLIF({raw}, '')"
    t = typed_name(c)
    cases: list[tuple[str, str | None]] = []
    if control:
        cases += [
            (f"strpos({raw}, chr(10)) > 0 OR strpos({raw}, chr(13)) > 0", EMBEDDED_NEWLINE),
            (rf"regexp_matches({raw}, '[\x00-\x09\x0b\x0c\x0e-\x1f\x7f]')", "control_character"),
        ]
    cases += [
        # strlen (bytes, stored with the string) first: only a long field has its characters counted.
        (f"strlen({raw}) > {MAX_FIELD} AND length({raw}) > {MAX_FIELD}", "too_long"),
        (f"{v} IS NULL", "missing" if c.required else None),
    ]
    if c.role != "identity":
        cases += _type_cases(c, v, t) + _code_cases(c, v) + _range_cases(source, c, t, today)
        cases += _order_cases(source, c, t)
        if period is not None:
            cases += _period_cases(source, c, t, period)
        if c.type == "VARCHAR" and c.codes is None:
            # prefix() compares bytes in place, where left() makes a string per field.
            formula = " OR ".join(f"prefix({v}, {literal(c)})" for c in FORMULA_STARTS)
            cases.append((formula, "formula"))
        id_shape = id_shape_sql(c, v, t)
        if id_shape:
            # Last, so that no other rule is masked where ingest finds the mark to be no ID
            # number after all and takes it back (`tre.idnumbers` decides on what this lets by).
            cases.append((id_shape, "id_in_field"))
    return cases


def id_shape_sql(c: Column, v: str, t: str | None) -> str | None:
    """SQL that is true where the value of column `c` may hold an ID number: a superset of what
    `tre.idnumbers.holds_id_number` finds, cheap enough for every field. Text: the shapes of
    `idnumbers.SQL_SHAPE` (ASCII), or ten digit-like characters in other text; a number: a
    whole value of 10 or 11 digits. A code column only takes values of its code list, a whole
    number column at most 9 digits, dates and times are parsed: none can hold one."""
    if c.role == "identity":
        return None
    if c.type == "VARCHAR" and c.codes is None:
        return (
            f"strlen({v}) >= 10 AND (regexp_matches({v}, {literal(SQL_SHAPE)}) "
            f"OR (strlen({v}) <> length({v}) AND regexp_matches({v}, {literal(SQL_UNICODE_SHAPE)})))"
        )
    if c.type == "DOUBLE" and t is not None:
        return f"abs({t}) >= 1e9 AND abs({t}) < 1e11"
    return None


def column_rule_sql(c: Column, cases: list[tuple[str, str | None]]) -> str:
    """A CASE naming the first rule the column breaks (`rule:column`), or NULL."""
    whens = " ".join(
        f"WHEN {condition} THEN {literal(rule + ':' + c.name) if rule else 'NULL'}" for condition, rule in cases
    )
    return f"CASE {whens} END"


def may_fail_sql(cases: list[tuple[str, str | None]]) -> str:
    """True where the CASE of `column_rule_sql` names a rule: some test of a rule holds, and
    no test that clears the field holds before it. Plain conditions, no strings made."""
    clearing: list[str] = []
    failing: list[str] = []
    for condition, rule in cases:
        if rule is None:
            clearing.append(f"({condition})")
        else:
            guard = f"NOT ({' OR '.join(clearing)}) AND " if clearing else ""
            failing.append(f"({guard}({condition}))")
    return " OR ".join(failing) or "false"


def _type_cases(c: Column, v: str, t: str) -> list[tuple[str, str]]:
    if c.type == "INTEGER":
        # TRY_CAST would round 12.5 to 13: a whole number must be written as one.
        return [(f"NOT regexp_full_match({v}, '[+-]?[0-9]{{1,9}}')", "bad_type")]
    if c.type == "DOUBLE":
        return [(f"NOT coalesce(isfinite({t}), false)", "bad_type")]
    if c.type in ("DATE", "TIMESTAMP"):
        # Named apart from other bad values, and only where the strict parse failed.
        zoned = (
            f"{t} IS NULL AND regexp_matches({v}, {literal(ZONE_SUFFIX)}) AND TRY_CAST({v} AS TIMESTAMP) IS NOT NULL"
        )
        return [(zoned, "time_zone"), (f"{t} IS NULL", "bad_type")]
    if c.type != "VARCHAR":
        return [(f"{t} IS NULL", "bad_type")]
    return []


def _period_cases(source: Source, c: Column, t: str, period: tuple[str, str]) -> list[tuple[str, str]]:
    """The event outside the delivery's period: on the event column (the year for SES; for a
    service decision, one that had ended before the period or began after it). Not for the
    population register, historic IPLOS, and the central-only messages and histories: a
    reservation may take effect later, an ID change be reported late."""
    first, last = (f"DATE {literal(day)}" for day in period)
    if source.name == "ses" and c.name == "year":
        return [(f"{t} NOT BETWEEN year({first}) AND year({last})", OUTSIDE_PERIOD)]
    if source.central_only or c.name != source.event_date:
        return []
    if "end_date" in source.column_names:  # a service decision counts while it runs (no end: ongoing)
        return [(f"({t} > {last} OR {typed_name(source.column('end_date'))} < {first})", OUTSIDE_PERIOD)]
    if c.type == "TIMESTAMP":  # compared as it is: no cast per row
        after = f"TIMESTAMP {literal(period[1])} + INTERVAL 1 DAY"
        return [(f"({t} < TIMESTAMP {literal(period[0])} OR {t} >= {after})", OUTSIDE_PERIOD)]
    return [(f"({t} < {first} OR {t} > {last})", OUTSIDE_PERIOD)]


def _order_cases(source: Source, c: Column, t: str) -> list[tuple[str, str]]:
    """A date that must not come before another of the same row (`Source.date_order`)."""
    return [
        (f"{t} < {typed_name(source.column(earlier))}", "date_order")
        for earlier, later in source.date_order
        if later == c.name
    ]


def _code_cases(c: Column, v: str) -> list[tuple[str, str]]:
    if c.codes is None:
        return []
    if c.codes in ("icpc2", "icd10"):
        pattern = (ICPC2 if c.codes == "icpc2" else ICD10).pattern
        return [(f"NOT regexp_full_match({v}, {literal(pattern)})", f"bad_{c.codes}")]
    rule = "unknown_municipality" if c.codes == "municipality" else "unknown_code"
    return [(f"{v} NOT IN (SELECT code FROM {quote('__tre_code_' + c.codes)})", rule)]


def _range_cases(source: Source, c: Column, t: str, today: str) -> list[tuple[str, str]]:
    cases = []
    if c.type in ("INTEGER", "DOUBLE"):
        if c.minimum is not None:
            cases.append((f"{t} < {c.minimum!r}", "out_of_range"))
        if c.maximum is not None:
            cases.append((f"{t} > {c.maximum!r}", "out_of_range"))
    if c.type in ("DATE", "TIMESTAMP"):
        day = f"{t}::DATE"
        cases.append((f"{day} < DATE {literal(EARLIEST_DATE)}", "out_of_range"))
        if (source.name, c.name) not in FUTURE_ALLOWED:
            cases.append((f"{day} > DATE {literal(today)}", "future_date"))
    return cases


def validation_sql(source: Source, *, today: str, control: bool, period: tuple[str, str] | None = None) -> str:
    """SQL creating `__tre_fail (line, rule, col)` from `__tre_raw`: one row per broken rule.

    Two stages: plain conditions pick the rows that break some rule (a few in a thousand), and
    only those get the CASEs that name the rules (a string per field is the costly part).
    """
    cases = {c.name: column_cases(source, c, today=today, control=control, period=period) for c in source.columns}
    checks = ", ".join(column_rule_sql(c, cases[c.name]) for c in source.columns)
    suspect = " OR ".join(f"({may_fail_sql(cases[c.name])})" for c in source.columns)
    # Each typed column is cast once, in an inner projection the rules read.
    typed = "".join(f", {typed_sql(c)} AS {typed_name(c)}" for c in source.columns if typed_sql(c))
    return f"""CREATE OR REPLACE TABLE __tre_fail AS
        SELECT line, split_part(f, ':', 1) AS rule, split_part(f, ':', 2) AS col
        FROM (SELECT line, unnest(string_split(fs, ',')) AS f
              FROM (SELECT line, concat_ws(',', {checks}) AS fs
                    FROM (SELECT rowid + 2 AS line, *{typed} FROM __tre_raw) WHERE {suspect})
              WHERE fs <> '')"""
