"""Light or object: drop the changed pixels that a change of light explains (the motion kernel's texture test).

Light (a headlight beam, a lamp, a cloud edge) and shadow scale the texture under them, so the local correlation
between frame and background stays high; a person or a car brings its own texture. Near white, a strong light
flattens the texture instead (the sensor saturates).

:func:`drop_lit` has two forms that agree pixel for pixel: cv2 on the box around the changed pixels
(:func:`lit_mask` and connected components), and ``detectors/_kernels.c``, the same arithmetic at the changed
pixels only, in one call. A busy frame has a few hundred changed pixels, where the compiled form is several times
cheaper than the forty-odd cv2 calls; where more than ``KERNEL_MAX_FILL`` of the box changed (a light switch),
the cv2 box filters over the whole box are the cheaper.
"""

from __future__ import annotations

from typing import Any

import cv2
import numpy as np
import numpy.typing as npt

from detectors import _kernels

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

KERNEL3 = np.ones((3, 3), np.uint8)
_KERNEL7 = np.ones((7, 7), np.uint8)
# A 5x5 window (20 source pixels at 640x360), correlation above 0.5 with a background that has texture at all
# (variance over 9, i.e. +-3 levels) means the same surface under other light.
NCC_WINDOW = 5
_K = (NCC_WINDOW, NCC_WINDOW)
_NCC_LIT = 0.5
_TEXTURE_VAR = np.array([9.0])
# Light scales the contrast with the brightness: the frame's variance must keep at least this share of
# gain^2 x the background's (a flat object over textured ground may correlate by chance, but has no contrast).
_CONTRAST_KEPT = 0.25
_CLIPPED = np.array([245.0])
_CLIPPED_REF = np.array([230.0])
_WASHED = np.array([200.0])
_WASHED_REF = np.array([170.0])
_WASHED_VAR = 0.3
_ZERO = np.array([0.0])
_ONE = np.array([1.0])
# The most blobs 16-bit labels can number (label 0 is the unchanged ground).
MAX_16BIT_LABEL = 65_535
# The share of the box around the changed pixels that may be changed for the compiled test to be used. Warm, it
# costs about 24 ns per changed pixel, the cv2 form about 86 us plus 17 ns per pixel of the box: on a 160x90
# frame they cross near 12,000 changed pixels, nine tenths of the frame (a light switch); cold, as the engine
# runs them, the cv2 form's forty-odd calls cost more still.
KERNEL_MAX_FILL = 0.75


def cores_with_rim(mask_hw: U8, dst: U8 | None = None) -> U8:
    """What of ``mask_hw`` has a 3x3 core, grown by a 7x7 rim (into ``dst`` when given, in place allowed).

    The motion kernel's opening: it drops specks smaller than 3x3 working pixels, and the wider dilation gives
    real objects back the rim that the shake tolerance and the erosion took (a far-away person is 5x8 pixels).
    """
    out = cv2.erode(mask_hw, KERNEL3, dst)
    return np.asarray(cv2.dilate(out, _KERNEL7, out), dtype=np.uint8)


def lit_mask(img: F32, ref: F32) -> U8:
    """255 where ``img`` shows the surface of ``ref`` under other light (both ``(h, w)`` float32, same shape).

    Equivalent to ``ncc > 0.5 and var_ref > 9 and var_img > 0.25 * gain^2 * var_ref`` (gain^2 the ratio of
    squared local means, each plus 1), written without the square root and the division, or a saturated or
    washed-out picture of a bright background.
    """
    mi, mr = cv2.blur(img, _K), cv2.blur(ref, _K)
    mi2, mr2 = cv2.multiply(mi, mi), cv2.multiply(mr, mr)
    # blur of the product, not sqrBoxFilter: 21 us against 30 us at 160x90
    vi = cv2.subtract(cv2.blur(cv2.multiply(img, img), _K), mi2)
    vr = cv2.subtract(cv2.blur(cv2.multiply(ref, ref), _K), mr2)
    cov = cv2.subtract(cv2.blur(cv2.multiply(img, ref), _K), cv2.multiply(mi, mr))
    # ncc = cov / sqrt(vi vr) > 0.5  <=>  cov > 0 and cov^2 > 0.25 vi vr
    lit = cv2.compare(cv2.multiply(cov, cov), cv2.multiply(vi, vr, scale=_NCC_LIT**2), cv2.CMP_GT)
    cv2.bitwise_and(lit, cv2.compare(cov, _ZERO, cv2.CMP_GT), lit)
    cv2.bitwise_and(lit, cv2.compare(vr, _TEXTURE_VAR, cv2.CMP_GT), lit)
    # vi > 0.25 (mi^2 + 1) / (mr^2 + 1) vr  <=>  vi (mr^2 + 1) > 0.25 (mi^2 + 1) vr
    kept = cv2.compare(
        cv2.multiply(vi, cv2.add(mr2, _ONE)),
        cv2.multiply(cv2.add(mi2, _ONE), vr, scale=_CONTRAST_KEPT),
        cv2.CMP_GT,
    )
    cv2.bitwise_and(lit, kept, lit)
    if cv2.minMaxLoc(img)[1] > _WASHED[0]:  # nothing bright, nothing saturated: most frames stop here
        # A lit background predicting a bright surface, and the frame showing it saturated or washed out.
        clipped = cv2.bitwise_and(cv2.compare(img, _CLIPPED, cv2.CMP_GE), cv2.compare(ref, _CLIPPED_REF, cv2.CMP_GE))
        washed = cv2.bitwise_and(cv2.compare(mi, _WASHED, cv2.CMP_GT), cv2.compare(mr, _WASHED_REF, cv2.CMP_GT))
        cv2.bitwise_and(washed, cv2.compare(vi, cv2.multiply(vr, _ONE, scale=_WASHED_VAR), cv2.CMP_LT), washed)
        cv2.bitwise_or(lit, cv2.bitwise_or(clipped, washed), lit)
    return np.asarray(lit, dtype=np.uint8)


