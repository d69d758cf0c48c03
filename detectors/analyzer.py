"""One camera's detectors behind one call: the only detector API the workers and `sharpeyes detect` use."""

from __future__ import annotations

from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING

import cv2
import numpy as np
import numpy.typing as npt

from detectors.activity import ZoneCounter, result_from
from detectors.events import Event, EventParams, EventTracker, EventType
from detectors.lighting import LightingParams, LightingTracker, LightMode
from detectors.lit import KERNEL3
from detectors.motion import KernelOut, MotionParams, MotionResult, MotionStack, work_size
from detectors.tamper import TamperDetector, TamperParams
from detectors.zones import Zone, ZoneKind, privacy_mask
from ingest.frames import LumaFrame

if TYPE_CHECKING:
    from config.settings import Settings

TAMPER_TYPES = (EventType.TAMPER_COVERED, EventType.TAMPER_DEFOCUS, EventType.TAMPER_MOVED)

# Infrared pictures are flatter and grainier: a lower floor, which the noise term lifts where the grain is strong.
NIGHT_MOTION = MotionParams(name="night", threshold=8, noise_factor=4.5)


@dataclass(frozen=True, slots=True)
class AnalyzerConfig:
    """Parameters of every detector of a camera: a day and a night motion set, lifecycle, lighting, tamper."""

    motion: MotionParams = field(default_factory=MotionParams)
    events: EventParams = field(default_factory=EventParams)
    night: MotionParams = NIGHT_MOTION
    lighting: LightingParams = field(default_factory=LightingParams)
    tamper: TamperParams = field(default_factory=TamperParams)
    tamper_enabled: bool = True

    def params_for(self, mode: LightMode) -> MotionParams:
        """The motion parameter set of ``mode``."""
        return self.night if mode is LightMode.NIGHT else self.motion

    @classmethod
    def from_settings(cls, s: Settings) -> AnalyzerConfig:
        """Build the configuration from the settings (the workers and `sharpeyes detect` both use this)."""
        day = MotionParams(
            name="day",
            threshold=s.motion_threshold,
            zone_min_fraction=s.zone_min_fraction,
            noise_factor=s.detect_noise_factor,
        )
        night = MotionParams(
            name="night",
            threshold=s.detect_night_threshold,
            zone_min_fraction=s.zone_min_fraction,
            noise_factor=s.detect_night_noise_factor,
        )
        events = EventParams(
            min_duration_s=s.event_min_duration_s,
            end_quiet_s=s.event_end_quiet_s,
            cooldown_s=s.event_cooldown_s,
            zone_min_fraction=s.zone_min_fraction,
            loiter_s=s.loiter_s,
            max_alerts_per_hour=s.alert_cap_per_hour,
            tamper_cooldown_s=s.tamper_cooldown_s,
        )
        tamper = TamperParams(confirm_s=s.tamper_confirm_s, defocus_ratio=s.tamper_defocus_ratio)
        return cls(motion=day, events=events, night=night, tamper=tamper, tamper_enabled=s.tamper_enabled)


@dataclass(frozen=True, slots=True)
class Analysis:
    """What one frame produced: lifecycle events, and whether an armed zone shows activity right now
    (the ingest engine escalates a camera to full-rate decoding on it)."""

    events: tuple[Event, ...]
    active: bool
    params: str
    motion: MotionResult | None = field(default=None, compare=False)


