"""The compiled motion stages (detectors/_kernels.c) against the cv2 calls they replace, pixel for pixel."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from detectors import _kernels
from detectors.lit import KERNEL3, cores_with_rim

U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]
EDGE_RANGE = np.array([10.0])


def _cv2_points(
    small: U8, pred: F32, dev: F32, keep: U8 | None, prev: U8, k: float, floor: int
) -> tuple[U8, U8, U8, U8]:
    """The point-wise and 3x3 stages as MotionStack.step ran them in cv2 before they were compiled."""
    pred8 = cv2.convertScaleAbs(pred)
    edge = cv2.subtract(cv2.morphologyEx(pred8, cv2.MORPH_GRADIENT, KERNEL3), EDGE_RANGE)
    diff = cv2.subtract(cv2.absdiff(small, pred8), edge)
    thr = cv2.convertScaleAbs(dev, None, k)
    cv2.max(thr, np.array([float(floor)]), thr)
    changed = np.asarray(cv2.compare(diff, thr, cv2.CMP_GT), np.uint8)
    cores_with_rim(changed, changed)
    if keep is not None:
        cv2.bitwise_and(changed, keep, changed)
    toggled = cv2.bitwise_xor(changed, prev)
    return np.asarray(pred8, np.uint8), np.asarray(diff, np.uint8), changed, np.asarray(toggled, np.uint8)


def _case(seed: int, h: int = 90, w: int = 160) -> tuple[U8, F32, F32, U8, U8]:
    rng = np.random.default_rng(seed)
    bg = cv2.GaussianBlur(rng.normal(120, 50, (h, w)).astype(np.float32), (0, 0), float(rng.uniform(0.5, 3)))
    pred = np.clip(bg, 0, 260).astype(np.float32)  # a lit prediction may exceed 255: saturates
    # Halves round to even in cv2 (cvRound): put some exactly on .5.
    pred[rng.random((h, w)) < 0.05] = np.float32(100.5)
    small = np.clip(pred + rng.normal(0, 6, (h, w)), 0, 255).astype(np.uint8)
    for _ in range(int(rng.integers(0, 8))):
        y, x = int(rng.integers(-5, h)), int(rng.integers(-5, w))
        small[max(0, y) : y + int(rng.integers(2, 20)), max(0, x) : x + int(rng.integers(2, 20))] = rng.integers(0, 255)
    dev = np.abs(rng.normal(2, 2, (h, w))).astype(np.float32)
    dev[rng.random((h, w)) < 0.05] = np.float32(2.125)  # x4 = 8.5: a tie
    prev = np.where(rng.random((h, w)) < 0.1, 255, 0).astype(np.uint8)
    keep = np.full((h, w), 255, np.uint8)
    keep[: h // 3, : w // 4] = 0
    return small, pred, dev, keep, prev


@pytest.mark.parametrize("shape", [(90, 160), (120, 160), (7, 5), (1, 9)])
@pytest.mark.parametrize("use_keep", [False, True])
def test_motion_points_match_the_cv2_calls(shape: tuple[int, int], use_keep: bool) -> None:
    h, w = shape
    for seed in range(20):
        small, pred, dev, keep, prev = _case(seed, h, w)
        want = _cv2_points(small, pred, dev, keep if use_keep else None, prev, 4.0, 8)
        got = [np.empty((h, w), np.uint8) for _ in range(4)]
        prev_c = prev.copy()
        pred8, diff, changed, toggled = got
        count = _kernels.motion_points(
            small, pred, dev, keep, prev_c, pred8, diff, changed, toggled, w, h, 4.0, 8, 10, use_keep
        )
        assert count == cv2.countNonZero(want[2])
        for name, a, b in zip(("pred8", "diff", "changed", "toggled"), got, want, strict=True):
            assert np.array_equal(a, b), f"seed {seed}: {name} differs in {np.count_nonzero(a != b)} pixels"
        assert np.array_equal(prev_c, want[2])  # prev becomes this frame's changed mask


def test_motion_points_names_a_wrong_argument() -> None:
    small, pred, dev, keep, prev = _case(0)
    a, b, c, d = (np.empty_like(small) for _ in range(4))
    with pytest.raises(ValueError, match="deviation has 14400 bytes"):
        _kernels.motion_points(small, pred, dev.astype(np.uint8), keep, prev, a, b, c, d, 160, 90, 4.0, 8, 10, False)
    with pytest.raises(ValueError, match=r"threshold must be in 0\.\.255, got 300"):
        _kernels.motion_points(small, pred, dev, keep, prev, a, b, c, d, 160, 90, 4.0, 300, 10, False)


@pytest.mark.parametrize("shape", [(90, 160), (120, 160), (3, 4), (1, 7)])
@pytest.mark.parametrize("masked", [False, True])
def test_tamper_stats_match_the_cv2_calls(shape: tuple[int, int], masked: bool) -> None:
    h, w = shape
    rng = np.random.default_rng(h * w)
    for _ in range(10):
        img = rng.integers(0, 256, (h, w), dtype=np.uint8)
        img[: h // 2] = 255 - img[: h // 2] // 8  # a bright, flat part and a saturating Laplacian
        valid = np.where(rng.random((h, w)) < 0.7, 255, 0).astype(np.uint8) if masked else None
        mean_a, std_a = cv2.meanStdDev(img, mask=valid)
        lap = cv2.mean(cv2.convertScaleAbs(cv2.Laplacian(img, cv2.CV_16S, ksize=3)), mask=valid)[0]
        got = _kernels.tamper_stats(img, img if valid is None else valid, w, h, valid is not None)
        assert got == pytest.approx((mean_a[0, 0], std_a[0, 0], lap), rel=1e-12, abs=1e-9)


def _cv2_gain_ratio(small_grid: U8, bg_grid: F32, band: float, median: int) -> tuple[F32, bool]:
    """The lighting grid's ratio and unity test as cv2 calls, before they were compiled."""
    bias = np.array([6.0])
    ratio = np.asarray(cv2.divide(cv2.add(small_grid, bias, dtype=cv2.CV_32F), cv2.add(bg_grid, bias)), np.float32)
    low, high = cv2.minMaxLoc(ratio)[:2]
    if low > 1.0 / band and high < band:
        return ratio, True
    if min(ratio.shape) < median:  # no full median window: the map is computed
        return ratio, False
    inside = cv2.inRange(ratio, np.array([1.0 / band]), np.array([band]))
    per_window = cv2.boxFilter(inside, cv2.CV_32F, (median, median), normalize=False, borderType=cv2.BORDER_REPLICATE)
    return ratio, bool(cv2.minMaxLoc(per_window)[0] >= 255.0 * (median * median // 2 + 1))


@pytest.mark.parametrize("shape", [(18, 32), (24, 32), (5, 5), (3, 32)])
def test_gain_ratio_matches_the_cv2_calls(shape: tuple[int, int]) -> None:
    gh, gw = shape
    rng = np.random.default_rng(gw * gh)
    outcomes = set()
    for _ in range(200):
        bg = rng.uniform(0, 250, (gh, gw)).astype(np.float32)
        gain = rng.choice([1.0, 1.03, 1.3, 0.7])
        small = np.clip(np.round(bg * gain + rng.normal(0, 1, (gh, gw))), 0, 255).astype(np.uint8)
        for _ in range(int(rng.integers(0, 8))):  # people and cars: a few cells off
            y, x = int(rng.integers(0, gh)), int(rng.integers(0, gw))
            small[y : y + 3, x : x + 2] = rng.integers(0, 255)
        want, want_unity = _cv2_gain_ratio(small, bg, 1.06, 5)
        got = np.empty_like(want)
        got_unity = _kernels.gain_ratio(small, bg, got, gw, gh, 6.0, 1.06, 5)
        assert np.array_equal(got, want)
        assert got_unity == want_unity
        outcomes.add(got_unity)
    if gw >= 32 and gh >= 18:  # the working sizes: both outcomes were exercised
        assert outcomes == {True, False}


def _cv2_shifted(pred8: U8, small: U8) -> bool:
    """The shake test as cv2.norm calls, before it was compiled."""
    h, w = small.shape
    cur = small[1 : h - 1, 1 : w - 1]
    in_place = cv2.norm(cur, pred8[1 : h - 1, 1 : w - 1], cv2.NORM_L1)
    shifts = [(dx, dy) for dy in (-1, 0, 1) for dx in (-1, 0, 1) if dx or dy]
    return any(
        cv2.norm(cur, pred8[1 + dy : h - 1 + dy, 1 + dx : w - 1 + dx], cv2.NORM_L1) < in_place for dx, dy in shifts
    )


@pytest.mark.parametrize("shape", [(90, 160), (120, 160), (3, 3), (4, 9)])
def test_shifted_matches_the_cv2_calls(shape: tuple[int, int]) -> None:
    h, w = shape
    rng = np.random.default_rng(h + w)
    outcomes = set()
    for _ in range(60):
        scene = np.asarray(
            cv2.GaussianBlur(rng.integers(0, 256, (h + 4, w + 4), dtype=np.uint8), (0, 0), 1.5), np.uint8
        )
        dx, dy = int(rng.integers(-2, 3)), int(rng.integers(-2, 3))
        pred8 = np.ascontiguousarray(scene[2 : h + 2, 2 : w + 2])
        small = np.ascontiguousarray(scene[2 + dy : h + 2 + dy, 2 + dx : w + 2 + dx])
        got = _kernels.shifted(pred8, small, w, h)
        assert got == _cv2_shifted(pred8, small)
        outcomes.add(got)
    if h >= 90:
        assert outcomes == {True, False}


@pytest.mark.parametrize("shape", [(18, 32), (24, 32), (4, 4), (1, 5)])
@pytest.mark.parametrize("masked", [False, True])
def test_gradient_vector_matches_the_cv2_calls(shape: tuple[int, int], masked: bool) -> None:
    h, w = shape
    rng = np.random.default_rng(h * w)
    for _ in range(20):
        grid = rng.integers(0, 256, (h, w), dtype=np.uint8)
        keep = (rng.random(2 * h * w) < 0.8).astype(np.float32)
        gx, gy = cv2.spatialGradient(grid)
        want = np.concatenate((gx, gy), axis=None, dtype=np.float32)
        if masked:
            want *= keep
        want -= np.float32(cv2.mean(want)[0])
        got = np.empty(2 * h * w, np.float32)
        _kernels.gradient_vector(grid, keep, got, w, h, masked)
        assert np.array_equal(got, want)
