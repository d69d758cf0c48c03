"""Frame preparation from decoded video: luma at detection size, privacy zones black, the chroma level."""

from __future__ import annotations

import av
import cv2
import numpy as np
import pytest

from detectors.source import CHROMA_STEP, chroma_level, luma_frame
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


def _chroma_level_cv2(frame: av.VideoFrame) -> float:
    """chroma_level as cv2 and numpy calls, before it was compiled: the compiled form must agree."""
    p1 = frame.planes[1]
    plane1 = np.frombuffer(memoryview(p1), np.uint8).reshape(p1.height, p1.line_size)
    if frame.format.name in ("nv12", "nv21"):
        uv = plane1[::CHROMA_STEP, : 2 * (frame.width // 2)]
        u, v = uv[:, 0::2][:, ::CHROMA_STEP], uv[:, 1::2][:, ::CHROMA_STEP]
    else:
        p2 = frame.planes[2]
        plane2 = np.frombuffer(memoryview(p2), np.uint8).reshape(p2.height, p2.line_size)
        u = plane1[::CHROMA_STEP, : p1.width : CHROMA_STEP]
        v = plane2[::CHROMA_STEP, : p1.width : CHROMA_STEP]
    uv = np.dstack((u, v)).astype(np.float32)
    mean = cv2.mean(uv)
    spread = cv2.mean(cv2.absdiff(uv, np.array([mean[0], mean[1], 0.0, 0.0])))
    return float(spread[0] + spread[1])


@pytest.mark.parametrize("fmt", ["yuv420p", "yuvj420p", "nv12", "nv21", "yuv444p", "yuv422p"])
@pytest.mark.parametrize("saturated", [False, True])
def test_chroma_level_matches_the_cv2_form(fmt: str, saturated: bool) -> None:
    frame = colour_frame(fmt, saturated)
    assert chroma_level(frame) == pytest.approx(_chroma_level_cv2(frame), rel=1e-12, abs=1e-12)
