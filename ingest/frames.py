"""The frame the detectors see: the luma plane at detection size, never RGB."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import numpy.typing as npt

Luma = npt.NDArray[np.uint8]


@dataclass(frozen=True, slots=True)
class LumaFrame:
    """One analysed frame of one camera.

    ``luma_hw`` is the Y plane downscaled to the detection size, shape ``(H, W)``, uint8, privacy
    zones already blacked out. ``t_s`` is the clock events are timed in: wall time (Unix seconds)
    for live cameras, media time from the start of the file for ``sharpeyes detect``.
    """

    camera_id: str
    t_s: float
    luma_hw: Luma
    keyframe: bool

    def __post_init__(self) -> None:
        arr = self.luma_hw
        if arr.ndim != 2 or arr.dtype != np.uint8 or not arr.flags.c_contiguous:
            raise ValueError(f"luma_hw must be a C-contiguous (H, W) uint8 array, got {arr.dtype} {arr.shape}")
