"""One camera's detectors behind one call: the only detector API the workers and `sharpeyes detect` use."""

from __future__ import annotations

from dataclasses import dataclass

from detectors.events import Event, EventParams, EventTracker
from detectors.motion import MotionDetector, MotionParams
from detectors.zones import Zone
from ingest.frames import LumaFrame


@dataclass(frozen=True, slots=True)
class AnalyzerConfig:
    """Parameters of every detector of a camera."""

    motion: MotionParams = MotionParams()
    events: EventParams = EventParams()


@dataclass(frozen=True, slots=True)
class Analysis:
    """What one frame produced: lifecycle events, and whether an armed zone shows activity right now
    (the ingest engine escalates a camera to full-rate decoding on it)."""

    events: tuple[Event, ...]
    active: bool
    params: str


class CameraAnalyzer:
    """Motion, lighting and tamper analysis of one camera, fed its frames in order. Not thread-safe."""

    def __init__(self, camera_id: str, zones: tuple[Zone, ...], config: AnalyzerConfig) -> None:
        self.camera_id = camera_id
        self.config = config
        self._motion = MotionDetector(zones, config.motion)
        self._events = EventTracker(camera_id, config.events)

    def process(self, frame: LumaFrame) -> Analysis:
        """Analyse one frame."""
        result = self._motion.process(frame)
        events = self._events.update(result)
        active = any(a.fraction >= self.config.events.zone_min_fraction for a in result.zones)
        return Analysis(tuple(events), active, self.config.motion.name)

    def flush(self, t_s: float) -> list[Event]:
        """End every open event: the stream ended or the camera was removed."""
        return self._events.flush(t_s)
