"""Per-zone activity: which zones see a walker, boxes, exclusions, disarmed zones."""

from __future__ import annotations

import numpy as np
import pytest

from detectors.activity import ZoneCounter
from detectors.zones import Zone
from tests.detector_fixtures import CORNER, LEFT, RIGHT, TOP_EXCLUDE, WHOLE, scene
from tests.test_motion import PARAMS, WALKER, active_zones, run


@pytest.mark.parametrize(
    ("zones", "expected"),
    [
        ((LEFT, RIGHT), {"left", "right"}),  # crosses from the left half into the right one
        ((WHOLE,), {"whole"}),  # a zone covering the whole frame
        ((CORNER,), set()),  # an empty zone: nothing ever moves there
        ((LEFT, CORNER), {"left"}),
        ((LEFT, Zone(name="low", kind="exclude", polygon=((0, 0.45), (1, 0.45), (1, 1), (0, 1)))), set()),
        ((WHOLE, TOP_EXCLUDE), {"whole"}),  # an exclude zone elsewhere changes nothing
    ],
    ids=["two-halves", "whole-frame", "empty-zone", "empty-and-busy", "excluded", "exclude-elsewhere"],
)
def test_walker_activity_per_zone(zones: tuple[Zone, ...], expected: set[str]) -> None:
    results = run(zones, scene(70, **WALKER))  # type: ignore[arg-type]
    assert active_zones(results) == expected


def test_box_of_activity_follows_the_object() -> None:
    results = run((WHOLE,), scene(40, **WALKER))  # type: ignore[arg-type]
    boxes = [a.bbox for r in results for a in r.zones if a.bbox is not None]
    assert boxes
    x0, y0, x1, y1 = boxes[-1]
    assert 0 <= x0 < x1 <= 1 and 0 <= y0 < y1 <= 1
    assert y0 < 0.55 and y1 > 0.75  # the box spans the object's height (0.5-0.8)


def test_zone_counter_respects_disarmed_zones() -> None:
    w, h = 160, 90
    counter = ZoneCounter((LEFT, RIGHT), w, h)
    changed = np.zeros((h, w), np.uint8)
    changed[30:60, 10:30] = 255
    armed = counter.activity(changed, PARAMS, (True, True))
    assert [a.zone for a in armed] == ["left"]
    assert counter.activity(changed, PARAMS, (False, True)) == ()
