"""Norwegian working days, for the § 4-8 deadlines.

A working day is Monday to Friday and not a public holiday (helligdag or høytidsdag):
New Year's Day, Maundy Thursday, Good Friday, Easter Sunday and Monday, 1 May, 17 May,
Ascension Day, Whit Sunday and Monday, Christmas Day and Boxing Day. Christmas Eve and New
Year's Eve are ordinary working days in law, and counted as such.
"""

from __future__ import annotations

import datetime as dt
import functools


def easter_sunday(year: int) -> dt.date:
    """Gregorian Easter Sunday (the anonymous Gregorian algorithm, Meeus/Jones/Butcher)."""
    a = year % 19
    b, c = divmod(year, 100)
    d, e = divmod(b, 4)
    f = (b + 8) // 25
    g = (b - f + 1) // 3
    h = (19 * a + b - d - g + 15) % 30
    i, k = divmod(c, 4)
    l = (32 + 2 * e + 2 * i - h - k) % 7  # noqa: E741 - the algorithm's own name
    m = (a + 11 * h + 22 * l) // 451
    month, day = divmod(h + l - 7 * m + 114, 31)
    return dt.date(year, month, day + 1)


@functools.cache
def public_holidays(year: int) -> dict[dt.date, str]:
    easter = easter_sunday(year)

    def after_easter(days):
        return easter + dt.timedelta(days=days)

    return {
        dt.date(year, 1, 1): "første nyttårsdag",
        after_easter(-3): "skjærtorsdag",
        after_easter(-2): "langfredag",
        easter: "første påskedag",
        after_easter(1): "andre påskedag",
        dt.date(year, 5, 1): "offentlig høytidsdag",
        dt.date(year, 5, 17): "grunnlovsdag",
        after_easter(39): "Kristi himmelfartsdag",
        after_easter(49): "første pinsedag",
        after_easter(50): "andre pinsedag",
        dt.date(year, 12, 25): "første juledag",
        dt.date(year, 12, 26): "andre juledag",
    }


def is_working_day(day: dt.date) -> bool:
    return day.weekday() < 5 and day not in public_holidays(day.year)


def add_working_days(start: dt.date, days: int) -> dt.date:
    """The date `days` working days after `start` (start itself not counted)."""
    if days < 0:
        raise ValueError("days must not be negative")
    current = start
    while days:
        current += dt.timedelta(days=1)
        if is_working_day(current):
            days -= 1
    return current


def working_days_between(start: dt.date, end: dt.date) -> int:
    """Working days after `start` up to and including `end` (negative when end is before)."""
    if end < start:
        return -working_days_between(end, start)
    return sum(is_working_day(start + dt.timedelta(days=i)) for i in range(1, (end - start).days + 1))
