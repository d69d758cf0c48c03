"""The motion kernel and per-zone activity: zones, lighting, noise, odd inputs, stacked vs single cameras."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.activity import MotionDetector
from detectors.motion import MotionParams, MotionResult, MotionStack, work_size
from detectors.zones import Zone
from tests.detector_fixtures import CORNER, LEFT, RIGHT, WHOLE, background, scene

PARAMS = MotionParams()


def run(zones: tuple[Zone, ...], frames: object) -> list[MotionResult]:
    det = MotionDetector(zones, PARAMS)
    return [det.process(f.luma_hw, f.t_s) for f in frames]  # type: ignore[attr-defined]


def active_zones(results: list[MotionResult], after_s: float = 3.5) -> set[str]:
    return {a.zone for r in results if r.t_s >= after_s for a in r.zones if a.fraction >= PARAMS.zone_min_fraction}


WALKER = {"box": (0.1, 0.5, 0.16, 0.8), "move": (4, 0), "moving_from": 25}


@pytest.mark.parametrize(
    ("label", "frames", "shape"),
    [
        ("single frame", [background()], (180, 320)),
        ("all black", [np.zeros((180, 320), np.uint8)] * 30, (180, 320)),
        ("all white", [np.full((180, 320), 255, np.uint8)] * 30, (180, 320)),
        ("tiny frame", [background(16, 16)] * 30, (16, 16)),
        ("odd size", [background(91, 161)] * 30, (91, 161)),
    ],
)
def test_degenerate_inputs_raise_no_event(label: str, frames: list[np.ndarray], shape: tuple[int, int]) -> None:
    det = MotionDetector((WHOLE, CORNER), PARAMS)
    results = [det.process(f, i * 0.2) for i, f in enumerate(frames)]
    assert results[0].recalibrating, "the first frame only learns"
    assert all(not r.zones for r in results), label


def test_frame_size_change_mid_stream_restarts_learning() -> None:
    det = MotionDetector((LEFT, RIGHT), PARAMS)
    for f in scene(30):
        det.process(f.luma_hw, f.t_s)
    bigger = background(240, 320, seed=5)
    first = det.process(bigger, 6.0)
    assert first.recalibrating and not first.zones
    later = [det.process(bigger, 6.0 + i * 0.2) for i in range(1, 30)]
    assert not any(r.zones for r in later)


@pytest.mark.parametrize(("gain", "label"), [(1.7, "lights on"), (0.45, "lights off")])
def test_sudden_global_light_change_raises_no_zone_activity(gain: float, label: str) -> None:
    results = run((LEFT, RIGHT), scene(60, gain=gain, gain_from=30))
    assert active_zones(results) == set(), label


def test_strong_sensor_noise_is_absorbed() -> None:
    results = run((WHOLE,), scene(80, noise=7.0))
    assert active_zones(results) == set()


def test_walker_seen_in_noise() -> None:
    results = run((WHOLE,), scene(70, noise=6.0, **WALKER))  # type: ignore[arg-type]
    assert active_zones(results) == {"whole"}


def test_stacked_slots_match_single_cameras_away_from_frame_edges() -> None:
    streams = [list(scene(40, seed=s, **WALKER)) for s in (1, 2, 3)]  # type: ignore[arg-type]
    w, h = work_size(320, 180, PARAMS.work_width)
    stacked = MotionStack(3, w, h)
    singles = [MotionStack(1, w, h) for _ in range(3)]
    for k in range(40):
        for i in range(3):
            stacked.load(i, streams[i][k].luma_hw)
            singles[i].load(0, streams[i][k].luma_hw)
        outs = stacked.step(0, 3, [k * 0.2] * 3, [PARAMS] * 3, [False] * 3)
        for i in range(3):
            one = singles[i].step(0, 1, [k * 0.2], [PARAMS], [False])[0]
            assert np.array_equal(outs[i].changed_hw[2:-2], one.changed_hw[2:-2]), (k, i)


@pytest.mark.parametrize(
    ("field", "value"),
    [("threshold", 0), ("threshold", 256), ("zone_min_fraction", 1.5), ("flicker_limit", -0.1), ("work_width", 8)],
)
def test_bad_params_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        MotionParams(**{field: value})  # type: ignore[arg-type]


def test_camera_shake_raises_no_zone_activity() -> None:
    shifts = [(0, 0), (3, 2), (-3, 0), (2, -2), (0, 3), (-2, -3)]
    frames = list(scene(80))
    det = MotionDetector((LEFT, RIGHT), PARAMS)
    results = []
    for i, f in enumerate(frames):
        dx, dy = shifts[i % len(shifts)] if i >= 30 else (0, 0)
        shaken = np.ascontiguousarray(np.roll(np.roll(f.luma_hw, dx, axis=1), dy, axis=0))
        results.append(det.process(shaken, f.t_s))
    assert active_zones(results) == set()
    # The background must come out of the shake unharmed: a walker right after is still seen.
    after = list(scene(40, t_from=16.0, **WALKER))  # type: ignore[arg-type]
    assert active_zones([det.process(f.luma_hw, f.t_s) for f in after], after_s=0.0) == {"left"}
