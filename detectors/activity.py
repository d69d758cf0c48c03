"""Per-zone activity from the motion kernel's changed mask, and the one-camera motion detector."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt

from detectors.motion import U8, BBox, KernelOut, MotionParams, MotionResult, MotionStack, ZoneActivity, work_size
from detectors.zones import Zone, ZoneKind, zone_masks


class ZoneCounter:
    """Per detect zone activity from a changed mask: changed shares, and boxes for zones over the threshold."""

    def __init__(self, zones: tuple[Zone, ...], width: int, height: int) -> None:
        self.width, self.height = width, height
        self.detect = tuple(z for z in zones if z.kind is ZoneKind.DETECT)
        masks = zone_masks(self.detect, width, height)
        self._masks = tuple(np.where(m, 255, 0).astype(np.uint8) for m in masks)
        self._pixels = tuple(max(1, int(m.sum())) for m in masks)
        exclude = tuple(z for z in zones if z.kind is ZoneKind.EXCLUDE)
        self.exclude_hw: npt.NDArray[np.bool_] | None = (
            np.logical_or.reduce(zone_masks(exclude, width, height)) if exclude else None
        )

    def activity(self, changed: U8, params: MotionParams, armed: tuple[bool, ...]) -> tuple[ZoneActivity, ...]:
        """Activity of each armed detect zone with any changed pixel in it."""
        out = []
        for zone, mask, pixels, on in zip(self.detect, self._masks, self._pixels, armed, strict=True):
            if not on:
                continue
            inside = cv2.bitwise_and(changed, mask)
            f = cv2.countNonZero(inside) / pixels
            if f == 0.0:
                continue
            bbox: BBox | None = None
            if f >= params.zone_min_fraction:
                # Boxes only for zones over the threshold: most frames of most cameras never get here.
                x, y, w, h = cv2.boundingRect(inside)
                bbox = (x / self.width, y / self.height, (x + w) / self.width, (y + h) / self.height)
            out.append(ZoneActivity(zone.name, f, bbox))
        return tuple(out)


class MotionDetector:
    """One camera's motion detector (a one-slot :class:`MotionStack` plus its zones). Fed frames in order."""

    def __init__(self, zones: tuple[Zone, ...], params: MotionParams) -> None:
        self.params = params
        self._zones = zones
        self._detect = tuple(z for z in zones if z.kind is ZoneKind.DETECT)
        self._shape: tuple[int, int] | None = None
        self._stack: MotionStack | None = None
        self._counter: ZoneCounter | None = None

    def _reset(self, shape: tuple[int, int], work_width: int) -> tuple[MotionStack, ZoneCounter]:
        w, h = work_size(shape[1], shape[0], work_width)
        self._shape = shape
        self._stack = MotionStack(1, w, h)
        self._counter = ZoneCounter(self._zones, w, h)
        self._stack.reset(0, self._counter.exclude_hw)
        return self._stack, self._counter

    def process(
        self,
        luma_hw: U8,
        t_s: float,
        params: MotionParams | None = None,
        force_recalibrate: bool = False,
        armed: tuple[bool, ...] | None = None,
    ) -> MotionResult:
        """Update the background with ``luma_hw`` and report per-zone activity."""
        p = params or self.params
        stack, counter = self._stack, self._counter
        if luma_hw.shape != self._shape or stack is None or counter is None:
            # A new resolution (camera reconfigured mid-stream) invalidates masks and background.
            stack, counter = self._reset((luma_hw.shape[0], luma_hw.shape[1]), p.work_width)
        stack.load(0, luma_hw)
        k = stack.step(0, 1, [t_s], [p], [force_recalibrate])[0]
        return result_from(k, counter, p, t_s, armed or (True,) * len(self._detect))


def result_from(
    k: KernelOut, counter: ZoneCounter, p: MotionParams, t_s: float, armed: tuple[bool, ...]
) -> MotionResult:
    """Turn one slot's kernel output into a :class:`MotionResult` (zones only when they can matter)."""
    held = k.recalibrating or k.shaken or k.spread > p.spread_fraction
    zones = () if held or k.changed_fraction == 0.0 else counter.activity(k.changed_hw, p, armed)
    return MotionResult(t_s, k.changed_fraction, zones, held, k.gain, k.spread)
