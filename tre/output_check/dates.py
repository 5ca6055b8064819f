"""Exact dates in labels, in every form a table may carry them.

A cell keyed by an exact date tells *when* something happened to the people in it; for a
small group that singles them out (`ExactDateCheck`). Labels are read as dates in the forms
researchers' tables carry: ISO (`2024-03-05`, with or without a time), `2024/03/05`,
Norwegian `05.03.2024` (and `5.3.2024`, `05.03.24`), `05/03/2024`, `05-03-2024`, and month
names (`5. mars 2024`, `5 March 2024`). pandas datetime columns arrive as ISO labels
(`tables.category_label`). An axis may mix dates with labels such as `ukjent`: only the
date cells are exact dates. An axis whose dates all fall on the first day of a month is read
as months (the extract coarsens dates to the first day of their month), unless a label has a
time of day.
"""

from __future__ import annotations

import datetime as dt
import re
from collections.abc import Sequence

_MONTHS = {
    name: number
    for number, names in enumerate(
        (
            ("jan", "januar", "january"),
            ("feb", "februar", "february"),
            ("mar", "mars", "march"),
            ("apr", "april"),
            ("mai", "may"),
            ("jun", "juni", "june"),
            ("jul", "juli", "july"),
            ("aug", "august"),
            ("sep", "sept", "september"),
            ("okt", "oct", "oktober", "october"),
            ("nov", "november"),
            ("des", "dec", "desember", "december"),
        ),
        start=1,
    )
    for name in names
}
_TIME = r"(?:[ T](?P<time>\d{1,2}:\d{2}(?::\d{2}(?:\.\d+)?)?)(?:Z|[+-]\d{2}:?\d{2})?)?"
_FORMS = (
    re.compile(r"^(?P<y>\d{4})-(?P<m>\d{1,2})-(?P<d>\d{1,2})" + _TIME + "$"),
    re.compile(r"^(?P<y>\d{4})/(?P<m>\d{1,2})/(?P<d>\d{1,2})" + _TIME + "$"),
    re.compile(r"^(?P<d>\d{1,2})\.(?P<m>\d{1,2})\.(?P<y>\d{4})" + _TIME + "$"),
    re.compile(r"^(?P<d>\d{2})\.(?P<m>\d{2})\.(?P<yy>\d{2})$"),
    re.compile(r"^(?P<d>\d{1,2})/(?P<m>\d{1,2})/(?P<y>\d{4})" + _TIME + "$"),
    re.compile(r"^(?P<d>\d{1,2})-(?P<m>\d{1,2})-(?P<y>\d{4})" + _TIME + "$"),
    re.compile(r"^(?P<d>\d{1,2})\.? ?(?P<name>[a-zæøå]{3,9})\.? (?P<y>\d{4})$", re.IGNORECASE),
    re.compile(r"^(?P<name>[a-zæøå]{3,9})\.? (?P<d>\d{1,2}),? (?P<y>\d{4})$", re.IGNORECASE),
)


def parse_date(label: str) -> tuple[dt.date, bool] | None:
    """(the date, whether it has a time of day other than midnight), or None if not a date."""
    text = str(label).strip()
    for form in _FORMS:
        match = form.match(text)
        if not match:
            continue
        parts = match.groupdict()
        if parts.get("name"):
            month = _MONTHS.get(parts["name"].lower().rstrip("."))
            if month is None:
                return None
        else:
            month = int(parts["m"])
        year = int(parts["y"]) if parts.get("y") else 2000 + int(parts["yy"])
        try:
            day = dt.date(year, month, int(parts["d"]))
        except ValueError:
            return None
        if not 1850 <= year <= 2150:
            return None
        time = parts.get("time")
        timed = bool(time) and any(c not in "0:." for c in time)
        return day, timed
    return None


def exact_date_labels(categories: Sequence[str]) -> list[bool]:
    """Per category of one axis: is it an exact date?"""
    parsed = [parse_date(c) for c in categories]
    dates = [p for p in parsed if p is not None]
    if not dates:
        return [False] * len(categories)
    months_only = all(day.day == 1 and not timed for day, timed in dates)
    return [p is not None and not months_only for p in parsed]
