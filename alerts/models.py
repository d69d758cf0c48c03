"""The alert: one versioned message schema shared by the wall feed and the case queue.

The JSON Schema in ``alerts/alert.schema.json`` is generated from :class:`Alert` (``python -m alerts.models``);
``tests/test_models.py`` fails when the two drift apart.
"""

from __future__ import annotations

import hashlib
import json
import math
import re
import sys
from datetime import UTC, datetime
from enum import StrEnum
from pathlib import Path
from typing import Annotated, Any, Literal

from pydantic import BaseModel, BeforeValidator, ConfigDict, Field

from detectors.events import Event, EventPhase, EventType
from ingest.cameras import Camera

SCHEMA_VERSION = 1  # bump together with alerts/alert.schema.json and the Literal in Alert
SCHEMA_PATH = Path(__file__).resolve().parent / "alert.schema.json"
SCHEMA_ID = "https://sharpeyes.invalid/schemas/alert-v1.json"


class Severity(StrEnum):
    """How urgently the command center should look."""

    INFO = "info"
    WARNING = "warning"
    CRITICAL = "critical"


SEVERITY_BY_TYPE = {
    EventType.MOTION: Severity.WARNING,
    EventType.LOITERING: Severity.WARNING,
    EventType.TAMPER_COVERED: Severity.CRITICAL,
    EventType.TAMPER_DEFOCUS: Severity.CRITICAL,
    EventType.TAMPER_MOVED: Severity.CRITICAL,
    EventType.VIDEO_LOSS: Severity.CRITICAL,
}

# Lone surrogates (how Python carries undecodable bytes), C0/C1 control characters and DEL: none of them may
# reach a consumer, and a lone surrogate cannot even be encoded as UTF-8 JSON.
_UNSAFE = re.compile(r"[\x00-\x1f\x7f-\x9f\ud800-\udfff]")
_REPLACEMENT = "\ufffd"


def clean_text(value: object, limit: int) -> object:
    """Make a label safe for every consumer: unsafe characters become U+FFFD, length capped at ``limit``.

    The registry rejects such names at registration; this is the last line of defence, because an alert must
    never be lost (or break a consumer) over a camera's name.
    """
    if not isinstance(value, str):
        return value
    text = _UNSAFE.sub(_REPLACEMENT, value)
    if len(text) > limit:
        text = text[: limit - 1] + "\u2026"
    return text


def _text(limit: int) -> Any:
    return BeforeValidator(lambda v: clean_text(v, limit))


def _finite(value: object) -> object:
    # NaN/inf would serialise as null and then fail validation in every consumer.
    if isinstance(value, float) and not math.isfinite(value):
        return 0.0
    return value


Label = Annotated[str, _text(256), Field(max_length=256)]
ShortLabel = Annotated[str, _text(128), Field(max_length=128)]
Fraction01 = Annotated[float, BeforeValidator(_finite), Field(allow_inf_nan=False)]


class GeoPoint(BaseModel):
    """GeoJSON Point, coordinates ``[lon, lat]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["Point"] = "Point"
    coordinates: tuple[float, float] = Field(description="[longitude, latitude], WGS84, GeoJSON order")


class RelatedEvent(BaseModel):
    """Another event folded into the same incident (a cluster of nearby cameras), with where and what."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    camera_id: ShortLabel
    camera_name: Label
    location: GeoPoint
    district: ShortLabel | None = None
    grid_cell: ShortLabel | None = None
    zone: ShortLabel
    type: EventType
    severity: Severity
    started_at: datetime
    snapshot: str | None = None
    clip: str | None = None


def idempotency_key(camera_id: str, zone: str, event_type: EventType, start_s: float) -> str:
    """The same event always yields the same key, across retries and worker restarts.

    The start is rounded to the millisecond: it comes from the frame clock, which a replay reproduces exactly.
    """
    raw = f"{camera_id}\x1f{zone}\x1f{event_type.value}\x1f{round(start_s * 1000)}"
    return hashlib.sha256(raw.encode("utf-8", "surrogatepass")).hexdigest()[:32]


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


_PHASE_RANK = {EventPhase.START: 0, EventPhase.UPDATE: 1, EventPhase.END: 2}


