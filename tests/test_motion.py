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


def _with_patch(luma: np.ndarray, box: tuple[float, float, float, float], level: float) -> np.ndarray:
    h, w = luma.shape
    out = luma.copy()
    out[round(box[1] * h) : round(box[3] * h), round(box[0] * w) : round(box[2] * w)] = level
    return out


@pytest.mark.parametrize(
    ("label", "box", "level"),
    [
        ("headlight pool at the edge", (0.0, 0.5, 0.15, 0.9), 250.0),
        ("car that drove off", (0.55, 0.55, 0.85, 0.8), 20.0),
        ("person who walked on", (0.3, 0.4, 0.34, 0.75), 30.0),
    ],
)
def test_what_the_first_frame_held_leaves_no_ghost(
    label: str, box: tuple[float, float, float, float], level: float
) -> None:
    # The first frame becomes the background; during the warm-up that follows it must be learnt away, not
    # protected as foreground (where it would linger for a minute as a ghost in its zone).
    frames = list(scene(60))
    frames[0] = type(frames[0])("cam", 0.0, _with_patch(frames[0].luma_hw, box, level), True, chroma_level=10.0)
    results = run((LEFT, RIGHT), frames)
    assert active_zones(results, after_s=PARAMS.warmup_s) == set(), label


def _sweep(n: int, seams: bool, strength: float = 1.6) -> list[np.ndarray]:
    """A pool of light (``1 + strength`` times brighter at its centre) crossing a textured scene (a headlight
    beam), on flat seams or not."""
    base = background()
    if seams:
        # Flat strips (kerbs, painted lines) where the texture test cannot tell light from an object.
        for x in range(20, 320, 24):
            base[:, x : x + 3] = 120
    h, w = base.shape
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    rng = np.random.default_rng(7)
    frames = []
    for i in range(n):
        cx = -60 + 440 * max(0, i - 20) / (n - 20)
        pool = 1.0 + strength * np.exp(-(((xx - cx) / 45) ** 2 + ((yy - 120) / 40) ** 2) / 2)
        img = base.astype(np.float32) * pool + rng.normal(0, 2.0, base.shape)
        frames.append(np.clip(img, 0, 255).astype(np.uint8))
    return frames


@pytest.mark.parametrize(
    ("seams", "strength"),
    [(False, 1.4), (True, 1.4), (True, 1.6)],
    ids=["textured ground", "flat seams", "flat seams, brighter"],
)
def test_sweeping_light_pool_raises_no_zone_activity(seams: bool, strength: float) -> None:
    # The texture test explains most of the pool as light; on the seams it cannot decide, and what it leaves
    # there (thin strips and fragments of the pool's blob) must not add up to activity.
    det = MotionDetector((LEFT, RIGHT), PARAMS)
    results = [det.process(f, i * 0.2) for i, f in enumerate(_sweep(60, seams, strength))]
    assert active_zones(results) == set()


@pytest.mark.parametrize(("label", "level"), [("dark person in the pool", 25.0), ("pale person in the pool", 235.0)])
def test_object_inside_a_light_pool_is_still_seen(label: str, level: float) -> None:
    frames = _sweep(60, seams=True)
    det = MotionDetector((LEFT, RIGHT), PARAMS)
    results = []
    for i, f in enumerate(frames):
        if i >= 40:  # the pool is over the left half; a person walks in it
            f = _with_patch(f, (0.2 + 0.01 * (i - 40), 0.5, 0.25 + 0.01 * (i - 40), 0.85), level)
        results.append(det.process(f, i * 0.2))
    assert "left" in active_zones(results, after_s=8.0), label