class CameraAnalyzer:
    """Motion, lighting and tamper analysis of one camera, fed its frames in order. Not thread-safe.

    ``clock_offset_s`` maps frame times to Unix time for zone arming schedules (0 for live cameras, whose
    frames carry Unix time); None ignores schedules (an offline file with no known start time).
    """

    def __init__(
        self,
        camera_id: str,
        zones: tuple[Zone, ...],
        config: AnalyzerConfig,
        *,
        clock_offset_s: float | None = 0.0,
    ) -> None:
        self.camera_id = camera_id
        self.config = config
        self.zones = zones
        self._clock_offset = clock_offset_s
        self._detect = tuple(z for z in zones if z.kind is ZoneKind.DETECT)
        self._scheduled = any(z.schedule is not None for z in self._detect)
        self._lighting = LightingTracker(config.lighting)
        self._tamper = TamperDetector(config.tamper)
        self._events = EventTracker(camera_id, config.events)
        self._shape: tuple[int, int] | None = None
        self._stack: MotionStack | None = None
        self._slot = 0
        self._counter: ZoneCounter | None = None
        self._valid: npt.NDArray[np.uint8] | None = None
        self._last_t = 0.0

    @property
    def mode(self) -> LightMode:
        """The camera's current day/night mode."""
        return self._lighting.mode or LightMode.DAY

    def attach(self, shape: tuple[int, int], stack: MotionStack | None = None, slot: int = 0) -> None:
        """Use slot ``slot`` of ``stack`` (a batch), or a private one-slot stack, for frames of ``shape``."""
        p = self.config.motion
        w, h = work_size(shape[1], shape[0], p.work_width)
        if stack is None or (stack.width, stack.height) != (w, h):
            stack, slot = MotionStack(1, w, h), 0
        self._shape, self._stack, self._slot = shape, stack, slot
        self._counter = ZoneCounter(self.zones, w, h)
        stack.reset(slot, self._counter.exclude_hw)
        privacy = privacy_mask(self.zones, w, h)
        # Tamper ignores privacy-masked pixels and their rim (the 3x3 gradients straddle it).
        valid = None if privacy is None else cv2.erode(np.where(privacy, 0, 255).astype(np.uint8), KERNEL3)
        self._valid = None if valid is None else np.asarray(valid, dtype=np.uint8)

    def uses(self, stack: MotionStack) -> bool:
        """True when this camera's kernel state lives in ``stack``."""
        return self._stack is stack

    def _armed(self, t_s: float) -> tuple[bool, ...]:
        if not self._scheduled or self._clock_offset is None:
            return (True,) * len(self._detect)
        return tuple(z.armed_at(t_s + self._clock_offset) for z in self._detect)

    def prepare(self, frame: LumaFrame) -> tuple[MotionParams, bool]:
        """First half of :meth:`process`: load the frame into the stack, pick the parameter set; True when a
        recalibration is forced. :class:`detectors.batch.BatchAnalyzer` runs the kernel step in between."""
        assert self._stack is not None
        self._stack.load(self._slot, frame.luma_hw)
        mean = float(cv2.mean(self._stack.small[self._slot])[0])
        chroma = getattr(frame, "chroma_level", None)
        switched = self._lighting.update(frame.t_s, mean, chroma)
        if switched:
            self._tamper.mode_switched(frame.t_s, self._stack.small[self._slot], self._valid)
        return self.config.params_for(self.mode), switched

    def finish(self, frame: LumaFrame, params: MotionParams, kernel_out: KernelOut) -> Analysis:
        """Second half of :meth:`process`: zones, events and tamper from the kernel's output."""
        assert self._stack is not None and self._counter is not None
        t = frame.t_s
        self._last_t = t
        armed = self._armed(t)
        result = result_from(kernel_out, self._counter, params, t, armed)
        events: list[Event] = []
        if self.config.tamper_enabled and self._tamper.due(t):
            condition = self._tamper.check(t, self._stack.small[self._slot], result.recalibrating, self._valid)
            for kind in TAMPER_TYPES:
                events.extend(self._events.condition(kind, condition is kind, t, 1.0))
        if self._tamper.suspect is not None:
            # A hand over the lens or a turned camera is reported as tamper, not as motion in every zone.
            result = replace(result, zones=(), recalibrating=True)
        events[:0] = self._events.update(result)
        active = any(a.fraction >= self.config.events.zone_min_fraction for a in result.zones)
        return Analysis(tuple(events), active, params.name, result)

    def process(self, frame: LumaFrame) -> Analysis:
        """Analyse one frame."""
        shape = (frame.luma_hw.shape[0], frame.luma_hw.shape[1])
        if shape != self._shape or self._stack is None:
            # First frame, or the camera changed resolution: masks, background and references start over.
            self.attach(shape)
            self._tamper.relearn(frame.t_s)
        assert self._stack is not None
        params, force = self.prepare(frame)
        out = self._stack.step(self._slot, self._slot + 1, [frame.t_s], [params], [force])[0]
        return self.finish(frame, params, out)

    def flush(self, t_s: float) -> list[Event]:
        """End every open event: the stream ended or the camera was removed."""
        return self._events.flush(t_s)
