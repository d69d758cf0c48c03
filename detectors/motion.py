"""Motion on the luma plane: running-average background, per-zone changed fractions, boxes on demand.

Costs are dominated by decoding, not by this (see ``benchmarks/``), but the per-frame path still stays
on uint8/float32 cv2 calls with no per-pixel Python and no colour conversion.
"""

from __future__ import annotations

from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from detectors.zones import Zone, ZoneKind, zone_masks
from ingest.frames import LumaFrame

BBox = tuple[float, float, float, float]


@dataclass(frozen=True, slots=True)
class MotionParams:
    """Tuning of :class:`MotionDetector`; ``name`` travels with every alert it produces."""

    name: str = "day"
    threshold: int = 25
    zone_min_fraction: float = 0.01
    # Background blend per analysed frame: slow enough that a walker is not absorbed within a crossing.
    alpha: float = 0.05
    # More than this fraction of the frame changing at once is a lighting change, not an intruder.
    recalibrate_fraction: float = 0.6


@dataclass(frozen=True, slots=True)
class ZoneActivity:
    """Changed fraction of one detect zone and the normalized box of its changed pixels."""

    zone: str
    fraction: float
    bbox: BBox | None


@dataclass(frozen=True, slots=True)
class MotionResult:
    """What one frame showed: per detect zone activity, and whether the detector was recalibrating."""

    t_s: float
    changed_fraction: float
    zones: tuple[ZoneActivity, ...]
    recalibrating: bool


class MotionDetector:
    """One camera's motion detector. Not thread-safe: one instance per camera, fed in frame order."""

    def __init__(self, zones: tuple[Zone, ...], params: MotionParams) -> None:
        self.params = params
        self._zones = zones
        self._detect = tuple(z for z in zones if z.kind is ZoneKind.DETECT)
        self._exclude = tuple(z for z in zones if z.kind is ZoneKind.EXCLUDE)
        self._shape: tuple[int, int] | None = None
        self._background_hw: npt.NDArray[np.float32] | None = None
        self._detect_masks: tuple[npt.NDArray[np.uint8], ...] = ()
        self._detect_px: tuple[int, ...] = ()
        self._keep_hw: npt.NDArray[np.uint8] | None = None

    def _reset(self, shape: tuple[int, int]) -> None:
        height, width = shape
        self._shape = shape
        self._background_hw = None
        masks = zone_masks(self._detect, width, height)
        self._detect_masks = tuple(m.astype(np.uint8) * 255 for m in masks)
        self._detect_px = tuple(max(1, int(m.sum())) for m in masks)
        if self._exclude:
            excluded = np.logical_or.reduce(zone_masks(self._exclude, width, height))
            self._keep_hw = np.where(excluded, 0, 255).astype(np.uint8)
        else:
            self._keep_hw = None

    def process(self, frame: LumaFrame) -> MotionResult:
        """Update the background with ``frame`` and report per-zone activity."""
        luma = frame.luma_hw
        if luma.shape != self._shape:
            # A new resolution (camera reconfigured mid-stream) invalidates masks and background.
            self._reset((luma.shape[0], luma.shape[1]))
        blurred = cv2.GaussianBlur(luma, (3, 3), 0)
        if self._background_hw is None:
            self._background_hw = blurred.astype(np.float32)
            return MotionResult(frame.t_s, 0.0, (), recalibrating=True)
        diff = cv2.absdiff(blurred, cv2.convertScaleAbs(self._background_hw))
        _, changed = cv2.threshold(diff, self.params.threshold, 255, cv2.THRESH_BINARY)
        if self._keep_hw is not None:
            changed = cv2.bitwise_and(changed, self._keep_hw)
        changed_fraction = cv2.countNonZero(changed) / changed.size
        if changed_fraction > self.params.recalibrate_fraction:
            # Lights switched, IR flipped or the camera re-exposed: adopt the new scene quickly.
            cv2.accumulateWeighted(blurred, self._background_hw, 0.5)
            return MotionResult(frame.t_s, changed_fraction, (), recalibrating=True)
        cv2.accumulateWeighted(blurred, self._background_hw, self.params.alpha)
        if changed_fraction == 0.0:
            return MotionResult(frame.t_s, 0.0, (), recalibrating=False)
        height, width = changed.shape
        activity = []
        for zone, mask, pixels in zip(self._detect, self._detect_masks, self._detect_px, strict=True):
            in_zone = cv2.bitwise_and(changed, mask)
            count = cv2.countNonZero(in_zone)
            if count == 0:
                continue
            fraction = count / pixels
            bbox: BBox | None = None
            if fraction >= self.params.zone_min_fraction:
                x, y, w, h = cv2.boundingRect(in_zone)
                bbox = (x / width, y / height, (x + w) / width, (y + h) / height)
            activity.append(ZoneActivity(zone.name, fraction, bbox))
        return MotionResult(frame.t_s, changed_fraction, tuple(activity), recalibrating=False)
