"""Light or object: the texture test keeps objects and drops what a change of light explains."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest

import detectors.lit as lit_module
from detectors.lit import drop_lit, lit_mask

F32 = npt.NDArray[np.float32]


def _textured(seed: int, shape: tuple[int, int] = (90, 160), mean: float = 100.0, amp: float = 25.0) -> F32:
    rng = np.random.default_rng(seed)
    noise = cv2.GaussianBlur(rng.normal(0.0, 1.0, shape).astype(np.float32), (0, 0), 1.2)
    return np.asarray(np.clip(mean + amp * noise / noise.std(), 0, 255), dtype=np.float32)


def _reference_lit(img: F32, ref: F32) -> npt.NDArray[np.bool_]:
    """The test as first written (square root and division), to check the rewritten one against."""
    k = (5, 5)
    mi, mr = cv2.blur(img, k), cv2.blur(ref, k)
    vi = cv2.blur(img * img, k) - mi * mi
    vr = cv2.blur(ref * ref, k) - mr * mr
    cov = cv2.blur(img * ref, k) - mi * mr
    ncc = cov / np.sqrt(np.maximum(vi * vr, 1e-6))
    gain2 = (mi * mi + 1.0) / (mr * mr + 1.0)
    lit = (ncc > 0.5) & (vr > 9.0) & (vi > 0.25 * gain2 * vr)
    lit |= (img >= 245) & (ref >= 230)
    lit |= (mi > 200) & (mr > 170) & (vi < 0.3 * vr)
    return np.asarray(lit)


def test_the_rewritten_test_matches_the_original_formula() -> None:
    ref = _textured(1)
    cases = [
        ref * 1.6,  # lit
        ref * 0.5,  # shadow
        _textured(2),  # another surface
        np.clip(ref * 3.0, 0, 255),  # blinding light: saturated
        np.full_like(ref, 120.0),  # a flat object over texture
    ]
    for img in cases:
        img = np.round(img).astype(np.float32)
        got = lit_mask(img, ref) == 255
        want = _reference_lit(img, ref)
        # Float rounding may flip a pixel sitting exactly on a threshold, never more.
        assert np.count_nonzero(got != want) <= 2


def test_light_over_texture_is_dropped_and_an_object_is_kept() -> None:
    bg = _textured(3)
    frame = bg.copy()
    frame[20:60, 20:70] *= 1.5  # a lamp's pool
    frame[30:70, 100:130] = 255.0 - bg[30:70, 100:130]  # an object: its own texture (here the negative)
    small = np.asarray(np.clip(np.round(frame), 0, 255), dtype=np.uint8)
    changed = np.zeros(bg.shape, np.uint8)
    changed[20:60, 20:70] = 255
    changed[30:70, 100:130] = 255
    left = drop_lit(small, bg, changed)
    assert left == np.count_nonzero(changed)
    # The pool is mostly lit: what little the test could not decide has no 3x3 core left. The object stays
    # (but for a rim where the 5x5 window straddles the unchanged ground).
    assert np.count_nonzero(changed[20:60, 20:70]) < 0.05 * 40 * 50
    assert np.count_nonzero(changed[30:70, 100:130]) > 0.9 * 40 * 30


def test_nothing_lit_leaves_the_mask_alone() -> None:
    bg = _textured(5)
    small = np.asarray(255.0 - bg, dtype=np.uint8)  # every texture inverted: correlation -1 everywhere
    changed = np.zeros(bg.shape, np.uint8)
    changed[10:40, 10:60] = 255
    before = changed.copy()
    assert drop_lit(small, bg, changed) == np.count_nonzero(before)
    assert np.array_equal(changed, before)


def test_16_and_32_bit_labels_drop_the_same_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    bg = _textured(7)
    frame = bg.copy()
    changed = np.zeros(bg.shape, np.uint8)
    rng = np.random.default_rng(7)
    for i in range(24):  # blobs of every kind: lit pools, objects, and ones half lit
        y, x = int(rng.integers(0, 80)), int(rng.integers(0, 148))
        h, w = int(rng.integers(3, 10)), int(rng.integers(3, 12))
        frame[y : y + h, x : x + w] = bg[y : y + h, x : x + w] * 1.5 if i % 3 else 255.0 - bg[y : y + h, x : x + w]
        changed[y : y + h, x : x + w] = 255
    small = np.asarray(np.clip(np.round(frame), 0, 255), dtype=np.uint8)
    masks = []
    for limit in (lit_module.MAX_16BIT_LABEL, 0):  # 0: every frame takes the 32-bit path
        monkeypatch.setattr(lit_module, "MAX_16BIT_LABEL", limit)
        mask = changed.copy()
        drop_lit(small, bg, mask)
        masks.append(mask)
    assert np.array_equal(masks[0], masks[1])
    assert 0 < np.count_nonzero(masks[0]) < np.count_nonzero(changed)
