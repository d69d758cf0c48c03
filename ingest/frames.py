"""The frame the detectors see: the luma plane at detection size, never RGB."""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np
import numpy.typing as npt

Luma = npt.NDArray[np.uint8]


class DecodeMode(StrEnum):
    """How much of a camera's stream is decoded right now."""

    IDLE = "idle"  # keyframes only, one analysis per keyframe (or fewer, once quiet for minutes)
    ACTIVE = "active"  # every frame decoded, analysed at the detection rate


@dataclass(frozen=True, slots=True)
class LumaFrame:
    """One analysed frame of one camera.

    ``luma_hw`` is the Y plane downscaled to the detection size, shape ``(H, W)``, uint8, privacy
    zones already blacked out. ``t_s`` is the clock events are timed in: wall time (Unix seconds)
    for live cameras, media time from the start of the file for ``sharpeyes detect``.

    Optional, set by the ingest engine: ``interval_s`` is the time since this camera's previous analysed
    frame (None for the first one after a (re)connect): the analysis rate changes from about 1/s (idle,
    keyframes) to the detection rate (active), so a detector that adapts a background per frame can make
    its adaptation per second instead. ``mode`` is the decode mode the frame was produced in.
    """

    camera_id: str
    t_s: float
    luma_hw: Luma
    keyframe: bool
    interval_s: float | None = None
    mode: DecodeMode | None = None

    def __post_init__(self) -> None:
        arr = self.luma_hw
        if arr.ndim != 2 or arr.dtype != np.uint8 or not arr.flags.c_contiguous:
            raise ValueError(f"luma_hw must be a C-contiguous (H, W) uint8 array, got {arr.dtype} {arr.shape}")
