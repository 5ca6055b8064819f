"""§ 4-8 due dates: complete-application date + 30 working days (60 with linkage)."""

import datetime as dt

import pytest
from tables import parse_table

from tre.deadlines import due_date
from tre.workdays import easter_sunday, is_working_day, public_holidays

SPEC = """
complete    | linkage | due         | why
2026-11-26  | no      | 2027-01-11  | across Christmas: 25 and 26 Dec and 1 Jan are not working days
2026-12-01  | no      | 2027-01-14  | Christmas Day a Friday, New Year's Day a Friday
2027-03-01  | no      | 2027-04-15  | Easter 2027: Maundy Thursday 25 Mar, Good Friday 26 Mar, Easter Monday 29 Mar
2027-03-01  | yes     | 2027-05-31  | 60 days: also 1 May (Sat), Ascension 6 May, 17 May, Whit Monday 17 May
2027-04-20  | no      | 2027-06-03  | Ascension 6 May, 17 May (also Whit Monday)
2026-10-20  | yes     | 2027-01-14  | the demo's diabetes project: 60 days over Christmas
"""


def rows():
    return parse_table(SPEC)


@pytest.mark.parametrize("row", rows(), ids=lambda r: f"{r['complete']}-{r['linkage']}")
def test_due_dates(row):
    complete = dt.date.fromisoformat(row["complete"])
    assert due_date(complete, row["linkage"] == "yes") == dt.date.fromisoformat(row["due"]), row["why"]


def test_easter_dates():
    assert [easter_sunday(y) for y in (2024, 2025, 2026, 2027, 2028)] == [
        dt.date(2024, 3, 31),
        dt.date(2025, 4, 20),
        dt.date(2026, 4, 5),
        dt.date(2027, 3, 28),
        dt.date(2028, 4, 16),
    ]


def test_holidays_of_2027():
    holidays = public_holidays(2027)
    assert len(holidays) == 11  # Whit Monday falls on 17 May in 2027
    assert dt.date(2027, 5, 17) in holidays and dt.date(2027, 5, 6) in holidays  # 17 May, Ascension
    assert not is_working_day(dt.date(2027, 3, 25)) and is_working_day(dt.date(2027, 3, 24))
    assert is_working_day(dt.date(2026, 12, 24)) and not is_working_day(dt.date(2026, 12, 25))
