"""drop_lit of detectors/lit.py at the changed pixels only (compiled from _kernels.c)."""

import numpy as np
import numpy.typing as npt

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
