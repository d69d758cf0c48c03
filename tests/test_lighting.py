"""Day/night decisions: the infrared switch by colour, the luma fallback, confirmation and hysteresis."""

from __future__ import annotations

import pytest

from detectors.lighting import LightingParams, LightingTracker, LightMode

P = LightingParams(confirm_s=2.0)


def run(samples: list[tuple[float, float, float | None]]) -> tuple[LightingTracker, list[float]]:
    tracker = LightingTracker(P)
    switches = [t for t, luma, chroma in samples if tracker.update(t, luma, chroma)]
    return tracker, switches


def series(
    t0: float, t1: float, luma: float, chroma: float | None, step: float = 0.5
) -> list[tuple[float, float, float | None]]:
    n = round((t1 - t0) / step)
    return [(t0 + i * step, luma, chroma) for i in range(n)]


@pytest.mark.parametrize(
    ("samples", "mode", "switches"),
    [
        (series(0, 5, 120, 12.0), LightMode.DAY, []),
        (series(0, 5, 120, 0.2), LightMode.NIGHT, []),  # the first frame sets the mode silently
        (series(0, 5, 60, 12.0) + series(5, 10, 140, 0.3), LightMode.NIGHT, [7.0]),  # IR on: grey and brighter
        (series(0, 5, 140, 0.3) + series(5, 10, 90, 8.0), LightMode.DAY, [7.0]),  # IR off at dawn
        (series(0, 5, 120, 12.0) + series(5, 6, 120, 0.3) + series(6, 10, 120, 12.0), LightMode.DAY, []),  # blip
        (series(0, 5, 120, 12.0) + series(5, 10, 120, 1.8), LightMode.DAY, []),  # between the thresholds: stay
        (series(0, 5, 120, None) + series(5, 10, 20, None), LightMode.NIGHT, [7.0]),  # no colour cue: dark is night
        (series(0, 5, 20, None) + series(5, 10, 55, None), LightMode.NIGHT, []),  # hysteresis without colour
    ],
    ids=["day", "night-at-start", "ir-on", "ir-off", "blip", "hysteresis", "luma-dark", "luma-hysteresis"],
)
def test_mode(samples: list[tuple[float, float, float | None]], mode: LightMode, switches: list[float]) -> None:
    tracker, got = run(samples)
    assert tracker.mode is mode
    assert got == switches


@pytest.mark.parametrize(
    ("kwargs", "field"),
    [
        ({"mono_chroma": 3.0, "colour_chroma": 2.0}, "mono_chroma"),
        ({"dark_luma": 80.0, "light_luma": 70.0}, "dark_luma"),
    ],
)
def test_bad_params_name_the_field(kwargs: dict[str, float], field: str) -> None:
    with pytest.raises(ValueError, match=field):
        LightingParams(**kwargs)
