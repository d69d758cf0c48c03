"""From a decoded ``av.VideoFrame`` to the frame the detectors see: luma at detection size, privacy zones
blacked out, and the chroma level the day/night logic needs. Workers and `sharpeyes detect` share this."""

from __future__ import annotations

from dataclasses import dataclass

import av
import av.video.plane
import cv2
import numpy as np

from detectors.zones import Zone, privacy_mask
from ingest.frames import LumaFrame
from ingest.reader import downscale, luma_view

# Planar formats whose planes 1 and 2 are U and V; nv12/nv21 interleave both in plane 1.
_PLANAR_UV = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p"})
_INTERLEAVED_UV = frozenset({"nv12", "nv21"})
# Every 8th chroma sample in both directions: 880 samples at 640x360, and still a stable mean.
CHROMA_STEP = 8


@dataclass(frozen=True, slots=True)
class ChromaLumaFrame(LumaFrame):
    """A :class:`LumaFrame` that also carries ``chroma_level`` (see :func:`chroma_level`), None when unknown."""

    chroma_level: float | None = None


def _plane(plane: av.video.plane.VideoPlane, height: int) -> np.ndarray:
    return np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(height, plane.line_size)


def _spread(u: np.ndarray, v: np.ndarray) -> float:
    # Both planes' samples as one 2-channel float32 image, so that each cv2 call serves both: 4 calls instead of
    # 8 (and numpy's own mean would cost four array temporaries), on every analysed frame.
    uv = np.empty((u.shape[0], u.shape[1], 2), np.float32)
    uv[..., 0] = u
    uv[..., 1] = v
    mean = cv2.mean(uv)
    spread = cv2.mean(cv2.absdiff(uv, np.array([mean[0], mean[1], 0.0, 0.0])))
    return float(spread[0] + spread[1])


def chroma_level(frame: av.VideoFrame) -> float | None:
    """How colourful the picture is: mean |U - mean U| + mean |V - mean V| over a sparse grid of chroma
    samples, in 8-bit levels; None when the frame is not YUV.

    About 0 for a monochrome (infrared) picture, whatever constant tint the camera or the converter leaves in
    it (swscale's grey is U = V = 127 or 129); 3-20 for a colour scene.
    """
    name = frame.format.name
    if name not in _PLANAR_UV and name not in _INTERLEAVED_UV:
        return None
    planes = frame.planes  # PyAV builds this tuple on every access
    ch = planes[1].height
    if name in _PLANAR_UV:
        cw = planes[1].width
        u = _plane(planes[1], ch)[::CHROMA_STEP, :cw:CHROMA_STEP]
        v = _plane(planes[2], ch)[::CHROMA_STEP, :cw:CHROMA_STEP]
        return _spread(u, v)
    uv = _plane(planes[1], ch)[::CHROMA_STEP, : 2 * (frame.width // 2)]
    return _spread(uv[:, 0::2][:, ::CHROMA_STEP], uv[:, 1::2][:, ::CHROMA_STEP])


def luma_frame(
    frame: av.VideoFrame,
    camera_id: str,
    t_s: float,
    size: tuple[int, int],
    zones: tuple[Zone, ...],
) -> ChromaLumaFrame:
    """The detection frame of ``frame``: Y plane downscaled to ``size`` (w, h), privacy zones black."""
    small = downscale(luma_view(frame), *size)
    if small.base is not None:
        small = small.copy()  # same size as the source: never mask the decoder's own buffer
    mask = privacy_mask(zones, size[0], size[1])
    if mask is not None:
        small[mask] = 0
    return ChromaLumaFrame(camera_id, t_s, small, bool(frame.key_frame), chroma_level=chroma_level(frame))
