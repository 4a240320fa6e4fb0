"""Quiet hours in the user's time zone: whether a moment falls inside them, and when they end."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError


def parse_hhmm(value: str) -> time:
    """ "HH:MM" (24-hour) → time; ValueError otherwise."""
    hours, sep, minutes = value.partition(":")
    if not sep or len(hours) != 2 or len(minutes) != 2 or not (hours + minutes).isdigit():
        raise ValueError(f"{value!r} is not a time as HH:MM")
    return time(int(hours), int(minutes))


def zone(name: str) -> ZoneInfo:
    """The IANA time zone; ValueError for an unknown name."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        raise ValueError(f"unknown time zone {name!r} (use an IANA name such as Europe/Paris)") from None


def quiet_until(now: datetime, *, time_zone: str, start: str | None, end: str | None) -> datetime | None:
    """The UTC moment the quiet hours around `now` end, or None when `now` is outside them (or none are
    set). A window whose start is after its end crosses midnight (22:00-07:00)."""
    if not start or not end or start == end:
        return None
    tz = zone(time_zone)
    local = now.astimezone(tz)
    begin, finish = parse_hhmm(start), parse_hhmm(end)
    t = local.time()
    inside = begin <= t < finish if begin < finish else (t >= begin or t < finish)
    if not inside:
        return None
    day = local.date()
    ends = datetime.combine(day, finish, tzinfo=tz)
    if ends <= local:
        ends = datetime.combine(day + timedelta(days=1), finish, tzinfo=tz)
    return ends.astimezone(UTC)
