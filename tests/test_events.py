"""The event lifecycle: persistence, updates, end, cooldown, loitering, the hourly cap, camera-wide conditions."""

from __future__ import annotations

import pytest

from detectors.events import CAMERA_ZONE, Event, EventParams, EventPhase, EventTracker, EventType
from detectors.motion import MotionResult, ZoneActivity

P = EventParams(min_duration_s=0.6, end_quiet_s=2.0, cooldown_s=10.0, update_interval_s=5.0, loiter_s=8.0)


def frame(t: float, *zones: str, fraction: float = 0.05, recal: bool = False) -> MotionResult:
    acts = tuple(ZoneActivity(z, fraction, (0.1, 0.1, 0.2, 0.3)) for z in zones)
    return MotionResult(t, fraction, acts, recal)


def feed(tracker: EventTracker, spans: list[tuple[float, float, tuple[str, ...]]], until: float) -> list[Event]:
    """Frames at 5 fps: zones active during each (start, end) span."""
    out: list[Event] = []
    for k in range(round(until * 5) + 1):
        t = k / 5
        zones = tuple(z for a, b, zs in spans if a <= t <= b for z in zs)
        out += tracker.update(frame(t, *zones))
    return out


def kinds(events: list[Event]) -> list[tuple[str, str, str]]:
    return [(e.type.value, e.zone, e.phase.value) for e in events]


@pytest.mark.parametrize(
    ("spans", "expected"),
    [
        ([], []),
        ([(1.0, 1.4, ("a",))], []),  # shorter than the minimum duration
        ([(1.0, 3.0, ("a",))], [("motion", "a", "start"), ("motion", "a", "end")]),
        (
            [(1.0, 3.0, ("a", "b"))],
            [("motion", "a", "start"), ("motion", "b", "start"), ("motion", "a", "end"), ("motion", "b", "end")],
        ),
        ([(1.0, 3.0, ("a",)), (6.0, 8.0, ("a",))], [("motion", "a", "start"), ("motion", "a", "end")]),  # cooldown
        (
            [(1.0, 3.0, ("a",)), (14.0, 16.0, ("a",))],
            [("motion", "a", "start"), ("motion", "a", "end")] * 2,
        ),  # after the cooldown
        (
            [(1.0, 12.0, ("a",))],
            [
                ("motion", "a", "start"),
                ("motion", "a", "update"),
                ("loitering", "a", "start"),
                ("motion", "a", "update"),
                ("motion", "a", "end"),
                ("loitering", "a", "end"),
            ],
        ),
    ],
    ids=["nothing", "too-short", "one", "two-zones", "cooldown", "after-cooldown", "loitering"],
)
def test_lifecycle(spans: list[tuple[float, float, tuple[str, ...]]], expected: list[tuple[str, str, str]]) -> None:
    got = feed(EventTracker("cam", P), spans, until=30.0)
    assert kinds(got) == expected


def test_times_of_one_event() -> None:
    got = feed(EventTracker("cam", P), [(1.0, 3.0, ("a",))], until=10.0)
    start, end = got
    assert start.start_s == pytest.approx(1.0) and start.t_s == pytest.approx(1.6)
    assert end.end_s == pytest.approx(3.0) and end.t_s == pytest.approx(5.0)
    assert end.peak_fraction == pytest.approx(0.05) and end.bbox is not None


def test_recalibrating_frames_neither_start_nor_end() -> None:
    tracker = EventTracker("cam", P)
    assert tracker.update(frame(0.0, "a")) == []
    assert tracker.update(frame(0.2, "a")) == []
    # A long recalibration in the middle of an event must not end it.
    started = tracker.update(frame(0.6, "a")) + tracker.update(frame(0.8, "a"))
    assert kinds(started) == [("motion", "a", "start")]
    for k in range(20):
        assert tracker.update(frame(1.0 + k * 0.2, recal=True)) == []
    assert kinds(tracker.update(frame(6.0))) == [("motion", "a", "end")]


def test_hourly_cap_sends_one_summary_and_counts_what_it_held_back() -> None:
    tracker = EventTracker(
        "cam", EventParams(min_duration_s=0.0, end_quiet_s=1.0, cooldown_s=0.0, max_alerts_per_hour=2)
    )
    out: list[Event] = []
    for i in range(5):
        t = i * 60.0
        out += tracker.update(frame(t, "a")) + tracker.update(frame(t + 2.0))
    assert [e.zone for e in out if e.phase is EventPhase.START] == ["a", "a", CAMERA_ZONE]
    summary = tracker.update(frame(3600.0 + 61.0))  # the first start left the hour: the cap lifts
    assert kinds(summary) == [("motion", CAMERA_ZONE, "end")]
    assert summary[0].suppressed == 3


def test_condition_start_end_and_cooldown() -> None:
    tracker = EventTracker("cam", EventParams(tamper_cooldown_s=100.0))
    covered = EventType.TAMPER_COVERED
    assert kinds(tracker.condition(covered, True, 10.0)) == [("tamper_covered", CAMERA_ZONE, "start")]
    assert tracker.condition(covered, True, 11.0) == []
    assert kinds(tracker.condition(covered, False, 20.0)) == [("tamper_covered", CAMERA_ZONE, "end")]
    assert tracker.condition(covered, True, 50.0) == []  # cooling down
    assert kinds(tracker.condition(covered, True, 130.0)) == [("tamper_covered", CAMERA_ZONE, "start")]


def test_flush_ends_everything_open() -> None:
    tracker = EventTracker("cam", P)
    feed(tracker, [(0.0, 100.0, ("a", "b"))], until=2.0)
    tracker.condition(EventType.TAMPER_MOVED, True, 2.0)
    ended = tracker.flush(2.5)
    assert sorted(kinds(ended)) == [
        ("motion", "a", "end"),
        ("motion", "b", "end"),
        ("tamper_moved", CAMERA_ZONE, "end"),
    ]
    assert tracker.flush(3.0) == []


@pytest.mark.parametrize(
    ("field", "value"), [("min_duration_s", -1.0), ("end_quiet_s", 0.0), ("max_alerts_per_hour", -1)]
)
def test_bad_params_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        EventParams(**{field: value})  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("label", "seen_at", "starts"),
    [
        # A small object at the edge of visibility: seen in every second or third frame, up to four misses.
        ("every third frame", [1.0, 1.6, 2.2, 2.8, 3.4], 1),
        ("four misses between sightings", [1.0, 1.2, 2.2, 2.4], 1),
        ("two sightings 0.8 s apart", [1.0, 1.8], 1),
        # Noise and weather: isolated sightings, rarely within a second of each other.
        ("one sighting", [1.0], 0),
        ("two sightings, consecutive frames", [1.0, 1.2], 0),
        ("sightings 1.2 s apart", [1.0, 2.2, 3.4, 4.6], 0),
    ],
)
def test_persistence_bridges_gaps_under_a_second(label: str, seen_at: list[float], starts: int) -> None:
    tracker = EventTracker("cam", EventParams(min_duration_s=0.4, end_quiet_s=2.0, cooldown_s=10.0))
    out: list[Event] = []
    for k in range(40):
        t = round(k * 0.2, 1)
        out += tracker.update(frame(t, "a") if t in seen_at else frame(t))
    assert sum(e.phase is EventPhase.START for e in out) == starts, label
