"""Tamper: a covered or blinded lens, a defocused lens, a camera turned away, against a learnt reference.

Once a second (of frame time) the detector measures three things on the working-size frame:

- contrast: the spatial standard deviation of luma. A hand, tape or a flashlight flattens the picture;
- sharpness relative to contrast: mean |Laplacian| / (std + 1), so that a light switch, which scales both,
  leaves it alone while defocus or spray, which remove the fine detail first, make it collapse;
- structure: the normalized correlation of a 32-column gradient image with the reference's. Passers-by
  cover a small share of it; a turned camera shows other edges in other places.

The reference is learnt for a few seconds after start and after every day/night switch (an infrared picture
is a different picture, and not a tamper), then follows slow changes (dusk, seasons) with a time constant of
minutes, and is frozen while anything looks wrong. A condition must hold for ``confirm_s`` before it is
reported and clear for ``clear_s`` before it ends.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import cv2
import numpy as np
import numpy.typing as npt

from detectors import _kernels
from detectors.events import EventType

SIGNATURE_COLUMNS = 32


@dataclass(frozen=True, slots=True)
class TamperParams:
    """Thresholds and timing of tamper detection."""

    check_interval_s: float = 1.0
    learn_s: float = 5.0
    reference_tau_s: float = 300.0
    # Covered: contrast below covered_ratio of the reference's, and flat in absolute terms (below covered_std
    # levels). Both: a camera that was always black, or a dark night scene, is not a covered camera.
    covered_std: float = 12.0
    covered_ratio: float = 0.3
    # Defocus: sharpness (relative to contrast) below this share of the reference's.
    defocus_ratio: float = 0.5
    # Moved: structure correlation with the reference below this.
    moved_similarity: float = 0.55
    confirm_s: float = 3.0
    clear_s: float = 3.0

    def __post_init__(self) -> None:
        if self.check_interval_s <= 0 or self.learn_s < 0 or self.reference_tau_s <= 0:
            raise ValueError("TamperParams: check_interval_s and reference_tau_s must be > 0, learn_s >= 0")
        for name in ("covered_ratio", "defocus_ratio", "moved_similarity"):
            value = getattr(self, name)
            if not 0.0 <= value <= 1.0:
                raise ValueError(f"TamperParams.{name} must be in [0, 1], got {value!r}")


@dataclass(frozen=True, slots=True)
class TamperFeatures:
    """One check's measurements (exposed for the benchmark and for tuning)."""

    mean: float
    std: float
    sharpness: float
    similarity: float | None


def _signature_size(shape: tuple[int, ...]) -> tuple[int, int]:
    h, w = shape[0], shape[1]
    return SIGNATURE_COLUMNS, max(4, round(SIGNATURE_COLUMNS * h / w))


def _signature_keep(valid_hw: npt.NDArray[np.uint8]) -> npt.NDArray[np.float32]:
    """1 where a signature sample lies wholly outside privacy zones, 0 elsewhere (both gradients)."""
    keep = cv2.resize(valid_hw, _signature_size(valid_hw.shape), interpolation=cv2.INTER_AREA) == 255
    return np.tile(keep.ravel(), 2).astype(np.float32)


def _signature(small_hw: npt.NDArray[np.uint8], keep: npt.NDArray[np.float32] | None) -> npt.NDArray[np.float32] | None:
    """Unit-norm gradient image at 32 columns; None for a flat picture (no structure to compare).

    ``keep`` (see :func:`_signature_keep`) zeroes the samples that privacy zones touch.
    """
    tiny = np.asarray(cv2.resize(small_hw, _signature_size(small_hw.shape), interpolation=cv2.INTER_AREA), np.uint8)
    th, tw = tiny.shape
    vec = np.empty(2 * tw * th, np.float32)
    # Both 3x3 Sobel gradients, the privacy samples zeroed (privacy zones are black in both pictures: their edges
    # would make any two views look alike), less their mean: one compiled call (detectors/_kernels.c), the values
    # of cv2.spatialGradient, numpy and cv2.mean, whose five calls cost ~20 us in the engine every second.
    _kernels.gradient_vector(tiny, vec if keep is None else keep, vec, tw, th, keep is not None)
    norm = math.sqrt(float(np.dot(vec, vec)))
    # Below ~1 level of gradient per sample there is no structure: a covered lens, a black frame.
    if norm <= vec.size**0.5:
        return None
    vec *= 1.0 / norm
    return vec


