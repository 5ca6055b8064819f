"""Times as the review page and the audit log show them: in the TRE's time zone, readable."""

import datetime as dt

import pytest

from tre.errors import ConfigError
from tre.timezones import display_zone, readable

OSLO = display_zone("Europe/Oslo")


def test_stored_utc_reads_in_oslo_time_summer_and_winter():
    assert readable("2026-12-03T13:05:00.123456Z", OSLO) == "3 Dec 2026 14:05 CET"
    assert readable(dt.datetime(2026, 7, 1, 9, 30, tzinfo=dt.UTC), OSLO) == "1 Jul 2026 11:30 CEST"
    assert readable(None, OSLO) == ""


def test_today_and_yesterday_in_the_zones_days():
    now = dt.datetime(2026, 12, 3, 23, 30, tzinfo=dt.UTC)  # already 4 December in Oslo
    assert readable("2026-12-03T23:10:00+00:00", OSLO, now=now) == "today 00:10 CET"
    assert readable("2026-12-03T12:00:00+00:00", OSLO, now=now) == "yesterday 13:00 CET"
    assert readable("2026-11-20T12:00:00+00:00", OSLO, now=now) == "20 Nov 2026 13:00 CET"


def test_an_unknown_zone_names_the_setting():
    with pytest.raises(ConfigError, match="time_zone 'Mars/Olympus' is not a time zone"):
        display_zone("Mars/Olympus")
