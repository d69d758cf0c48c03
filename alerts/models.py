"""The alert: one versioned message schema shared by the wall feed and the case queue."""

from __future__ import annotations

import hashlib
from datetime import UTC, datetime
from enum import StrEnum
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from detectors.events import Event, EventPhase, EventType
from ingest.cameras import Camera

SCHEMA_VERSION = 1  # bump together with alerts/alert.schema.json and the Literal in Alert


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


class GeoPoint(BaseModel):
    """GeoJSON Point, coordinates ``[lon, lat]``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    type: Literal["Point"] = "Point"
    coordinates: tuple[float, float]


def idempotency_key(camera_id: str, zone: str, event_type: EventType, start_s: float) -> str:
    """The same event always yields the same key, across retries and worker restarts.

    The start is rounded to the millisecond: it comes from the frame clock, which a replay reproduces exactly.
    """
    raw = f"{camera_id}\x1f{zone}\x1f{event_type.value}\x1f{round(start_s * 1000)}"
    return hashlib.sha256(raw.encode()).hexdigest()[:32]


def _utc(ts: float) -> datetime:
    return datetime.fromtimestamp(ts, tz=UTC)


class Alert(BaseModel):
    """One lifecycle message of an event, as published to ``sharpeyes:alerts`` and ``sharpeyes:incidents``."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    schema_version: Literal[1] = 1
    id: str = Field(description="Equal to the idempotency key: one id per event, shared by its lifecycle messages")
    idempotency_key: str
    phase: EventPhase
    camera_id: str
    camera_name: str
    location: GeoPoint
    district: str | None = None
    grid_cell: str | None = None
    zone: str
    type: EventType
    severity: Severity
    started_at: datetime
    updated_at: datetime
    ended_at: datetime | None = None
    peak_fraction: float
    bbox: tuple[float, float, float, float] | None = None
    snapshot: str | None = Field(default=None, description="API path of the JPEG snapshot, if one was taken")
    params: str = Field(description="Name of the detector parameter set that produced the event")

    @classmethod
    def from_event(cls, event: Event, camera: Camera, params: str, snapshot: bool) -> Alert:
        """Build the alert for ``event`` on ``camera``; ``event`` times must be Unix seconds."""
        key = idempotency_key(camera.id, event.zone, event.type, event.start_s)
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
            bbox=tuple(round(v, 4) for v in event.bbox) if event.bbox else None,  # type: ignore[arg-type]
            snapshot=f"/api/v1/alerts/{key}/snapshot" if snapshot else None,
            params=params,
        )
