"""Small in-memory luma scenes for the detector unit tests: textured background, sensor noise, a moving box.

The end-to-end behaviour on real H.264 is covered by tests/test_offline.py and tests/test_cmd_detect.py; these
keep the unit tests fast and their inputs exact.
"""

from __future__ import annotations

from collections.abc import Iterator

import cv2
import numpy as np
import numpy.typing as npt

from detectors.source import ChromaLumaFrame
from detectors.zones import Zone, ZoneKind

U8 = npt.NDArray[np.uint8]

WHOLE = Zone(name="whole", polygon=((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)))
LEFT = Zone(name="left", polygon=((0.0, 0.0), (0.5, 0.0), (0.5, 1.0), (0.0, 1.0)))
RIGHT = Zone(name="right", polygon=((0.5, 0.0), (1.0, 0.0), (1.0, 1.0), (0.5, 1.0)))
CORNER = Zone(name="corner", polygon=((0.0, 0.0), (0.15, 0.0), (0.15, 0.15), (0.0, 0.15)))
TOP_EXCLUDE = Zone(name="top", kind=ZoneKind.EXCLUDE, polygon=((0.0, 0.0), (1.0, 0.0), (1.0, 0.3), (0.0, 0.3)))


def background(height: int = 180, width: int = 320, seed: int = 1) -> U8:
    """A textured scene: blotches and edges, like a street at detection size."""
    rng = np.random.default_rng(seed)
    coarse = cv2.resize(rng.uniform(60, 190, (height // 20 + 1, width // 20 + 1)), (width, height))
    fine = cv2.GaussianBlur(rng.normal(0, 12, (height, width)), (0, 0), 1.2)
    img = np.clip(coarse + fine, 0, 255).astype(np.uint8)
    cv2.line(img, (0, height * 2 // 3), (width, height * 2 // 3), 230, 2)
    return np.asarray(img, dtype=np.uint8)


def scene(
    n: int,
    fps: float = 5.0,
    box: tuple[float, float, float, float] | None = None,
    move: tuple[int, int] = (0, 0),
    t_from: float = 0.0,
    moving_from: int = 0,
    gain: float = 1.0,
    gain_from: int | None = None,
    chroma: float | None = 10.0,
    noise: float = 2.0,
    base: U8 | None = None,
    seed: int = 1,
) -> Iterator[ChromaLumaFrame]:
    """``n`` frames; from frame ``moving_from`` a dark box (normalized x0, y0, x1, y1) moves by ``move`` px/frame.

    From frame ``gain_from`` the whole picture is multiplied by ``gain`` (a light switch).
    """
    bg = background(seed=seed) if base is None else base
    h, w = bg.shape
    rng = np.random.default_rng(seed + 100)
    for i in range(n):
        img = bg.astype(np.float32)
        if box is not None and i >= moving_from:
            k = i - moving_from
            x0, y0 = round(box[0] * w) + move[0] * k, round(box[1] * h) + move[1] * k
            x1, y1 = round(box[2] * w) + move[0] * k, round(box[3] * h) + move[1] * k
            img[max(0, y0) : max(0, y1), max(0, x0) : max(0, x1)] = 25.0
        if gain_from is not None and i >= gain_from:
            img *= gain
        img += rng.normal(0, noise, img.shape)
        luma = np.clip(img, 0, 255).astype(np.uint8)
        yield ChromaLumaFrame("cam", t_from + i / fps, luma, i == 0, chroma_level=chroma)