class TamperDetector:
    """One camera's tamper state. :meth:`check` returns the confirmed condition, or None."""

    def __init__(self, params: TamperParams) -> None:
        self.params = params
        self.relearn(float("-inf"))
        self._shape: tuple[int, int] | None = None
        self._valid: npt.NDArray[np.uint8] | None = None
        self._keep: npt.NDArray[np.float32] | None = None

    def relearn(self, t_s: float) -> None:
        """Forget the reference: learn a new one from the next ``learn_s`` seconds (start, IR switch)."""
        self._learn_from: float | None = None
        self._ref_std = self._ref_sharp = 0.0
        self._ref_sig: npt.NDArray[np.float32] | None = None
        self._learnt = 0
        self._next_check = t_s
        self._suspect: EventType | None = None
        self._suspect_since = 0.0
        self.condition: EventType | None = None
        self._clear_since: float | None = None
        self.features: TamperFeatures | None = None

    def mode_switched(
        self, t_s: float, small_hw: npt.NDArray[np.uint8], valid_hw: npt.NDArray[np.uint8] | None = None
    ) -> None:
        """The camera switched day/night: learn a new reference, unless the picture has gone blank.

        A hand or tape over the lens also drains the colour, which looks like the infrared switch; such a
        picture must stay compared with the old reference, not become the new one.
        """
        std = float(cv2.meanStdDev(small_hw, mask=valid_hw)[1][0, 0])
        if self._ref_sig is not None and self._classify(std, 1e9, None):
            return
        self.relearn(t_s)

    @property
    def suspect(self) -> EventType | None:
        """The condition seen at the last check, confirmed or not yet (None when the picture looked right)."""
        return self._suspect if self._suspect is not None else self.condition

    def due(self, t_s: float) -> bool:
        """True when a check is due at ``t_s`` (the caller skips the work otherwise)."""
        return t_s >= self._next_check

    def check(
        self,
        t_s: float,
        small_hw: npt.NDArray[np.uint8],
        recalibrating: bool,
        valid_hw: npt.NDArray[np.uint8] | None = None,
    ) -> EventType | None:
        """Measure ``small_hw`` and return the confirmed tamper condition at ``t_s``.

        ``valid_hw`` (255 = counts) leaves out privacy-masked pixels, which are black whatever the lens sees.
        """
        p = self.params
        self._next_check = t_s + p.check_interval_s
        if small_hw.shape != self._shape:
            self._shape = (small_hw.shape[0], small_hw.shape[1])
            self.relearn(t_s)
            self._next_check = t_s + p.check_interval_s
        # Contrast and mean |Laplacian| in one compiled pass (detectors/_kernels.c), the values of cv2.meanStdDev
        # and of cv2.Laplacian, convertScaleAbs and mean: four calls that cost ~30 us in the engine, every second.
        h, w = small_hw.shape
        valid = small_hw if valid_hw is None else valid_hw
        mean, std, lap = _kernels.tamper_stats(small_hw, valid, w, h, valid_hw is not None)
        sharp = lap / (std + 1.0)
        if valid_hw is not self._valid:
            # The privacy mask is the camera's, the same array every frame: its signature samples once.
            self._valid = valid_hw
            self._keep = None if valid_hw is None else _signature_keep(valid_hw)
        sig = _signature(small_hw, self._keep)
        sim = float(np.dot(sig, self._ref_sig)) if sig is not None and self._ref_sig is not None else None
        self.features = TamperFeatures(mean, std, sharp, sim)
        if self._learn_from is None:
            self._learn_from = t_s
        learning = t_s - self._learn_from < p.learn_s
        if learning or self._ref_sig is None:
            if sig is not None:
                self._learn(std, sharp, sig, 1.0 / (self._learnt + 1))
            return None
        now = self._classify(std, sharp, sim)
        if sig is not None and now is None and not recalibrating and self.condition is None and self._suspect is None:
            self._learn(std, sharp, sig, min(1.0, p.check_interval_s / p.reference_tau_s))
        return self._confirm(t_s, now)

    def _learn(self, std: float, sharp: float, sig: npt.NDArray[np.float32], a: float) -> None:
        self._learnt += 1
        self._ref_std += a * (std - self._ref_std)
        self._ref_sharp += a * (sharp - self._ref_sharp)
        if self._ref_sig is None:
            ref = sig.copy()
        else:  # one cv2 call instead of three numpy temporaries
            ref = np.asarray(cv2.addWeighted(self._ref_sig, 1 - a, sig, a, 0.0), dtype=np.float32).ravel()
        norm = math.sqrt(float(np.dot(ref, ref)))
        if norm > 1e-6:
            ref *= np.float32(1.0 / norm)
        self._ref_sig = ref

    def _classify(self, std: float, sharp: float, sim: float | None) -> EventType | None:
        p = self.params
        if std < p.covered_std and std < p.covered_ratio * self._ref_std:
            return EventType.TAMPER_COVERED
        if sharp < p.defocus_ratio * self._ref_sharp:
            return EventType.TAMPER_DEFOCUS
        if sim is not None and sim < p.moved_similarity:
            return EventType.TAMPER_MOVED
        return None

    def _confirm(self, t_s: float, now: EventType | None) -> EventType | None:
        p = self.params
        if now != self._suspect:
            self._suspect, self._suspect_since = now, t_s
        if now is not None and now != self.condition and t_s - self._suspect_since >= p.confirm_s:
            self.condition, self._clear_since = now, None
        elif now is None and self.condition is not None:
            if self._clear_since is None:
                self._clear_since = t_s
            if t_s - self._clear_since >= p.clear_s:
                self.condition, self._clear_since = None, None
        elif now is not None:
            self._clear_since = None
        return self.condition
