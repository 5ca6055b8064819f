"""The row rules' first stage (plain conditions) picks exactly the fields the CASEs flag."""

import duckdb
import pytest

from tre.linkage.rules import column_cases, column_rule_sql, create_code_tables, may_fail_sql, typed_name, typed_sql
from tre.linkage.store import quote
from tre.registers import SOURCES

# Every kind of value a field can hold, good and bad, for any column type.
VALUES = [
    None,
    "",
    " ",
    "x" * 201,
    "ø" * 150,  # 300 bytes, 150 characters: not too long
    "=cmd|' /C calc'!A0",
    "+1",
    "-3",
    "@SUM(A1)",
    "1",
    "12.5",
    "-0.5",
    "nan",
    "inf",
    "2024-03-01",
    "2024-03-01 12:00:00",
    "1800-01-01",
    "2999-01-01",
    "true",
    "0301",
    "9999",
    "T90",
    "E119",
    "konsultasjon",
    "KR0000000001",
    "ref 05859607391 x",  # a run of 11 digits
    "ref 058596 07391 x",  # the same, spaced
    "０５８５９６０７３９１",  # fullwidth
    "5859607391",  # its leading zero lost
    "5.859607391e9",
    "123456789012",  # twelve digits: no run of exactly 11
    "2024-03-01 12:00:00+14:00",
    "2024-03-01T12:00:00Z",
    "a\tb",
    "a\nb",
]


@pytest.mark.parametrize("control", [True, False])
@pytest.mark.parametrize("name", sorted(SOURCES))
def test_first_stage_picks_what_the_cases_flag(name, control):
    source = SOURCES[name]
    con = duckdb.connect()
    create_code_tables(con)
    con.execute("CREATE TABLE v (value VARCHAR)")
    con.executemany("INSERT INTO v VALUES (?)", [[value] for value in VALUES])
    # Every column of the row holds the value (rules may compare two columns of a row).
    columns = ", ".join(f"value AS {quote(c.name)}" for c in source.columns)
    typed = "".join(f", {typed_sql(c)} AS {typed_name(c)}" for c in source.columns if typed_sql(c))
    for c in source.columns:
        cases = column_cases(source, c, today="2026-11-26", control=control, period=("2023-01-01", "2023-12-31"))
        query = f"""SELECT value, ({column_rule_sql(c, cases)}) IS NOT NULL AS flagged, coalesce({may_fail_sql(cases)}, false) AS picked
                    FROM (SELECT *{typed} FROM (SELECT {columns}, value FROM v))"""
        wrong = [
            (value, flagged, picked) for value, flagged, picked in con.execute(query).fetchall() if flagged != picked
        ]
        assert not wrong, (c.name, wrong)
