"""Tamper detection against a learnt reference: covered, blinded, defocused, turned; nuisances that are not."""

from __future__ import annotations

import cv2
import numpy as np
import numpy.typing as npt
import pytest

from detectors.events import EventType
from detectors.tamper import TamperDetector, TamperParams
from tests.detector_fixtures import background

P = TamperParams(learn_s=3.0, confirm_s=3.0, clear_s=2.0)
U8 = npt.NDArray[np.uint8]


def small(seed: int = 1) -> U8:
    return np.asarray(cv2.resize(background(seed=seed), (160, 90), interpolation=cv2.INTER_AREA), dtype=np.uint8)


def noisy(img: U8, rng: np.random.Generator, sigma: float = 0.8) -> U8:
    return np.clip(img + rng.normal(0, sigma, img.shape), 0, 255).astype(np.uint8)


def with_person(img: U8) -> U8:
    out = img.copy()
    out[40:75, 70:80] = 30
    return out


BASE = small()
CHANGES = {
    "covered": np.full_like(BASE, 20),
    "blinded": np.full_like(BASE, 250),
    "defocused": np.asarray(cv2.GaussianBlur(BASE, (0, 0), 2.5), dtype=np.uint8),
    "turned": np.roll(BASE, 80, axis=1)[:, ::-1].copy(),
    "other view": small(seed=9),
    "lights off": (BASE * 0.45).astype(np.uint8),
    "lights on": np.clip(BASE * 1.5, 0, 255).astype(np.uint8),
    "passer-by": with_person(BASE),
    "unchanged": BASE,
}


def run(after: U8, seconds: float = 12.0) -> tuple[list[EventType | None], TamperDetector]:
    det = TamperDetector(P)
    rng = np.random.default_rng(0)
    out = []
    t = 0.0
    while t < 8.0 + seconds:
        img = BASE if t < 8.0 else after
        if det.due(t):
            out.append(det.check(t, noisy(img, rng), recalibrating=False))
        t += 0.2
    return out, det


@pytest.mark.parametrize(
    ("change", "expected"),
    [
        ("covered", EventType.TAMPER_COVERED),
        ("blinded", EventType.TAMPER_COVERED),
        ("defocused", EventType.TAMPER_DEFOCUS),
        ("turned", EventType.TAMPER_MOVED),
        ("other view", EventType.TAMPER_MOVED),
        ("lights off", None),
        ("lights on", None),
        ("passer-by", None),
        ("unchanged", None),
    ],
)
def test_condition_after_the_change(change: str, expected: EventType | None) -> None:
    conditions, _ = run(CHANGES[change])
    assert conditions[-1] is expected
    assert all(c is None for c in conditions[:8]), "nothing before the change"
    if expected is not None:
        first = next(i for i, c in enumerate(conditions) if c is not None)
        assert first - 8 <= 5, "raised within about confirm_s + one check"


def test_condition_clears_after_the_cover_is_removed() -> None:
    det = TamperDetector(P)
    seq = [BASE] * 8 + [CHANGES["covered"]] * 6 + [BASE] * 6
    got = [det.check(float(t), img, False) for t, img in enumerate(seq)]
    assert EventType.TAMPER_COVERED in got and got[-1] is None


def test_size_change_relearns_instead_of_alarming() -> None:
    det = TamperDetector(P)
    for t in range(8):
        det.check(float(t), BASE, False)
    bigger = np.asarray(cv2.resize(background(seed=3), (160, 120)), dtype=np.uint8)
    assert all(det.check(float(t), bigger, False) is None for t in range(8, 20))


def test_mode_switch_relearns_but_not_onto_a_covered_lens() -> None:
    det = TamperDetector(P)
    for t in range(8):
        det.check(float(t), BASE, False)
    det.mode_switched(8.0, CHANGES["covered"])  # the cover drained the colour: not an IR switch
    got = [det.check(float(t), CHANGES["covered"], False) for t in range(8, 14)]
    assert got[-1] is EventType.TAMPER_COVERED
    det.mode_switched(14.0, CHANGES["other view"])  # a real switch: a new picture becomes the reference
    assert all(det.check(float(t), CHANGES["other view"], False) is None for t in range(14, 30))


@pytest.mark.parametrize(
    ("field", "value"), [("defocus_ratio", 1.5), ("check_interval_s", 0.0), ("covered_ratio", -0.1)]
)
def test_bad_params_name_the_field(field: str, value: float) -> None:
    with pytest.raises(ValueError, match=field):
        TamperParams(**{field: value})  # type: ignore[arg-type]
