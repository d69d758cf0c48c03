"""Per-zone arming schedules: weekly intervals in a named time zone. No schedule means always armed."""

from __future__ import annotations

import re
from datetime import datetime
from enum import StrEnum
from functools import lru_cache
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

_HHMM = re.compile(r"^([01]\d|2[0-3]):([0-5]\d)$|^24:00$")
MAX_INTERVALS = 64


class Weekday(StrEnum):
    """Days of the week, Monday first (as :meth:`datetime.weekday` counts)."""

    MON = "mon"
    TUE = "tue"
    WED = "wed"
    THU = "thu"
    FRI = "fri"
    SAT = "sat"
    SUN = "sun"


ALL_DAYS = tuple(Weekday)


def _minutes(hhmm: str) -> int:
    hours, minutes = hhmm.split(":")
    return int(hours) * 60 + int(minutes)


class WeeklyInterval(BaseModel):
    """Armed from ``start`` to ``end`` (local "HH:MM") on each of ``days``.

    An ``end`` earlier than ``start`` runs past midnight into the next day (e.g. 22:00-06:00 on "fri"
    arms Friday night until Saturday 06:00). "24:00" is allowed as an end.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")

    days: tuple[Weekday, ...] = Field(default=ALL_DAYS, min_length=1, max_length=7)
    start: str = Field(description='"HH:MM", local time of the schedule\'s timezone')
    end: str = Field(description='"HH:MM" or "24:00"; earlier than start means overnight')

    @field_validator("start", "end")
    @classmethod
    def _check_time(cls, value: str) -> str:
        if not _HHMM.match(value):
            raise ValueError(f"time {value!r} must be HH:MM (00:00-23:59, or 24:00 as an end)")
        return value

    @model_validator(mode="after")
    def _check_span(self) -> WeeklyInterval:
        if self.start == "24:00":
            raise ValueError("start '24:00' is not a time of day: use '00:00'")
        if _minutes(self.start) == _minutes(self.end):
            raise ValueError(f"start {self.start!r} equals end {self.end!r}: the interval would be empty")
        return self

    def covers(self, weekday: int, minute: int) -> bool:
        """True when local ``weekday`` (0 = Monday) at ``minute`` after midnight lies in the interval."""
        start, end = _minutes(self.start), _minutes(self.end)
        today = ALL_DAYS[weekday] in self.days
        if start < end:
            return today and start <= minute < end
        yesterday = ALL_DAYS[(weekday - 1) % 7] in self.days
        return (today and minute >= start) or (yesterday and minute < end)


@lru_cache(maxsize=256)
def _zone_info(name: str) -> ZoneInfo:
    return ZoneInfo(name)


class ArmingSchedule(BaseModel):
    """When a zone raises events: any of ``intervals`` in ``timezone`` (an IANA name, e.g. "Europe/Amsterdam")."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    timezone: str = "UTC"
    intervals: tuple[WeeklyInterval, ...] = Field(min_length=1, max_length=MAX_INTERVALS)

    @field_validator("timezone")
    @classmethod
    def _check_timezone(cls, value: str) -> str:
        try:
            _zone_info(value)
        except (ZoneInfoNotFoundError, ValueError):
            raise ValueError(
                f"unknown timezone {value!r}: use an IANA name such as 'Europe/Amsterdam' or 'UTC'"
            ) from None
        return value

    def armed_at(self, unix_s: float) -> bool:
        """True when the schedule arms the zone at Unix time ``unix_s``."""
        return _armed(self, int(unix_s // 60))


@lru_cache(maxsize=8192)
def _armed(schedule: ArmingSchedule, unix_minute: int) -> bool:
    # Arming only changes on minute boundaries: one evaluation per zone and minute, not per frame.
    local = datetime.fromtimestamp(unix_minute * 60, tz=_zone_info(schedule.timezone))
    minute = local.hour * 60 + local.minute
    return any(iv.covers(local.weekday(), minute) for iv in schedule.intervals)
