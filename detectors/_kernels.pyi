"""The motion kernel's compiled stages (detectors/_kernels.c): drop_lit of lit.py, and the point-wise stages."""

from typing import Any

import numpy as np
import numpy.typing as npt

# Anything with the buffer protocol (a numpy array, a PyAV plane); collections.abc.Buffer is Python 3.12+.
Buffer = Any

def drop_lit(
    small: npt.NDArray[np.uint8],
    pred: npt.NDArray[np.float32],
    changed: npt.NDArray[np.uint8],
    lit: npt.NDArray[np.uint8],
    rest: npt.NDArray[np.uint8],
    w: int,
    h: int,
    x0: int,
    y0: int,
    x1: int,
    y1: int,
    /,
) -> bool:
    """In the ROI ``[x0, x1) x [y0, y1)``: unmark the changed pixels the texture test finds lit (255 in ``lit``),
    and move the other pixels of blobs at least half lit from ``changed`` to ``rest``; True if there were any.
    All five images are C-contiguous ``h x w`` (``pred`` float32, the others uint8); ``changed``, ``lit`` and
    ``rest`` are written. Raises ``ValueError`` naming the argument of a wrong size."""

def motion_points(
    small: npt.NDArray[np.uint8],
    pred: npt.NDArray[np.float32],
    deviation: npt.NDArray[np.float32],
    keep: npt.NDArray[np.uint8],
    prev: npt.NDArray[np.uint8],
    pred8: npt.NDArray[np.uint8],
    diff: npt.NDArray[np.uint8],
    changed: npt.NDArray[np.uint8],
    toggled: npt.NDArray[np.uint8],
    w: int,
    h: int,
    noise_factor: float,
    threshold: int,
    edge_range: int,
    use_keep: bool,
    /,
) -> int:
    """The point-wise and 3x3 stages of ``MotionStack.step`` for one camera's ``h x w`` frame, as its cv2 calls
    did them: writes ``pred8``, ``diff``, ``changed`` and ``toggled``, sets ``prev`` to ``changed``, and returns
    how many pixels changed. ``pred`` and ``deviation`` are float32, the others uint8; all C-contiguous. Raises
    ``ValueError`` naming the argument of a wrong size."""

def chroma_spread(
    u: Buffer, v: Buffer, rows: int, cols: int, line: int, xstride: int, step: int, voffset: int, /
) -> float:
    """Mean absolute deviation of U plus that of V over every ``step``-th sample of every ``step``-th row; a
    sample of row ``y``, column ``j`` lies at byte ``y * line + j * xstride`` (plus ``voffset`` in ``v``)."""

def tamper_stats(
    small: npt.NDArray[np.uint8], valid: npt.NDArray[np.uint8], w: int, h: int, use_valid: bool, /
) -> tuple[float, float, float]:
    """Mean, standard deviation and mean |Laplacian| (3x3, saturated at 255) of an ``h x w`` uint8 frame over the
    pixels where ``valid`` is set (all unless ``use_valid``), as the tamper check's cv2 calls compute them."""

def gain_ratio(
    small_grid: npt.NDArray[np.uint8],
    bg_grid: npt.NDArray[np.float32],
    ratio: npt.NDArray[np.float32],
    gw: int,
    gh: int,
    bias: float,
    band: float,
    median: int,
    /,
) -> bool:
    """Write ``(small_grid + bias) / (bg_grid + bias)`` into ``ratio`` (``gh x gw`` float32); True when the
    ``median x median``-filtered gain would lie within the unity band ``(1/band, band)`` in every cell."""

def shifted(pred8: npt.NDArray[np.uint8], small: npt.NDArray[np.uint8], w: int, h: int, /) -> bool:
    """True when ``pred8`` shifted by one pixel in some direction matches ``small`` better (sum of absolute
    differences over the frame less its rim) than in place; both ``h x w`` uint8, C-contiguous."""

def gradient_vector(
    grid: npt.NDArray[np.uint8],
    keep: npt.NDArray[np.float32],
    out: npt.NDArray[np.float32],
    w: int,
    h: int,
    use_keep: bool,
    /,
) -> None:
    """Both 3x3 Sobel gradients of the ``h x w`` uint8 ``grid`` into ``out`` (``2 h w`` float32: x, then y),
    times ``keep`` when ``use_keep``, less their mean: the tamper signature before its normalisation."""
