"""Baseline motion detectors for the accuracy benchmark, behind the same event logic as ours.

- :class:`FrigateAnalyzer`: Frigate's ImprovedMotionDetector rebuilt from its published defaults (luma resized to
  100 px high, contrast stretched between the 4th and 96th percentiles averaged over the last 50 frames, Gaussian
  blur sigma 1, pixel threshold 30, one dilation, contours over 10 px, background weight 0.01 and 0.2 while
  calibrating, blended in only after 10 frames of persistent motion, recalibration when over 80 % changed,
  calibrated again under 5 % and at most 4 boxes).
- :class:`Mog2Analyzer`: ``cv2.createBackgroundSubtractorMOG2()`` with its defaults; shadow pixels (127) are not
  counted as foreground.

Both turn their masks into per-zone changed fractions and feed :class:`detectors.events.EventTracker` with the
same :class:`EventParams` as ours, so only the pixel-level detector differs.
"""

from __future__ import annotations

from collections import deque

import cv2
import numpy as np
import numpy.typing as npt

from detectors.analyzer import Analysis
from detectors.events import Event, EventParams, EventTracker
from detectors.motion import MotionResult, ZoneActivity
from detectors.zones import Zone, ZoneKind, zone_masks
from ingest.frames import LumaFrame

U8 = npt.NDArray[np.uint8]


class _ZoneMasks:
    def __init__(self, zones: tuple[Zone, ...], width: int, height: int) -> None:
        self.width, self.height = width, height
        self.detect = tuple(z for z in zones if z.kind is ZoneKind.DETECT)
        self.masks = tuple(np.where(m, 255, 0).astype(np.uint8) for m in zone_masks(self.detect, width, height))
        self.pixels = tuple(max(1, int(np.count_nonzero(m))) for m in self.masks)
        exclude = tuple(z for z in zones if z.kind is ZoneKind.EXCLUDE)
        self.excluded: npt.NDArray[np.bool_] | None = (
            np.logical_or.reduce(zone_masks(exclude, width, height)) if exclude else None
        )

    def activity(self, mask: U8) -> tuple[ZoneActivity, ...]:
        out = []
        for zone, zm, px in zip(self.detect, self.masks, self.pixels, strict=True):
            in_zone = cv2.bitwise_and(mask, zm)
            count = cv2.countNonZero(in_zone)
            if count:
                x, y, w, h = cv2.boundingRect(in_zone)
                box = (x / self.width, y / self.height, (x + w) / self.width, (y + h) / self.height)
                out.append(ZoneActivity(zone.name, count / px, box))
        return tuple(out)


class FrigateAnalyzer:
    """Frigate's default motion detector per camera, feeding our event lifecycle."""

    name = "Frigate defaults"

    def __init__(self, camera_id: str, zones: tuple[Zone, ...], events: EventParams) -> None:
        self._zones = zones
        self._events = EventTracker(camera_id, events)
        self._shape: tuple[int, int] | None = None
        self._masks: _ZoneMasks | None = None
        self._avg: npt.NDArray[np.float32] | None = None
        self._contrast: deque[tuple[float, float]] = deque(maxlen=50)
        self._calibrating = True
        self._motion_frames = 0

    def process(self, frame: LumaFrame) -> Analysis:
        """One frame through the rebuilt detector and the shared event logic."""
        luma = frame.luma_hw
        if luma.shape != self._shape:
            self._shape = (luma.shape[0], luma.shape[1])
            height = 100
            width = max(1, round(luma.shape[1] * height / luma.shape[0]))
            self._masks = _ZoneMasks(self._zones, width, height)
            self._avg = np.zeros((height, width), np.float32)
            self._contrast.clear()
            self._calibrating, self._motion_frames = True, 0
        assert self._masks is not None and self._avg is not None
        m = self._masks
        small = cv2.resize(luma, (m.width, m.height), interpolation=cv2.INTER_NEAREST)
        lo, hi = np.percentile(small, [4, 96])
        self._contrast.append((float(lo), float(hi)))
        mean_lo = float(np.mean([c[0] for c in self._contrast]))
        mean_hi = float(np.mean([c[1] for c in self._contrast]))
        if mean_lo < mean_hi:
            stretched = np.clip(small, mean_lo, mean_hi)
            small = ((stretched - mean_lo) / (mean_hi - mean_lo) * 255).astype(np.uint8)
        if m.excluded is not None:
            small[m.excluded] = 0
        blurred = cv2.GaussianBlur(small, (3, 3), 1.0)
        diff = cv2.absdiff(blurred, cv2.convertScaleAbs(self._avg))
        _, thresh = cv2.threshold(diff, 30, 255, cv2.THRESH_BINARY)
        thresh = np.asarray(cv2.dilate(thresh, np.ones((3, 3), np.uint8), iterations=1), dtype=np.uint8)
        contours, _ = cv2.findContours(thresh, cv2.RETR_EXTERNAL, cv2.CHAIN_APPROX_SIMPLE)
        kept = [c for c in contours if cv2.contourArea(c) > 10]
        total = sum(cv2.contourArea(c) for c in kept)
        pct = total / (m.width * m.height)
        motion = np.zeros_like(thresh)
        if kept:
            cv2.drawContours(motion, kept, -1, 255, -1)
        if self._calibrating and pct < 0.05 and len(kept) <= 4:
            self._calibrating = False
        if pct > 0.8:
            self._calibrating = True
        alpha = 0.2 if self._calibrating else 0.01
        if kept:
            self._motion_frames += 1
            if self._motion_frames >= 10:
                cv2.accumulateWeighted(blurred, self._avg, alpha)
        else:
            cv2.accumulateWeighted(blurred, self._avg, alpha)
            self._motion_frames = 0
        zones = () if self._calibrating else m.activity(np.asarray(motion, dtype=np.uint8))
        result = MotionResult(frame.t_s, pct, zones, self._calibrating)
        events = self._events.update(result)
        return Analysis(tuple(events), bool(zones), "frigate", result)

    def flush(self, t_s: float) -> list[Event]:
        """End every open event."""
        return self._events.flush(t_s)


class Mog2Analyzer:
    """OpenCV's MOG2 with its defaults on the detection frame, feeding our event lifecycle."""

    name = "MOG2 defaults"

    def __init__(self, camera_id: str, zones: tuple[Zone, ...], events: EventParams) -> None:
        self._zones = zones
        self._events = EventTracker(camera_id, events)
        self._shape: tuple[int, int] | None = None
        self._masks: _ZoneMasks | None = None
        self._mog = cv2.createBackgroundSubtractorMOG2()

    def process(self, frame: LumaFrame) -> Analysis:
        """One frame through MOG2 and the shared event logic."""
        luma = frame.luma_hw
        if luma.shape != self._shape:
            self._shape = (luma.shape[0], luma.shape[1])
            self._masks = _ZoneMasks(self._zones, luma.shape[1], luma.shape[0])
            self._mog = cv2.createBackgroundSubtractorMOG2()
        assert self._masks is not None
        raw = self._mog.apply(luma)
        fg = np.asarray(cv2.threshold(raw, 200, 255, cv2.THRESH_BINARY)[1], dtype=np.uint8)  # 127 = shadow
        if self._masks.excluded is not None:
            fg[self._masks.excluded] = 0
        zones = self._masks.activity(fg)
        pct = cv2.countNonZero(fg) / fg.size
        result = MotionResult(frame.t_s, pct, zones, False)
        events = self._events.update(result)
        return Analysis(tuple(events), bool(zones), "mog2", result)

    def flush(self, t_s: float) -> list[Event]:
        """End every open event."""
        return self._events.flush(t_s)