class Alert(BaseModel):
    """One lifecycle message of an event, as published to ``sharpeyes:alerts`` and ``sharpeyes:incidents``."""

    model_config = ConfigDict(
        frozen=True,
        extra="forbid",
        title="Alert",
        json_schema_extra={"$id": SCHEMA_ID, "$schema": "https://json-schema.org/draft/2020-12/schema"},
    )

    schema_version: Literal[1] = Field(default=1, description="Bumped on any change to this schema")
    id: str = Field(description="Equal to the idempotency key: one id per event, shared by its lifecycle messages")
    idempotency_key: str = Field(
        description="sha256(camera id, zone, event type, event start in ms), 32 hex digits: dedup on this"
    )
    phase: EventPhase
    camera_id: ShortLabel
    camera_name: Label
    location: GeoPoint
    district: ShortLabel | None = None
    grid_cell: ShortLabel | None = None
    zone: ShortLabel
    type: EventType
    severity: Severity
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None
    peak_fraction: Fraction01 = Field(description="Largest fraction of the zone that changed, 0..1")
    bbox: tuple[Fraction01, Fraction01, Fraction01, Fraction01] | None = Field(
        default=None, description="Box of the peak motion, normalized 0..1: [x0, y0, x1, y1]"
    )
    snapshot: str | None = Field(default=None, description="API path of the JPEG snapshot, if one was taken")
    clip: str | None = Field(default=None, description="API path of the MP4 event clip, if one is being recorded")
    params: ShortLabel = Field(description="Name of the detector parameter set that produced the event")
    related: tuple[RelatedEvent, ...] = Field(
        default=(),
        description="Incidents only: other events of nearby cameras merged into this incident (cluster mode)",
    )

    @classmethod
    def from_event(cls, event: Event, camera: Camera, params: str, snapshot: bool, clip: bool = False) -> Alert:
        """Build the alert for ``event`` on ``camera``; ``event`` times must be Unix seconds."""
        key = idempotency_key(camera.id, event.zone, event.type, event.start_s)
        bbox = None
        if event.bbox is not None:
            x0, y0, x1, y1 = (min(1.0, max(0.0, round(v, 4))) for v in event.bbox)
            bbox = (x0, y0, x1, y1)
        return cls(
            id=key,
            idempotency_key=key,
            phase=event.phase,
            camera_id=camera.id,
            camera_name=camera.name,
            location=GeoPoint(coordinates=(camera.location.lon, camera.location.lat)),
            district=camera.location.district,
            grid_cell=camera.location.grid_cell,
            zone=event.zone,
            type=event.type,
            severity=SEVERITY_BY_TYPE[event.type],
            started_at=_utc(event.start_s),
            updated_at=_utc(event.t_s),
            ended_at=_utc(event.end_s) if event.end_s is not None else None,
            peak_fraction=round(event.peak_fraction, 4),
            bbox=bbox,
            snapshot=snapshot_path(key) if snapshot else None,
            clip=clip_path(key) if clip else None,
            params=params,
        )

    def order(self) -> int:
        """Position of this message in its event's life: later messages have larger numbers.

        Republishing a message whose order is not above the last one published for the event is a duplicate.
        """
        return int(self.updated_at.timestamp() * 1000) * 4 + _PHASE_RANK[self.phase]

    def related_view(self) -> RelatedEvent:
        """This event as a member of another event's incident."""
        return RelatedEvent(
            id=self.id,
            camera_id=self.camera_id,
            camera_name=self.camera_name,
            location=self.location,
            district=self.district,
            grid_cell=self.grid_cell,
            zone=self.zone,
            type=self.type,
            severity=self.severity,
            started_at=self.started_at,
            snapshot=self.snapshot,
            clip=self.clip,
        )


def snapshot_path(alert_id: str) -> str:
    """API path of an alert's snapshot."""
    return f"/api/v1/alerts/{alert_id}/snapshot"


def clip_path(alert_id: str) -> str:
    """API path of an alert's event clip."""
    return f"/api/v1/alerts/{alert_id}/clip"


def alert_json_schema() -> dict[str, Any]:
    """The JSON Schema of :class:`Alert` as published in ``alerts/alert.schema.json``."""
    return Alert.model_json_schema(mode="serialization")


def render_schema() -> str:
    """The schema file's exact text."""
    return json.dumps(alert_json_schema(), indent=2, sort_keys=True) + "\n"


if __name__ == "__main__":
    sys.stdout.write(render_schema())
