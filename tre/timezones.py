"""Times as people read them: stored in UTC, shown in the TRE's time zone (`time_zone`)."""

from __future__ import annotations

import datetime as dt
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from tre.errors import ConfigError


def display_zone(name: str) -> ZoneInfo:
    """The zone named by the `time_zone` setting, or ConfigError naming the setting."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ConfigError(
            f"time_zone {name!r} is not a time zone: use an IANA name such as Europe/Oslo or UTC"
        ) from None


def readable(moment: dt.datetime | str | None, zone: ZoneInfo, *, now: dt.datetime | None = None) -> str:
    """`3 Dec 2026 14:05` in `zone` (with the zone's abbreviation), or `today 14:05` /
    `yesterday 09:12` when `now` is given and the day is that close; "" for None."""
    if moment is None or moment == "":
        return ""
    if isinstance(moment, str):
        moment = dt.datetime.fromisoformat(moment.replace("Z", "+00:00"))
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=dt.UTC)
    local = moment.astimezone(zone)
    day = f"{local.day} {local:%b %Y}"
    if now is not None:
        days = (now.astimezone(zone).date() - local.date()).days
        day = {0: "today", 1: "yesterday"}.get(days, day)
    return f"{day} {local:%H:%M} {local.tzname()}"
