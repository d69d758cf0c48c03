"""Zones: named polygons in normalized 0..1 image coordinates, validated once and rasterised per frame size.

The same schema is used by the API, the registry, the workers and ``sharpeyes detect``.
"""

from __future__ import annotations

from enum import StrEnum
from functools import lru_cache
from typing import Annotated

import cv2
import numpy as np
import numpy.typing as npt
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from detectors.schedule import ArmingSchedule

# A zone this small (0.01 % of the image) cannot hold a person even at 4K: it is a drawing mistake.
MIN_ZONE_AREA = 1e-4
MAX_ZONE_POINTS = 64
MAX_ZONES = 32

Point = tuple[Annotated[float, Field(ge=0.0, le=1.0)], Annotated[float, Field(ge=0.0, le=1.0)]]
BoolMask = npt.NDArray[np.bool_]


class ZoneKind(StrEnum):
    """What a zone does: raise events, be ignored, or be blacked out before anything looks at it."""

    DETECT = "detect"
    EXCLUDE = "exclude"
    PRIVACY = "privacy"


def _cross(o: Point, a: Point, b: Point) -> float:
    return (a[0] - o[0]) * (b[1] - o[1]) - (a[1] - o[1]) * (b[0] - o[0])


def _segments_cross(p1: Point, p2: Point, q1: Point, q2: Point) -> bool:
    d1, d2 = _cross(q1, q2, p1), _cross(q1, q2, p2)
    d3, d4 = _cross(p1, p2, q1), _cross(p1, p2, q2)
    return (d1 * d2 < 0) and (d3 * d4 < 0)


def polygon_area(points: tuple[Point, ...]) -> float:
    """Unsigned shoelace area of a polygon in normalized units (1.0 is the whole image)."""
    pts = np.asarray(points, dtype=np.float64)
    x, y = pts[:, 0], pts[:, 1]
    return float(abs(np.dot(x, np.roll(y, -1)) - np.dot(y, np.roll(x, -1))) / 2.0)


class Zone(BaseModel):
    """One named polygon; ``kind`` says whether it raises events, is ignored, or is masked out."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=64, pattern=r"^[\w][\w .:/()#+-]*$")
    kind: ZoneKind = ZoneKind.DETECT
    polygon: tuple[Point, ...] = Field(min_length=3, max_length=MAX_ZONE_POINTS)
    schedule: ArmingSchedule | None = Field(
        default=None, description="When the zone raises events; none means always armed (detect zones only)"
    )

    def armed_at(self, unix_s: float) -> bool:
        """True when the zone raises events at Unix time ``unix_s`` (always, without a schedule)."""
        return self.schedule is None or self.schedule.armed_at(unix_s)

    @field_validator("polygon")
    @classmethod
    def _check_polygon(cls, polygon: tuple[Point, ...]) -> tuple[Point, ...]:
        area = polygon_area(polygon)
        if area < MIN_ZONE_AREA:
            raise ValueError(f"polygon is degenerate: area {area:.2e} of the image, need at least {MIN_ZONE_AREA}")
        n = len(polygon)
        edges = [(polygon[i], polygon[(i + 1) % n]) for i in range(n)]
        for i in range(n):
            for j in range(i + 2, n):
                if i == 0 and j == n - 1:
                    continue  # adjacent through the closing edge
                if _segments_cross(*edges[i], *edges[j]):
                    raise ValueError(f"polygon is self-intersecting: edge {i} crosses edge {j}")
        return polygon

    @model_validator(mode="after")
    def _check_schedule(self) -> Zone:
        if self.schedule is not None and self.kind is not ZoneKind.DETECT:
            # Privacy masking and exclusion must hold at all hours: only detect zones can be disarmed.
            raise ValueError(f"schedule is only allowed on 'detect' zones, not on a {self.kind.value!r} zone")
        return self


class ZoneSet(BaseModel):
    """A camera's zones, with the rule that names are unique and at least one zone detects."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    zones: tuple[Zone, ...] = Field(min_length=1, max_length=MAX_ZONES)

    @model_validator(mode="after")
    def _check(self) -> ZoneSet:
        names = [z.name for z in self.zones]
        dupes = sorted({n for n in names if names.count(n) > 1})
        if dupes:
            raise ValueError(f"zone names must be unique: {dupes} repeated")
        if not any(z.kind is ZoneKind.DETECT for z in self.zones):
            raise ValueError("at least one zone must have kind 'detect'")
        return self


def rasterise(polygon: tuple[Point, ...], width: int, height: int) -> BoolMask:
    """The polygon as a boolean ``(height, width)`` mask; pixel centres inside are True."""
    mask_hw = np.zeros((height, width), dtype=np.uint8)
    pts = np.asarray(polygon, dtype=np.float64) * np.array([width, height])
    # fillPoly works in 1/2**shift sub-pixel units: 8 bits keeps thin zones from vanishing at 160 px.
    shift = 8
    cv2.fillPoly(mask_hw, [np.round(pts * (1 << shift)).astype(np.int32)], 1, lineType=cv2.LINE_8, shift=shift)
    return mask_hw.astype(bool)


@lru_cache(maxsize=4096)
def zone_masks(zones: tuple[Zone, ...], width: int, height: int) -> tuple[BoolMask, ...]:
    """Masks for ``zones`` at ``(height, width)``, cached because every frame of a camera reuses them.

    The arrays are shared between callers: they are made read-only so that nobody edits a cached mask.
    """
    out = []
    for zone in zones:
        mask = rasterise(zone.polygon, width, height)
        mask.flags.writeable = False
        out.append(mask)
    return tuple(out)


@lru_cache(maxsize=4096)
def privacy_mask(zones: tuple[Zone, ...], width: int, height: int) -> BoolMask | None:
    """The union of ``privacy`` zones at this size (read-only, cached), or None when there are none."""
    privacy = tuple(z for z in zones if z.kind is ZoneKind.PRIVACY)
    if not privacy:
        return None
    union = np.logical_or.reduce(zone_masks(privacy, width, height))
    union.flags.writeable = False
    return np.asarray(union, dtype=bool)


def apply_privacy(image: npt.NDArray[np.uint8], zones: tuple[Zone, ...]) -> None:
    """Black out every privacy zone in ``image`` (``(H, W)`` luma or ``(H, W, 3)`` colour), in place."""
    height, width = image.shape[:2]
    mask = privacy_mask(zones, width, height)
    if mask is not None:
        image[mask] = 0
