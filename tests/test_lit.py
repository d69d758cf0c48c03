"""Light or object: the texture test keeps objects and drops what a change of light explains."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest

import detectors.lit as lit_module
from detectors import _kernels
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
    monkeypatch.setattr(lit_module, "KERNEL_MAX_FILL", -1.0)  # the cv2 form, whose labels these are
    for limit in (lit_module.MAX_16BIT_LABEL, 0):  # 0: every frame takes the 32-bit path
        monkeypatch.setattr(lit_module, "MAX_16BIT_LABEL", limit)
        mask = changed.copy()
        drop_lit(small, bg, mask)
        masks.append(mask)
    assert np.array_equal(masks[0], masks[1])
    assert 0 < np.count_nonzero(masks[0]) < np.count_nonzero(changed)


def _scene_case(seed: int) -> tuple[npt.NDArray[np.uint8], F32, npt.NDArray[np.uint8]]:
    """A frame, its background and a changed mask with lit pools, objects, half-lit blobs and saturated light,
    some at the frame's edges."""
    rng = np.random.default_rng(seed)
    bg = _textured(seed, mean=float(rng.uniform(60, 200)))
    frame = bg + rng.normal(0.0, 2.0, bg.shape).astype(np.float32)
    changed = np.zeros(bg.shape, np.uint8)
    for _ in range(int(rng.integers(1, 12))):
        y, x = int(rng.integers(-3, 88)), int(rng.integers(-3, 156))
        h, w = int(rng.integers(2, 25)), int(rng.integers(2, 30))
        ys, xs = slice(max(0, y), y + h), slice(max(0, x), x + w)
        kind = int(rng.integers(0, 4))
        if kind == 0:
            frame[ys, xs] *= rng.uniform(1.2, 3.0)  # light, possibly saturating
        elif kind == 1:
            frame[ys, xs] = 255.0 - bg[ys, xs]  # an object with its own texture
        elif kind == 2:
            frame[ys, xs] = rng.uniform(0, 255)  # a flat object
        else:
            frame[ys, xs] *= rng.uniform(0.3, 0.8)  # shadow
        changed[ys, xs] = 255
    small = np.asarray(np.clip(np.round(frame), 0, 255), dtype=np.uint8)
    return small, np.asarray(bg, np.float32), changed


def test_compiled_and_cv2_forms_drop_the_same_pixels(monkeypatch: pytest.MonkeyPatch) -> None:
    dropped = 0
    for seed in range(150):
        small, bg, changed = _scene_case(seed)
        if not np.count_nonzero(changed):
            continue
        results = []
        for limit in (1.0, -1.0):  # every frame to the compiled form, then every frame to cv2
            monkeypatch.setattr(lit_module, "KERNEL_MAX_FILL", limit)
            mask = changed.copy()
            results.append((drop_lit(small, bg, mask), mask))
        (n_c, mask_c), (n_cv, mask_cv) = results
        assert np.array_equal(mask_c, mask_cv), f"seed {seed}: {np.count_nonzero(mask_c != mask_cv)} pixels differ"
        assert n_c == n_cv == np.count_nonzero(mask_c)
        dropped += int(np.count_nonzero(changed)) - n_c
    assert dropped > 0  # the cases did exercise the test


def test_the_compiled_form_names_a_wrong_argument() -> None:
    small, bg, changed = _scene_case(1)
    lit, rest = np.empty_like(changed), np.empty_like(changed)
    with pytest.raises(ValueError, match="pred has 14400 bytes"):
        _kernels.drop_lit(small, bg.astype(np.uint8), changed, lit, rest, 160, 90, 0, 0, 160, 90)
    with pytest.raises(ValueError, match="ROI x0=0 y0=0 x1=161"):
        _kernels.drop_lit(small, bg, changed, lit, rest, 160, 90, 0, 0, 161, 90)
    with pytest.raises(ValueError, match="not C-contiguous"):  # a view (numpy refuses it a plain buffer)
        _kernels.drop_lit(small[:, :80], bg, changed, lit, rest, 160, 90, 0, 0, 80, 90)
