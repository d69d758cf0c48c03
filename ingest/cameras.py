"""The camera as the registry stores it and the API accepts it.

``CameraSpec`` is what an operator sends (the password is write-only and may be absent); ``Camera`` is
what the registry stores (the password only as ciphertext, never shown). Probe results live beside the
camera in :mod:`ingest.probe_result`, so that refreshing them does not restart the camera's worker.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from datetime import datetime
from enum import StrEnum
from functools import cached_property
from typing import Any
from urllib.parse import quote, urlsplit, urlunsplit

from pydantic import BaseModel, ConfigDict, Field, SecretStr, ValidationInfo, field_validator, model_validator

from detectors.schedule import ArmingSchedule
from detectors.zones import Zone, ZoneKind, ZoneSet

STREAM_SCHEMES = ("rtsp", "rtsps", "file")
ONVIF_DEFAULT_PATH = "/onvif/device_service"
# Tags are filter keys on the wall and in imports; separators used in CSV cells are not allowed inside.
TAG_PATTERN = r"^[\w][\w.:/+#-]{0,31}$"
MAX_TAGS = 32
FULL_FRAME_ZONE = Zone(name="full frame", polygon=((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)))


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
    NO_STREAM = "no_stream"  # registered by ONVIF address, but no stream URL known yet: probe it
    UNKNOWN = "unknown"  # registered, but no worker has reported on it yet


class Location(BaseModel):
    """A WGS84 position; ``district`` and ``grid_cell`` are the city's own labels."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    lat: float = Field(ge=-90.0, le=90.0, allow_inf_nan=False, description="WGS84 latitude in degrees")
    lon: float = Field(ge=-180.0, le=180.0, allow_inf_nan=False, description="WGS84 longitude in degrees")
    address: str | None = Field(default=None, max_length=200)
    district: str | None = Field(default=None, max_length=64)
    grid_cell: str | None = Field(default=None, max_length=32)

    @field_validator("address", "district", "grid_cell")
    @classmethod
    def _check_label(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _reject_control_characters(value)
        return value.strip() or None

    def geojson(self) -> dict[str, object]:
        """GeoJSON Point; note the ``[lon, lat]`` order GeoJSON prescribes."""
        return {"type": "Point", "coordinates": [self.lon, self.lat]}


_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


def _reject_control_characters(value: str) -> None:
    if _CONTROL.search(value):
        raise ValueError("must not contain control characters")


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
    try:
        _ = parts.port
    except ValueError:
        raise ValueError("has an invalid port") from None
    return url


def normalise_onvif_url(value: str) -> str:
    """``host``, ``host:port`` or ``http://host[:port][/onvif/device_service]`` as a full device-service URL."""
    text = value.strip()
    if "://" not in text:
        text = "http://" + text
    parts = urlsplit(text)
    if parts.scheme != "http":
        raise ValueError(f"scheme {parts.scheme!r} is not supported: ONVIF is reached over http:// here")
    if parts.username or parts.password:
        raise ValueError("must not embed credentials: put them in the username and password fields")
    if not parts.hostname:
        raise ValueError("has no host")
    try:
        port = parts.port or 80
    except ValueError:
        raise ValueError("has an invalid port") from None
    if parts.path not in ("", "/", ONVIF_DEFAULT_PATH) or parts.query or parts.fragment:
        raise ValueError(f"only the standard device service path {ONVIF_DEFAULT_PATH} is supported")
    host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
    return f"http://{host}:{port}{ONVIF_DEFAULT_PATH}"


def onvif_host_port(onvif_url: str) -> tuple[str, int]:
    """Host and port of a normalised ONVIF URL."""
    parts = urlsplit(onvif_url)
    assert parts.hostname is not None
    return parts.hostname, parts.port or 80


class CameraFields(BaseModel):
    """Everything about a camera an operator sets, except the password."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    name: str = Field(min_length=1, max_length=128)
    location: Location
    zones: tuple[Zone, ...] = Field(
        default=(FULL_FRAME_ZONE,),
        min_length=1,
        description="Detection zones and privacy masks (default: the whole frame detects)",
    )
    onvif_url: str | None = Field(
        default=None,
        max_length=512,
        description="The camera's ONVIF address: host, host:port or http://host:port/onvif/device_service",
    )
    stream_url: str | None = Field(
        default=None,
        validate_default=True,
        max_length=2048,
        description="rtsp:// URL of the detection stream (or file:// for demos); found by the probe if absent",
    )
    main_stream_url: str | None = Field(
        default=None, max_length=2048, description="rtsp:// URL of the full-resolution stream (snapshots, viewing)"
    )
    username: str | None = Field(default=None, max_length=64, description="For ONVIF and RTSP")
    schedule: ArmingSchedule | None = Field(
        default=None,
        description="Arming schedule for every detect zone that has none of its own; none means always armed",
    )
    enabled: bool = True
    external_id: str | None = Field(default=None, max_length=128, description="The installer's id; unique")
    tags: tuple[str, ...] = Field(default=(), max_length=MAX_TAGS)

    @model_validator(mode="before")
    @classmethod
    def _hide_secrets(cls, data: Any) -> Any:
        """Error reports echo the input: secrets are masked before anything can fail and be echoed."""
        if not isinstance(data, dict):
            return data
        masked = dict(data)
        for key in ("stream_url", "main_stream_url", "onvif_url"):
            value = masked.get(key)
            if isinstance(value, str) and "@" in value and "://" in value and urlsplit(value).password is not None:
                masked[key] = redact_url(value)  # rejected anyway: credentials belong in their own fields
        if isinstance(masked.get("password"), str):
            masked["password"] = SecretStr(masked["password"])
        return masked

    @field_validator("name")
    @classmethod
    def _check_name(cls, name: str) -> str:
        _reject_control_characters(name)
        if not name.strip():
            raise ValueError("must not be blank")
        return name

    @field_validator("external_id", "username")
    @classmethod
    def _check_identifier(cls, value: str | None) -> str | None:
        if value is None:
            return None
        _reject_control_characters(value)
        if value != value.strip() or not value:
            raise ValueError("must not be empty or start or end with spaces")
        return value

    @field_validator("stream_url")
    @classmethod
    def _check_stream(cls, url: str | None, info: ValidationInfo) -> str | None:
        # A field check, not a model check: a model check's error would echo the whole input, password included.
        if url is None and info.data.get("onvif_url") is None and "onvif_url" in info.data:
            raise ValueError("give stream_url (rtsp://...) or onvif_url (the camera's ONVIF address), or both")
        return None if url is None else check_stream_url(url)

    @field_validator("main_stream_url")
    @classmethod
    def _check_main(cls, url: str | None) -> str | None:
        return None if url is None else check_stream_url(url)

    @field_validator("onvif_url")
    @classmethod
    def _check_onvif(cls, url: str | None) -> str | None:
        return None if url is None else normalise_onvif_url(url)

    @field_validator("zones")
    @classmethod
    def _check_zones(cls, zones: tuple[Zone, ...]) -> tuple[Zone, ...]:
        return ZoneSet(zones=zones).zones

    @field_validator("tags")
    @classmethod
    def _check_tags(cls, tags: tuple[str, ...]) -> tuple[str, ...]:
        for tag in tags:
            if not re.match(TAG_PATTERN, tag):
                raise ValueError(
                    f"tag {tag!r} is invalid: 1 to 32 letters, digits or . : / + # - _, starting with a letter or digit"
                )
        # Order and repeats carry no meaning: sorted and unique, so that re-imports compare equal.
        return tuple(sorted(set(tags)))

    @cached_property
    def effective_zones(self) -> tuple[Zone, ...]:
        """The zones with the camera's schedule given to every detect zone that has none of its own."""
        if self.schedule is None:
            return self.zones
        return tuple(
            z.model_copy(update={"schedule": self.schedule}) if z.kind is ZoneKind.DETECT and z.schedule is None else z
            for z in self.zones
        )


class CameraSpec(CameraFields):
    """What an operator gives when registering or updating a camera.

    ``password`` is write-only: on an update, leaving it out (null) keeps the stored one and an empty
    string removes it.
    """

    password: SecretStr | None = Field(
        default=None,
        max_length=128,
        description="Write-only. Omit to keep the stored password, '' to remove it. Never returned.",
    )

    @field_validator("password")
    @classmethod
    def _check_password(cls, password: SecretStr | None, info: ValidationInfo) -> SecretStr | None:
        if password is None:
            return None
        if password.get_secret_value() and not info.data.get("username"):
            raise ValueError("a password needs a username")
        _reject_control_characters(password.get_secret_value())
        return password


class Camera(CameraFields):
    """A registered camera: the spec plus its identity and provenance; the password only as ciphertext."""

    id: str
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str
    password_enc: str | None = Field(default=None, repr=False, description="Fernet token; never leaves the server")
    password_updated_at: datetime | None = None

    @property
    def has_password(self) -> bool:
        """True when a password is stored."""
        return self.password_enc is not None

    def fields(self) -> dict[str, Any]:
        """The operator-set fields (no identity, provenance or password) as plain Python values."""
        return field_values(self)

    def public(self) -> dict[str, Any]:
        """Everything that may leave the server, as JSON-ready values: no password, only whether one is set."""
        data = self.model_dump(mode="json", exclude={"password_enc"})
        data["has_password"] = self.has_password
        return data


def field_values(model: CameraFields) -> dict[str, Any]:
    """The operator-set fields of a spec or camera (no identity, provenance or password), unconverted."""
    return {name: getattr(model, name) for name in CameraFields.model_fields}


def spec_with(camera: Camera | None, changes: Mapping[str, Any]) -> CameraSpec:
    """``camera``'s fields overlaid with ``changes`` (for PATCH and imports); the password is kept unless given.

    Raises ``pydantic.ValidationError`` naming the fields that are wrong.
    """
    base: dict[str, Any] = camera.fields() if camera is not None else {}
    merged = {**base, **changes}
    if "location" in changes and camera is not None and isinstance(changes["location"], Mapping):
        merged["location"] = {**camera.location.model_dump(), **changes["location"]}
    return CameraSpec.model_validate(merged)


def stream_url_with_credentials(url: str | None, username: str | None, password: str | None) -> str | None:
    """``url`` with ``username``/``password`` put in (percent-encoded), for the reader only; never log the result."""
    if url is None:
        return None
    parts = urlsplit(url)
    if parts.scheme == "file" or not username:
        return url
    userinfo = quote(username, safe="")
    if password:
        userinfo += ":" + quote(password, safe="")
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit((parts.scheme, f"{userinfo}@{host}", parts.path, parts.query, parts.fragment))


def redact_url(url: str) -> str:
    """``url`` with any password replaced by ``***``: safe for logs and error messages."""
    parts = urlsplit(url)
    if parts.password is None:
        return url
    host = parts.netloc.rsplit("@", 1)[-1]
    user = parts.username or ""
    return urlunsplit((parts.scheme, f"{user}:***@{host}", parts.path, parts.query, parts.fragment))
