"""The registry's value types: snapshots, batch rows and their outcomes, probe stream policies."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from pydantic import ValidationError

from ingest.cameras import Camera, redact_url


class StreamPolicy(StrEnum):
    """What a successful probe does to a camera's stream URLs."""

    KEEP = "keep"  # record the probe result only
    FILL = "fill"  # set stream URLs the camera does not have yet
    REPLACE = "replace"  # take the probe's choice of detection and main stream


class RowStatus(StrEnum):
    """What a batch write did with one row."""

    CREATED = "created"
    UPDATED = "updated"
    UNCHANGED = "unchanged"
    FAILED = "failed"


@dataclass(frozen=True, slots=True)
class RowChange:
    """One row of a batch: fields to set on the camera with ``camera_id``, or else on the one with
    ``external_id`` (created when there is none)."""

    line: int
    camera_id: str | None
    external_id: str | None
    changes: Mapping[str, Any]


@dataclass(frozen=True, slots=True)
class RowOutcome:
    """The result of one row: the camera as stored, or the field and reason it failed."""

    line: int
    status: RowStatus
    camera: Camera | None = None
    field: str | None = None
    reason: str | None = None


@dataclass(frozen=True, slots=True)
class RegistrySnapshot:
    """Every camera at one registry version, sorted by id; ``search_text`` is each camera's lower-cased name,
    ids, address, district, grid cell and tags, for text filters."""

    version: int
    cameras: tuple[Camera, ...]
    by_id: Mapping[str, Camera]
    ids: tuple[str, ...]
    search_text: tuple[str, ...]
    # Positions in ``cameras`` (ascending) per case-folded district and per tag, for filtered listings.
    by_district: Mapping[str, tuple[int, ...]]
    by_tag: Mapping[str, tuple[int, ...]]


def search_text(camera: Camera) -> str:
    """What a text filter matches a camera against, lower-cased."""
    loc = camera.location
    parts = (camera.name, camera.id, camera.external_id, loc.address, loc.district, loc.grid_cell, *camera.tags)
    return "\n".join(p for p in parts if p).lower()


def field_errors(exc: ValidationError) -> list[tuple[str, str]]:
    """(field, reason) pairs of a validation error: fields as dotted paths, the offending value shown when it is a
    short scalar (never for passwords)."""
    out = []
    for err in exc.errors():
        loc = ".".join(str(p) for p in err.get("loc", ())) or "camera"
        msg = str(err.get("msg", "invalid")).removeprefix("Value error, ")
        value = err.get("input")
        if isinstance(value, str | int | float) and not isinstance(value, bool) and "password" not in loc:
            shown = repr(redact_url(value) if isinstance(value, str) and "://" in value else value)
            msg += f" (got {shown if len(shown) <= 60 else shown[:57] + '...'})"
        out.append((loc, msg))
    return out
