"""Motion on the luma plane, for one camera or a stack of cameras: the per-pixel kernel (zones: activity.py).

Per frame and camera, at a working size of about 160 px wide (cv2 calls and the compiled stages of
``detectors/_kernels.c``, no per-pixel Python):

1. area-downscale the detection frame (320x180 becomes 160x90: noise averages out, rain and snow specks fade);
2. illumination gain: the frame/background ratio on a 32-column grid, median-filtered over 5x5 cells and
   upsampled, so lights, clouds and headlight pools (smooth, large) are divided out while a person or a car
   (a few cells) is not;
3. shake-tolerant difference: how far the pixel lies outside the [min, max] of the predicted background in
   its 3x3 neighbourhood (one working pixel = 4 source pixels of camera shake absorbed);
4. noise-adaptive threshold: max(floor, k x the pixel's running deviation measured where nothing moved);
5. opening (3x3) drops specks smaller than 3x3 working pixels (12x12 source pixels at 640x360: rain, snow,
   grain), a dilation gives real objects their rim back; pixels that toggle too often (foliage, water) are ignored;
   a texture test drops what light explains, and what a mostly lit blob leaves must again contain a 3x3 core;
6. selective background update: fast where nothing changed, slow where something did, so a parked car or a
   ghost is absorbed in about a minute while a walker never is (except during the warm-up, which learns all);
7. recalibration: when most of the frame changed at once (light switch, infrared switch) the background is
   re-learnt in about a second and events neither start nor end meanwhile.

All time constants are in seconds of the frame clock, so 5 fps full decoding and 1 fps keyframes-only
analysis behave alike.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from detectors import _kernels
from detectors.lit import drop_lit
from ingest.reader import downscale

BBox = tuple[float, float, float, float]
U8 = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

# Columns of the illumination grid: a cell is 5 px at 160 px. The 5x5-cell median (25 working px, 100 source
# px at 640x360) ignores a person (about 2x4 cells: far from the 13 of 25 that move a median), while a light
# pool spans the window and is divided out.
GAIN_GRID_COLUMNS = 32
GAIN_MEDIAN = 5
# The gain ratio adds this to both terms: dark pixels (night, 0-10) would otherwise give wild ratios.
_GAIN_BIAS = 6.0
# The ratio is median-filtered as log2 steps of 1/40 stop (1.7 %), which a LUT turns back into gains.
_LOG_STEPS = 40.0
_GAIN_LUT = np.asarray(2.0 ** ((np.arange(256, dtype=np.float64) - 128.0) / _LOG_STEPS), dtype=np.float32)
_GAIN_MIN_S, _GAIN_MAX_S = np.array([0.2]), np.array([5.0])
# Local 3x3 range of the background (luma levels) up to which no shake tolerance is given.
_EDGE_RANGE = 10
# The whole picture a quarter brighter or darker than the background at once: lights switched, a cloud, the
# iris. The gain map explains most of it, but the background is re-learnt (about a second, no events) anyway.
_RELIGHT_GAIN = 1.25
# Grid cells within this ratio of the background show no lighting change; while no median window holds a
# majority of other cells, the gain map stays at 1.
_UNITY_GAIN = 1.06
# Spread of a change: the share of 4x3 regions of the frame with more than 1 % of their pixels changed. People
# and cars are compact (one to four regions); shake, and weather that survives the opening, touch most of them.
_SPREAD_GRID = (4, 3)
_SPREAD_CELL = 0.01
_SPREAD_LEVEL = np.array([255 * _SPREAD_CELL])
# From this spread on, the frame is tested for a global shift against the prediction (only then): camera shake.
_SHAKE_CHECK_SPREAD = 0.15
# That test tries the eight one-pixel shifts: a frame that matches the prediction shifted by one working pixel
# better than in place moved by more than half a pixel (2 source pixels at 640x360) as a whole.


@dataclass(frozen=True, slots=True)
class MotionParams:
    """One parameter set of the motion kernel; ``name`` travels with every alert it produces."""

    name: str = "day"
    # Floor of the pixel threshold, in luma levels at working size (the settings' motion_threshold). Sensor
    # noise averages out at working size, so the floor only has to clear compression noise; the noise term
    # below lifts it where the picture is grainy. 10 missed people whose brightness matches the ground's.
    threshold: int = 8
    zone_min_fraction: float = 0.01
    # Threshold = max(threshold, noise_factor x running deviation): rain, snow and IR grain raise it.
    noise_factor: float = 4.0
    background_tau_s: float = 4.0
    # Where something changed the background still follows, slowly: parked cars and ghosts fade in ~minutes.
    foreground_tau_s: float = 90.0
    noise_tau_s: float = 10.0
    flicker_tau_s: float = 20.0
    # Pixels that toggled on more than this share of recent frames (leaves, water) are ignored.
    flicker_limit: float = 0.15
    # More than this share of the frame changed at once: a lighting change, not an intruder.
    recalibrate_fraction: float = 0.35
    # Changes in more than this share of the frame's 4x3 regions at once: shake or weather, held.
    spread_fraction: float = 0.55
    recalibrate_tau_s: float = 0.4
    settle_s: float = 1.5
    warmup_s: float = 3.0
    work_width: int = 160

    def __post_init__(self) -> None:
        for name in ("zone_min_fraction", "flicker_limit", "recalibrate_fraction"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"MotionParams.{name} must be in [0, 1], got {value!r}")
        if not 1 <= self.threshold <= 255:
            raise ValueError(f"MotionParams.threshold must be in 1..255, got {self.threshold!r}")
        if self.work_width < 16:
            raise ValueError(f"MotionParams.work_width must be at least 16, got {self.work_width!r}")


@dataclass(frozen=True, slots=True)
class ZoneActivity:
    """Changed fraction of one detect zone and the normalized box of its changed pixels."""

    zone: str
    fraction: float
    bbox: BBox | None


@dataclass(frozen=True, slots=True)
class MotionResult:
    """What one frame showed: per detect zone activity, and whether the detector was recalibrating."""

    t_s: float
    changed_fraction: float
    zones: tuple[ZoneActivity, ...]
    recalibrating: bool
    # Median illumination gain against the background (1.0 = unchanged); share of grid cells with change.
    gain: float = 1.0
    spread: float = 0.0


def work_size(width: int, height: int, work_width: int) -> tuple[int, int]:
    """Working size for a ``width`` x ``height`` detection frame: at most ``work_width`` wide, even height."""
    w = min(work_width, width)
    h = max(2, round(height * w / width / 2) * 2)
    return w, h


def _scalar(value: float) -> npt.NDArray[np.float64]:
    """A scalar operand for cv2 arithmetic (a 1-element array is broadcast, and it satisfies the stubs)."""
    return np.array([value], dtype=np.float64)


def _alpha(dt_s: float, tau_s: float) -> float:
    return 1.0 - math.exp(-max(0.0, dt_s) / tau_s) if tau_s > 0 else 1.0


@dataclass(frozen=True, slots=True)
class KernelOut:
    """One slot's kernel output; ``changed_hw`` is a view into the stack, valid until its next step."""

    changed_hw: U8
    changed_fraction: float
    spread: float
    gain: float
    recalibrating: bool
    # The whole picture moved against the background (camera shake): nothing in it counts this frame.
    shaken: bool = False


