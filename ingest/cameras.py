"""The camera as the registry stores it and the API accepts it."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from urllib.parse import urlsplit

from pydantic import BaseModel, ConfigDict, Field, field_validator

from detectors.zones import Zone, ZoneSet

STREAM_SCHEMES = ("rtsp", "rtsps", "file")


class CameraState(StrEnum):
    """A camera's live state as the ingest engine sees it."""

    CONNECTING = "connecting"
    ONLINE = "online"
    DEGRADED = "degraded"
    STALLED = "stalled"
    OFFLINE = "offline"
    AUTH_FAILED = "auth_failed"
    NOT_FOUND = "not_found"
    DISABLED = "disabled"
    UNKNOWN = "unknown"  # registered, but no worker has reported on it yet


class Location(BaseModel):
    """A WGS84 position; ``district`` and ``grid_cell`` are the city's own labels."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lat: float = Field(ge=-90.0, le=90.0, allow_inf_nan=False)
    lon: float = Field(ge=-180.0, le=180.0, allow_inf_nan=False)
    address: str | None = Field(default=None, max_length=200)
    district: str | None = Field(default=None, max_length=64)
    grid_cell: str | None = Field(default=None, max_length=32)

    def geojson(self) -> dict[str, object]:
        """GeoJSON Point; note the ``[lon, lat]`` order GeoJSON prescribes."""
        return {"type": "Point", "coordinates": [self.lon, self.lat]}


def check_stream_url(url: str) -> str:
    """Validate a stream URL: rtsp(s):// or file://, no credentials inside it."""
    parts = urlsplit(url)
    if parts.scheme not in STREAM_SCHEMES:
        raise ValueError(f"scheme {parts.scheme!r} is not supported: use rtsp://, rtsps:// or file://")
    if parts.scheme != "file" and not parts.hostname:
        raise ValueError("has no host")
    if parts.username or parts.password:
        raise ValueError("must not embed credentials: put them in the username and password fields")
    if parts.scheme == "file" and not parts.path.startswith("/"):
        raise ValueError("file:// URLs need an absolute path")
    return url


class CameraSpec(BaseModel):
    """What an operator gives when registering or updating a camera."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    stream_url: str = Field(max_length=2048, description="rtsp:// URL of the detection stream (or file:// for demos)")
    location: Location
    zones: tuple[Zone, ...] = Field(min_length=1)
    enabled: bool = True
    external_id: str | None = Field(default=None, max_length=128)
    tags: tuple[str, ...] = Field(default=(), max_length=32)

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        if any(ord(c) < 32 or ord(c) == 127 for c in name):
            raise ValueError("must not contain control characters")
        if not name.strip():
            raise ValueError("must not be blank")
        return name

    @field_validator("stream_url")
    @classmethod
    def _check_url(cls, url: str) -> str:
        return check_stream_url(url)

    @field_validator("zones")
    @classmethod
    def _check_zones(cls, zones: tuple[Zone, ...]) -> tuple[Zone, ...]:
        return ZoneSet(zones=zones).zones


class Camera(CameraSpec):
    """A registered camera: the spec plus its identity and provenance."""

    id: str
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str