def drop_lit(small_hw: U8, pred_hw: F32, changed_hw: U8, count: int | None = None) -> int:
    """Unmark changed pixels of ``changed_hw`` (in place) whose neighbourhood keeps the background's texture;
    return the count left. ``small_hw`` is the frame, ``pred_hw`` the (lit) background it was compared with,
    all three C-contiguous ``(h, w)`` images; ``count``, when known, is how many pixels ``changed_hw`` has set.

    What light leaves of a blob that is mostly lit (a beam, a lamp's pool) is a lacework of fragments where the
    texture test could not decide (flat ground, saturation): it is kept only where it still has a solid core, as
    the opening asks of any change. Blobs that are mostly not lit (objects) lose only their lit pixels.
    """
    x, y, w, h = cv2.boundingRect(changed_hw)
    m = NCC_WINDOW
    height, width = changed_hw.shape
    x0, y0 = max(0, x - m), max(0, y - m)
    x1, y1 = min(width, x + w + m), min(height, y + h + m)
    roi = changed_hw[y0:y1, x0:x1]
    if count is None:
        count = int(cv2.countNonZero(changed_hw))
    if count <= KERNEL_MAX_FILL * roi.size:
        lit, rest = np.empty_like(changed_hw), np.empty_like(changed_hw)
        if _kernels.drop_lit(small_hw, pred_hw, changed_hw, lit, rest, width, height, x0, y0, x1, y1):
            kept = rest[y0:y1, x0:x1]
            cv2.bitwise_or(roi, cv2.bitwise_and(cores_with_rim(kept), kept), roi)
        return int(cv2.countNonZero(changed_hw))
    lit = lit_mask(small_hw[y0:y1, x0:x1].astype(np.float32), np.ascontiguousarray(pred_hw[y0:y1, x0:x1]))
    lit_changed = cv2.bitwise_and(roi, lit)
    if not cv2.countNonZero(lit_changed):
        return count
    # 16-bit labels (a 160x90 frame has at most 3,600 blobs): OpenCV labels them 2-3x faster than 32-bit ones,
    # and they feed calcHist and take, each a third of the cost of masking and numpy's bincount or where.
    # A working frame with room for more blobs than 16 bits count (a work_width far above the default) takes
    # 32-bit labels, which calcHist reads as float32.
    small_labels = (roi.shape[0] + 1) * (roi.shape[1] + 1) // 4 <= MAX_16BIT_LABEL
    ltype = cv2.CV_16U if small_labels else cv2.CV_32S
    n, cv_labels, stats, _ = cv2.connectedComponentsWithStats(roi, connectivity=8, ltype=ltype)
    labels: npt.NDArray[np.integer[Any]] = np.asarray(cv_labels, dtype=np.uint16 if small_labels else np.int32)
    # Lit pixels per blob: a histogram of the labels where lit (label 0, the unchanged ground, is never a blob).
    counted = labels if small_labels else labels.astype(np.float32)
    lit_per_blob = cv2.calcHist([counted], [0], lit_changed, [n], [0, n]).ravel()
    mostly_lit = 2 * lit_per_blob >= stats[:, cv2.CC_STAT_AREA]
    mostly_lit[0] = False
    cv2.subtract(roi, lit_changed, roi)
    if np.count_nonzero(mostly_lit):
        blobs = np.where(mostly_lit, np.uint8(255), np.uint8(0)).take(labels)
        rest = np.asarray(cv2.bitwise_and(roi, blobs), dtype=np.uint8)
        cv2.subtract(roi, rest, roi)
        cv2.bitwise_or(roi, cv2.bitwise_and(cores_with_rim(rest), rest), roi)
    return int(cv2.countNonZero(changed_hw))