class MotionStack:
    """Background state of ``slots`` cameras of one working size, stacked as ``(slots, h, w)`` arrays.

    ``step`` applies the lighting gain to all stepped slots at once and runs the rest per slot (the point-wise
    and 3x3 stages in one compiled call each). With one slot this is the per-camera detector.
    """

    def __init__(self, slots: int, width: int, height: int) -> None:
        if slots < 1:
            raise ValueError(f"slots must be >= 1, got {slots}")
        self.slots, self.width, self.height = slots, width, height
        shape = (slots, height, width)
        self.small = np.zeros(shape, np.uint8)
        self.background = np.zeros(shape, np.float32)
        self.deviation = np.zeros(shape, np.float32)
        self.flicker = np.zeros(shape, np.float32)
        self.changed = np.zeros(shape, np.uint8)
        self._prev = np.zeros(shape, np.uint8)
        self._gain = np.ones(shape, np.float32)
        self._unity = [True] * slots  # a list: numpy's all() on a few bools costs 7 us cold, every frame
        # The compiled point-wise stage's outputs, read by _finish in the same step.
        self._pred8 = np.zeros(shape, np.uint8)
        self._diff = np.zeros(shape, np.uint8)
        self._toggled = np.zeros(shape, np.uint8)
        self.keep = np.full(shape, 255, np.uint8)
        self._keeps_all = [True] * slots  # no excluded pixel: the mask is skipped
        self._last_t = np.full(slots, np.nan)
        self._settle_until = np.full(slots, -np.inf)
        self._warm_until = np.full(slots, -np.inf)
        self._area = np.full(slots, float(width * height))
        self._grid = (GAIN_GRID_COLUMNS, max(1, round(GAIN_GRID_COLUMNS * height / width)))
        self._ratio = np.zeros((self._grid[1], self._grid[0]), np.float32)  # the lighting grid's ratio, per step

    def reset(self, slot: int, exclude_hw: npt.NDArray[np.bool_] | None = None) -> None:
        """Forget slot ``slot``'s scene (new camera, new size); ``exclude_hw`` marks pixels never counted."""
        self._last_t[slot] = np.nan
        self.deviation[slot] = 0.0
        self.flicker[slot] = 0.0
        self._prev[slot] = 0
        self.keep[slot] = 255
        if exclude_hw is not None:
            self.keep[slot][exclude_hw] = 0
        kept = np.count_nonzero(self.keep[slot])
        self._keeps_all[slot] = kept == self.keep[slot].size
        self._area[slot] = max(1.0, float(kept))

    def load(self, slot: int, luma_hw: U8) -> None:
        """Downscale a detection frame into the slot's input row (straight into it: no copy)."""
        downscale(luma_hw, self.width, self.height, self.small[slot])

    def step(
        self, start: int, stop: int, t_s: list[float], params: list[MotionParams], force: list[bool]
    ) -> list[KernelOut]:
        """Process slots ``start:stop`` (their inputs already loaded) at frame times ``t_s``."""
        n = stop - start
        h, w = self.height, self.width
        rows = slice(start, stop)
        small, bg = self.small[rows], self.background[rows]
        gains: list[float] = []
        fresh: list[bool] = []
        for i in range(n):
            slot = start + i
            first = math.isnan(self._last_t[slot])
            fresh.append(first)
            if first:
                bg[i] = small[i]
                self._warm_until[slot] = t_s[i] + params[i].warmup_s
                self._gain[slot] = 1.0
                self._unity[slot] = True
                gains.append(1.0)
            else:
                gains.append(self._gain_map(slot))
        # Most frames of most cameras see no lighting change: then the background itself is the prediction
        # (read only until each slot's update in _finish, which comes after that slot's last use of it).
        pred: F32 = bg.reshape(n * h, w)
        if not all(self._unity[start:stop]):
            pred = np.asarray(cv2.multiply(pred, self._gain[rows].reshape(n * h, w)), dtype=np.float32)
        pred3 = pred.reshape(n, h, w)
        out: list[KernelOut] = []
        for i in range(n):
            slot, p = start + i, params[i]
            # The point-wise and 3x3 stages in one compiled call (detectors/_kernels.c: the values of the dozen
            # cv2 calls it replaced, without their per-call overhead). Shake tolerance on edges only: a pixel may
            # move by one working pixel (4 source pixels) without counting, so near a strong edge the local range
            # beyond _EDGE_RANGE is forgiven, while on flat or finely textured ground a faint object keeps its
            # full contrast. Then the noise-adaptive threshold, the opening (specks dropped, real objects given
            # their rim back), the exclusions and the pixels that toggled.
            changed_count = _kernels.motion_points(
                small[i],
                pred3[i],
                self.deviation[slot],
                self.keep[slot],
                self._prev[slot],
                self._pred8[slot],
                self._diff[slot],
                self.changed[slot],
                self._toggled[slot],
                w,
                h,
                p.noise_factor,
                p.threshold,
                _EDGE_RANGE,
                not self._keeps_all[slot],
            )
            out.append(self._finish(slot, t_s[i], p, force[i], fresh[i], gains[i], pred3[i], changed_count))
        return out

    def _gain_map(self, slot: int) -> float:
        gw, gh = self._grid
        small_grid = cv2.resize(self.small[slot], (gw, gh), interpolation=cv2.INTER_AREA)
        bg_grid = cv2.resize(self.background[slot], (gw, gh), interpolation=cv2.INTER_AREA)
        # The ratio and the unity test in one compiled call (detectors/_kernels.c; the values of the cv2 calls
        # add, add, divide, minMaxLoc, inRange, boxFilter and minMaxLoc, which cost ~30 us in the engine). Unity
        # when every cell lies within the band, or when some do not (a person, a car, a lamp's small pool) but no
        # median window holds a majority of them: a median of 25 values of which at least 13 lie within the band
        # lies within it too, so the median-filtered gain would be within the band everywhere.
        ratio = self._ratio
        if _kernels.gain_ratio(
            np.asarray(small_grid, np.uint8),
            np.asarray(bg_grid, np.float32),
            ratio,
            gw,
            gh,
            _GAIN_BIAS,
            _UNITY_GAIN,
            GAIN_MEDIAN,
        ):
            # Nothing brightened or darkened: most frames of most cameras take this path.
            if not self._unity[slot]:
                self._gain[slot].fill(1.0)
                self._unity[slot] = True
            return 1.0
        self._unity[slot] = False
        # log2 of the clipped ratio in _LOG_STEPS steps around 128, in place (cv2: numpy's clip alone costs more).
        cv2.max(ratio, _GAIN_MIN_S, ratio)
        cv2.min(ratio, _GAIN_MAX_S, ratio)
        cv2.log(ratio, ratio)
        steps = cv2.convertScaleAbs(ratio, alpha=_LOG_STEPS / math.log(2.0), beta=128.0)  # rounded to nearest
        if min(gw, gh) >= GAIN_MEDIAN:
            # The median of float32 values (integers here, so the same result as of the uint8 steps): for 8-bit
            # input at 5x5 OpenCV takes its histogram path, whose fixed cost per row makes it about 70 us on this
            # 32x18 grid; the float path is a sorting network, 6 us.
            steps = cv2.medianBlur(steps.astype(np.float32), GAIN_MEDIAN).astype(np.uint8)
        grid = cv2.LUT(steps, _GAIN_LUT)
        cv2.resize(grid, (self.width, self.height), self._gain[slot], interpolation=cv2.INTER_LINEAR)
        return float(cv2.mean(grid)[0])

    def _finish(
        self,
        slot: int,
        t_s: float,
        p: MotionParams,
        force: bool,
        fresh: bool,
        gain: float,
        pred: F32,
        count: int,
    ) -> KernelOut:
        """The rest of ``step`` for one slot, from its point-wise outputs (``changed`` with ``count`` pixels set, and
        the slot's diff, toggles and rounded prediction) and ``pred``, the prediction they were made from."""
        diff, toggled = self._diff[slot], self._toggled[slot]
        changed = self.changed[slot]
        last = self._last_t[slot]
        dt = 0.0 if fresh else min(10.0, max(0.0, t_s - float(last)))
        self._last_t[slot] = t_s
        if count and not fresh:
            count = drop_lit(self.small[slot], pred, changed, count)
        fraction = count / self._area[slot]
        spread = 0.0
        if count:
            regions = cv2.resize(changed, _SPREAD_GRID, interpolation=cv2.INTER_AREA)
            busy = cv2.countNonZero(cv2.compare(regions, _SPREAD_LEVEL, cv2.CMP_GT))
            spread = busy / (_SPREAD_GRID[0] * _SPREAD_GRID[1])
        warming = t_s < self._warm_until[slot]
        relit = not _RELIGHT_GAIN**-1 < gain < _RELIGHT_GAIN
        if force or relit or fraction > p.recalibrate_fraction:
            self._settle_until[slot] = t_s + p.settle_s
        recalibrating = fresh or t_s < self._settle_until[slot]
        bg = self.background[slot]
        small = self.small[slot]
        shaken = not recalibrating and spread >= _SHAKE_CHECK_SPREAD and _shifted(self._pred8[slot], small)
        # Warm-up learns noise and flicker four times faster: a reconnect should not take a minute to settle.
        speed = 4.0 if warming else 1.0
        if shaken:
            pass  # a shaken frame teaches the background nothing: its edges are in the wrong place
        elif recalibrating and not fresh:
            cv2.accumulateWeighted(small, bg, _alpha(dt, p.recalibrate_tau_s))
        elif not fresh:
            still = None if count == 0 else cv2.bitwise_not(changed)
            # During warm-up nothing is known to be an object yet: what the first frame held (a headlight beam, a
            # passing car) must fade with the rest of the picture, not be protected as foreground and linger as a
            # ghost for a minute. Afterwards, changed pixels follow only slowly (a walker is never absorbed).
            cv2.accumulateWeighted(small, bg, _alpha(dt, p.background_tau_s / speed), None if warming else still)
            if still is not None and not warming:
                cv2.accumulateWeighted(small, bg, _alpha(dt, p.foreground_tau_s), changed)
            cv2.accumulateWeighted(diff, self.deviation[slot], _alpha(dt, p.noise_tau_s / speed), still)
            cv2.accumulateWeighted(toggled, self.flicker[slot], _alpha(dt, p.flicker_tau_s / speed))
        if count:
            unstable = cv2.compare(self.flicker[slot], _scalar(255.0 * p.flicker_limit), cv2.CMP_GT)
            if cv2.countNonZero(unstable):
                cv2.bitwise_and(changed, cv2.bitwise_not(unstable), changed)
                fraction = cv2.countNonZero(changed) / self._area[slot]
        if (recalibrating or warming or shaken) and count:
            changed[:] = 0
        return KernelOut(changed, fraction, spread, gain, recalibrating or warming, shaken)


def _shifted(pred8: U8, small: U8) -> bool:
    """True when the frame as a whole moved against the prediction by half a working pixel or more: the
    prediction shifted by one pixel in some direction matches it better (sum of absolute differences) than in
    place.

    People, cars and weather change the sums of all nine placements alike, while a shifted textured background
    does not. Over the accuracy benchmark's scenes and the ingest benchmark's clips, the best shifted placement
    of a still camera's frame summed at least 1.13 times the placement in place (snow under infrared; 1.8 with
    people alone), and of a shaken one at most 0.91 times. A phase correlation, used before, cost three times
    as much and took people crossing the real walkway (vtest) for shake in one frame out of six.
    """
    h, w = small.shape
    if h < 3 or w < 3:
        return False  # no interior to compare
    return _kernels.shifted(pred8, small, w, h)  # the nine sums in one compiled pass
