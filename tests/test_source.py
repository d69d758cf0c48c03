"""Frame preparation from decoded video: luma at detection size, privacy zones black, the chroma level."""

from __future__ import annotations

import av
import numpy as np
import pytest

from detectors.source import chroma_level, luma_frame
from detectors.zones import Zone, ZoneKind
from ingest.reader import detect_size

PRIVACY = Zone(name="p", kind=ZoneKind.PRIVACY, polygon=((0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)))
DETECT = Zone(name="d", polygon=((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)))


def colour_frame(fmt: str, saturated: bool) -> av.VideoFrame:
    rng = np.random.default_rng(0)
    bgr = rng.integers(40, 200, (360, 640, 3), dtype=np.uint8)
    if not saturated:
        bgr[:] = bgr[..., :1]  # grey: B = G = R
    frame = av.VideoFrame.from_ndarray(bgr, format="bgr24")
    return frame.reformat(format=fmt, threads=1)


@pytest.mark.parametrize("fmt", ["yuv420p", "yuvj420p", "nv12", "yuv444p"])
@pytest.mark.parametrize(("saturated", "low", "high"), [(False, 0.0, 1.0), (True, 3.0, 200.0)])
def test_chroma_level(fmt: str, saturated: bool, low: float, high: float) -> None:
    level = chroma_level(colour_frame(fmt, saturated))
    assert level is not None and low <= level <= high


def test_chroma_level_unknown_for_grey_formats() -> None:
    frame = av.VideoFrame.from_ndarray(np.zeros((90, 160), np.uint8), format="gray")
    assert chroma_level(frame) is None


@pytest.mark.parametrize("detect_width", [320, 640, 1280])
def test_luma_frame_size_privacy_and_ownership(detect_width: int) -> None:
    frame = colour_frame("yuv420p", True)
    size = detect_size(frame.width, frame.height, detect_width)
    lf = luma_frame(frame, "cam", 1.5, size, (DETECT, PRIVACY))
    assert lf.luma_hw.shape == (size[1], size[0]) and lf.luma_hw.flags.c_contiguous
    h, w = lf.luma_hw.shape
    assert (lf.luma_hw[: h // 2 - 1, : w // 2 - 1] == 0).all()
    assert lf.luma_hw[h // 2 + 1 :, w // 2 + 1 :].mean() > 20
    assert lf.t_s == 1.5 and lf.chroma_level is not None and lf.chroma_level > 3
