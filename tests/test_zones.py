"""Zones: validation, rasterisation at any size, privacy masking, and the optional arming schedule."""

from __future__ import annotations

import numpy as np
import pytest
from pydantic import ValidationError

from detectors.schedule import ArmingSchedule, WeeklyInterval
from detectors.zones import Zone, ZoneKind, ZoneSet, apply_privacy, privacy_mask, zone_masks

SQUARE = ((0.25, 0.25), (0.75, 0.25), (0.75, 0.75), (0.25, 0.75))
WHOLE = ((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0))


@pytest.mark.parametrize(
    ("polygon", "width", "height", "share"),
    [(SQUARE, 160, 90, 0.25), (WHOLE, 160, 90, 1.0), (WHOLE, 7, 5, 1.0), (SQUARE, 320, 240, 0.25)],
)
def test_masks_cover_their_share_of_the_frame(
    polygon: tuple[tuple[float, float], ...], width: int, height: int, share: float
) -> None:
    (mask,) = zone_masks((Zone(name="z", polygon=polygon),), width, height)
    assert mask.shape == (height, width)
    assert mask.mean() == pytest.approx(share, abs=0.05)
    assert not mask.flags.writeable


@pytest.mark.parametrize(
    ("data", "message"),
    [
        ({"name": "z", "polygon": [[0, 0], [1, 0]]}, "at least 3"),
        ({"name": "z", "polygon": [[0, 0], [1, 1], [1, 0], [0, 0.5]]}, "self-intersecting"),
        ({"name": "z", "polygon": [[0, 0], [0.001, 0], [0, 0.001]]}, "degenerate"),
        ({"name": "z", "polygon": [[0, 0], [1.5, 0], [0, 1]]}, "less than or equal to 1"),
        ({"name": "", "polygon": list(SQUARE)}, "name"),
        (
            {
                "name": "z",
                "kind": "privacy",
                "polygon": list(SQUARE),
                "schedule": {"intervals": [{"start": "08:00", "end": "09:00"}]},
            },
            "only allowed on 'detect'",
        ),
    ],
)
def test_bad_zones_say_what_is_wrong(data: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Zone.model_validate(data)


def test_zone_set_needs_unique_names_and_a_detect_zone() -> None:
    z = Zone(name="a", polygon=SQUARE)
    with pytest.raises(ValidationError, match="unique"):
        ZoneSet(zones=(z, z))
    with pytest.raises(ValidationError, match="detect"):
        ZoneSet(zones=(Zone(name="p", kind=ZoneKind.PRIVACY, polygon=SQUARE),))


def test_schedule_defaults_to_always_armed_and_round_trips() -> None:
    plain = Zone(name="a", polygon=SQUARE)
    assert plain.schedule is None and plain.armed_at(0.0)
    timed = Zone(
        name="b",
        polygon=SQUARE,
        schedule=ArmingSchedule(intervals=(WeeklyInterval(start="22:00", end="06:00"),)),
    )
    assert Zone.model_validate_json(timed.model_dump_json()) == timed
    assert hash(timed)  # zones key the mask caches
    assert timed.armed_at(23 * 3600.0) and not timed.armed_at(12 * 3600.0)


@pytest.mark.parametrize("channels", [None, 3])
def test_apply_privacy_blacks_out_only_privacy_zones(channels: int | None) -> None:
    zones = (Zone(name="d", polygon=WHOLE), Zone(name="p", kind=ZoneKind.PRIVACY, polygon=SQUARE))
    shape = (90, 160) if channels is None else (90, 160, channels)
    img = np.full(shape, 200, np.uint8)
    apply_privacy(img, zones)
    mask = privacy_mask(zones, 160, 90)
    assert mask is not None
    assert (img[mask] == 0).all() and (img[~mask] == 200).all()
    assert privacy_mask((zones[0],), 160, 90) is None
