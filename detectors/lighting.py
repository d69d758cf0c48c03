"""Day/night: recognise the infrared switch (colour vanishes) and pick the camera's parameter set by itself.

A camera's IR cut filter flips at dusk and dawn: the picture turns monochrome and its luma statistics jump.
With a colour cue (``chroma_level`` on the frame: mean |U-128| + |V-128|) the switch is unambiguous: near
zero is infrared. Without one, the mean luma decides (dark = night), which is the best a luma-only feed can do.
Each switch asks the motion kernel to recalibrate and the tamper detector to learn a new reference, so
neither alerts on it. No operator schedule is involved.
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum


class LightMode(StrEnum):
    """Which parameter set a camera runs."""

    DAY = "day"
    NIGHT = "night"


@dataclass(frozen=True, slots=True)
class LightingParams:
    """Thresholds of the day/night decision, with hysteresis so that a borderline picture does not flap."""

    # Chroma level (luma levels) at or below which the picture is monochrome, i.e. infrared.
    mono_chroma: float = 1.0
    # ... and above which it is colour again.
    colour_chroma: float = 2.5
    # Without a chroma cue: mean luma (0-255) below which it is night, and above which it is day again.
    dark_luma: float = 40.0
    light_luma: float = 70.0
    # A new mode must hold this long before the camera switches (the IR filter clicks once, clouds pass).
    confirm_s: float = 2.0

    def __post_init__(self) -> None:
        if not 0 <= self.mono_chroma < self.colour_chroma:
            raise ValueError(
                f"LightingParams: need 0 <= mono_chroma < colour_chroma, got {self.mono_chroma} / {self.colour_chroma}"
            )
        if not 0 <= self.dark_luma < self.light_luma <= 255:
            raise ValueError(
                f"LightingParams: need 0 <= dark_luma < light_luma <= 255, got {self.dark_luma} / {self.light_luma}"
            )


class LightingTracker:
    """One camera's day/night state."""

    def __init__(self, params: LightingParams) -> None:
        self.params = params
        self.mode: LightMode | None = None
        self._pending: LightMode | None = None
        self._pending_since = 0.0

    def _vote(self, mean_luma: float, chroma: float | None) -> LightMode | None:
        p = self.params
        if chroma is not None:
            if chroma <= p.mono_chroma:
                return LightMode.NIGHT
            if chroma >= p.colour_chroma:
                return LightMode.DAY
            return None
        if mean_luma < p.dark_luma:
            return LightMode.NIGHT
        if mean_luma > p.light_luma:
            return LightMode.DAY
        return None

    def update(self, t_s: float, mean_luma: float, chroma: float | None) -> bool:
        """Observe one frame; True when the camera just switched mode (the first frame sets it silently)."""
        vote = self._vote(mean_luma, chroma)
        if self.mode is None:
            self.mode = vote or LightMode.DAY
            return False
        if vote is None or vote is self.mode:
            self._pending = None
            return False
        if self._pending is not vote:
            self._pending, self._pending_since = vote, t_s
        if t_s - self._pending_since >= self.params.confirm_s:
            self.mode, self._pending = vote, None
            return True
        return False
