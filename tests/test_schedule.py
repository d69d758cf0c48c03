"""Zone arming schedules: weekly intervals in a time zone, overnight spans, validation errors."""

from __future__ import annotations

from datetime import datetime
from zoneinfo import ZoneInfo

import pytest
from pydantic import ValidationError

from detectors.schedule import ArmingSchedule, WeeklyInterval

AMS = ZoneInfo("Europe/Amsterdam")


def at(text: str, tz: ZoneInfo = AMS) -> float:
    return datetime.fromisoformat(text).replace(tzinfo=tz).timestamp()


NIGHTS = ArmingSchedule(timezone="Europe/Amsterdam", intervals=(WeeklyInterval(start="22:00", end="06:00"),))
WEEKDAY_OFFICE = ArmingSchedule(
    timezone="Europe/Amsterdam",
    intervals=(WeeklyInterval(days=("mon", "tue", "wed", "thu", "fri"), start="08:00", end="18:00"),),
)
FRIDAY_NIGHT = ArmingSchedule(intervals=(WeeklyInterval(days=("fri",), start="22:00", end="24:00"),), timezone="UTC")


@pytest.mark.parametrize(
    ("schedule", "when", "armed"),
    [
        (NIGHTS, "2026-11-27T23:30", True),
        (NIGHTS, "2026-11-28T05:59", True),
        (NIGHTS, "2026-11-28T06:00", False),
        (NIGHTS, "2026-11-27T12:00", False),
        (WEEKDAY_OFFICE, "2026-11-27T09:00", True),  # a Friday
        (WEEKDAY_OFFICE, "2026-11-28T09:00", False),  # a Saturday
        (WEEKDAY_OFFICE, "2026-11-27T18:00", False),  # the end is exclusive
        (WEEKDAY_OFFICE, "2026-07-01T08:30", True),  # summer time: local hours still count
    ],
)
def test_armed_at(schedule: ArmingSchedule, when: str, armed: bool) -> None:
    assert schedule.armed_at(at(when)) is armed


def test_overnight_interval_belongs_to_the_day_it_starts() -> None:
    sched = ArmingSchedule(intervals=(WeeklyInterval(days=("fri",), start="22:00", end="02:00"),))
    utc = ZoneInfo("UTC")
    assert sched.armed_at(at("2026-11-28T01:00", utc))  # Saturday 01:00 belongs to Friday night
    assert not sched.armed_at(at("2026-11-29T01:00", utc))  # Sunday 01:00 does not
    assert FRIDAY_NIGHT.armed_at(at("2026-11-27T23:59", utc))


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"intervals": [{"start": "25:00", "end": "06:00"}]}, "HH:MM"),
        ({"intervals": [{"start": "8:00", "end": "09:00"}]}, "HH:MM"),
        ({"intervals": [{"start": "08:00", "end": "08:00"}]}, "empty"),
        ({"intervals": [{"start": "24:00", "end": "08:00"}]}, "00:00"),
        ({"intervals": [{"days": ["monday"], "start": "08:00", "end": "09:00"}]}, "days"),
        ({"intervals": []}, "intervals"),
        ({"timezone": "Mars/Olympus", "intervals": [{"start": "08:00", "end": "09:00"}]}, "unknown timezone"),
    ],
)
def test_bad_schedules_say_what_is_wrong(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        ArmingSchedule.model_validate(data)
