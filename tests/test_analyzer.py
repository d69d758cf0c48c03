"""The camera facade: motion events per zone, day/night switching, tamper, schedules, settings, odd inputs."""

from __future__ import annotations

from collections.abc import Iterable

import numpy as np
import pytest

from config.settings import Settings
from detectors.analyzer import AnalyzerConfig, CameraAnalyzer
from detectors.events import CAMERA_ZONE, Event, EventPhase
from detectors.schedule import ArmingSchedule, WeeklyInterval
from detectors.source import ChromaLumaFrame
from detectors.zones import Zone
from ingest.frames import LumaFrame
from tests.detector_fixtures import CORNER, LEFT, RIGHT, WHOLE, background, scene

CONFIG = AnalyzerConfig()
WALKER = {"box": (0.1, 0.5, 0.16, 0.8), "move": (4, 0), "moving_from": 25}


def run(zones: tuple[Zone, ...], frames: Iterable[LumaFrame], **kw: object) -> tuple[list[Event], CameraAnalyzer]:
    analyzer = CameraAnalyzer("cam", zones, CONFIG, **kw)  # type: ignore[arg-type]
    events: list[Event] = []
    last = 0.0
    for f in frames:
        events += analyzer.process(f).events
        last = f.t_s
    return events + analyzer.flush(last), analyzer


def starts(events: list[Event]) -> list[tuple[str, str]]:
    return [(e.type.value, e.zone) for e in events if e.phase is EventPhase.START]


def test_walker_raises_motion_in_each_zone_it_crosses() -> None:
    events, _ = run((LEFT, RIGHT, CORNER), scene(80, **WALKER))  # type: ignore[arg-type]
    assert starts(events) == [("motion", "left"), ("motion", "right")]
    ends = [e for e in events if e.phase is EventPhase.END]
    assert all(e.end_s is not None and e.end_s >= e.start_s for e in ends)


def test_active_flag_follows_activity() -> None:
    analyzer = CameraAnalyzer("cam", (WHOLE,), CONFIG)
    flags = [analyzer.process(f).active for f in scene(50, **WALKER)]  # type: ignore[arg-type]
    assert not any(flags[:25]) and any(flags[30:])


def test_infrared_switch_changes_parameter_set_without_any_alarm() -> None:
    base = background()
    day = scene(40, base=base, chroma=12.0)
    # IR on: colour gone, brighter and flatter picture (vegetation glows), from t = 8 s.
    ir_base = np.clip(base.astype(np.float32) * 0.6 + 80, 0, 255).astype(np.uint8)
    night = scene(60, base=ir_base, chroma=0.0, t_from=8.0, noise=3.0)
    analyzer = CameraAnalyzer("cam", (LEFT, RIGHT), CONFIG)
    params: list[str] = []
    events: list[Event] = []
    for f in [*day, *night]:
        a = analyzer.process(f)
        params.append(a.params)
        events += a.events
    assert params[0] == "day" and params[-1] == "night"
    assert events == []


def test_light_switch_is_not_an_event() -> None:
    events, _ = run((LEFT, RIGHT), scene(80, gain=0.5, gain_from=40))
    assert events == []


def test_covered_camera_raises_tamper_once() -> None:
    frames = list(scene(50))
    dark = np.full((180, 320), 18, np.uint8)
    frames += [ChromaLumaFrame("cam", 10.0 + i * 0.2, dark, False, chroma_level=0.0) for i in range(50)]
    events, _ = run((WHOLE,), frames)
    assert starts(events) == [("tamper_covered", CAMERA_ZONE)]
    start = next(e for e in events if e.phase is EventPhase.START)
    assert start.t_s - 10.0 <= 5.0


def test_schedule_disarms_a_zone_and_offline_ignores_it() -> None:
    night_only = ArmingSchedule(intervals=(WeeklyInterval(start="22:00", end="06:00"),))
    zone = Zone(name="yard", polygon=WHOLE.polygon, schedule=night_only)
    noon = 12 * 3600.0
    events, _ = run((zone,), scene(70, t_from=noon, **WALKER))  # type: ignore[arg-type]
    assert starts(events) == []
    events, _ = run((zone,), scene(70, t_from=noon, **WALKER), clock_offset_s=None)  # type: ignore[arg-type]
    assert starts(events) == [("motion", "yard")]


@pytest.mark.parametrize(
    ("label", "frames"),
    [
        ("single frame", [LumaFrame("cam", 0.0, background(), True)]),
        ("all black", [LumaFrame("cam", i * 0.2, np.zeros((180, 320), np.uint8), False) for i in range(60)]),
        (
            "size change",
            [LumaFrame("cam", i * 0.2, background(180 if i < 30 else 240, 320), False) for i in range(60)],
        ),
        ("no chroma field", [LumaFrame("cam", i * 0.2, background(), False) for i in range(30)]),
    ],
)
def test_odd_streams_raise_nothing(label: str, frames: list[LumaFrame]) -> None:
    events, _ = run((WHOLE, CORNER), frames)
    assert events == [], label


def test_from_settings_maps_every_detector_setting() -> None:
    s = Settings(
        motion_threshold=30,
        zone_min_fraction=0.02,
        detect_night_threshold=9,
        loiter_s=120.0,
        alert_cap_per_hour=5,
        tamper_confirm_s=2.0,
        tamper_enabled=False,
        event_min_duration_s=1.0,
    )
    cfg = AnalyzerConfig.from_settings(s)
    assert (cfg.motion.threshold, cfg.motion.zone_min_fraction, cfg.night.threshold) == (30, 0.02, 9)
    assert (cfg.events.loiter_s, cfg.events.max_alerts_per_hour, cfg.events.min_duration_s) == (120.0, 5, 1.0)
    assert cfg.tamper.confirm_s == 2.0 and cfg.tamper_enabled is False
    assert cfg.motion.name == "day" and cfg.night.name == "night"
