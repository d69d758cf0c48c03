"""From a decoded ``av.VideoFrame`` to the frame the detectors see: luma at detection size, privacy zones
blacked out, and the chroma level the day/night logic needs. Workers and `sharpeyes detect` share this."""

from __future__ import annotations

from dataclasses import dataclass

import av

from detectors import _kernels
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


def chroma_level(frame: av.VideoFrame) -> float | None:
    """How colourful the picture is: mean |U - mean U| + mean |V - mean V| over a sparse grid of chroma
    samples, in 8-bit levels; None when the frame is not YUV.

    About 0 for a monochrome (infrared) picture, whatever constant tint the camera or the converter leaves in
    it (swscale's grey is U = V = 127 or 129); 3-20 for a colour scene. Compiled (detectors/_kernels.c): as
    numpy and cv2 calls it cost about 45 us per analysed frame in the engine, for 1,800 samples.
    """
    name = frame.format.name
    if name not in _PLANAR_UV and name not in _INTERLEAVED_UV:
        return None
    planes = frame.planes  # PyAV builds this tuple on every access
    p1 = planes[1]
    if name in _PLANAR_UV:
        return _kernels.chroma_spread(p1, planes[2], p1.height, p1.width, p1.line_size, 1, CHROMA_STEP, 0)
    # U and V interleaved in plane 1 (which comes first does not matter: the level adds both)
    return _kernels.chroma_spread(p1, p1, p1.height, frame.width // 2, p1.line_size, 2, CHROMA_STEP, 1)


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
