"""Cameras as the API shows them: with live state and the last probe, filtered, paged, and as GeoJSON."""

from __future__ import annotations

import base64
import bisect
import gzip
import hashlib
import json
import threading
import time
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass
from datetime import datetime
from typing import Any, cast

import redis
from pydantic import BaseModel, ConfigDict

from ingest.cameras import Camera, CameraFields, CameraState
from ingest.health import HEALTH_KEY, CameraHealth, effective_state
from ingest.probe_result import ProbeResult
from ingest.registry import READ_CHUNK, RegistrySnapshot

# A camera whose worker has not reported for this many health intervals is shown offline.
STALE_INTERVALS = 5
_CURSOR_PREFIX = "c1:"
_VIEW_FROM_CAMERA = tuple(name for name in Camera.model_fields if name != "password_enc")


class CameraView(CameraFields):
    """A camera with its live state and last probe, as the API returns it. Never a password."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    id: str
    created_at: datetime
    updated_at: datetime
    created_by: str
    updated_by: str
    has_password: bool
    password_updated_at: datetime | None = None
    state: CameraState
    state_since: float | None = None
    last_frame_at: float | None = None
    last_error: str | None = None
    fps_received: float | None = None
    fps_analysed: float | None = None
    reconnects: int | None = None
    probe: ProbeResult | None = None


class CameraPage(BaseModel):
    """A page of cameras; pass ``next_cursor`` back as ``cursor`` for the next one (null: this was the last)."""

    cameras: list[CameraView]
    next_cursor: str | None = None


@dataclass(frozen=True, slots=True)
class CameraFilter:
    """Which cameras a listing shows. Every given criterion must hold."""

    district: str | None = None
    tags: tuple[str, ...] = ()
    state: CameraState | None = None
    text: str | None = None
    enabled: bool | None = None

    def static_match(self, camera: Camera, search_text: str) -> bool:
        """The criteria that do not need the live state."""
        if self.enabled is not None and camera.enabled != self.enabled:
            return False
        if self.district is not None and (camera.location.district or "").casefold() != self.district.casefold():
            return False
        if self.tags and not set(self.tags) <= set(camera.tags):
            return False
        return not (self.text and self.text.casefold() not in search_text)


def stale_after(health_interval_s: float) -> float:
    """Seconds without a report after which a camera is shown offline."""
    return max(15.0, STALE_INTERVALS * health_interval_s)


def live_state(camera: Camera, health: CameraHealth | None, stale_s: float) -> tuple[CameraState, str | None]:
    """The state to show for ``camera``."""
    if not camera.enabled:
        return CameraState.DISABLED, None
    if camera.stream_url is None:
        return CameraState.NO_STREAM, "no stream URL yet: probe the camera (POST /api/v1/cameras/{id}/probe)"
    return effective_state(health, camera.created_at.timestamp(), stale_s)


def view(camera: Camera, health: CameraHealth | None, probe: ProbeResult | None, stale_s: float) -> CameraView:
    """The API's view of one camera."""
    state, error = live_state(camera, health, stale_s)
    # Shallow: nested models stay instances, so nothing is validated twice.
    data: dict[str, Any] = {name: getattr(camera, name) for name in _VIEW_FROM_CAMERA}
    data.update(has_password=camera.has_password, state=state, last_error=error, probe=probe)
    if health is not None:
        data.update(
            state_since=health.since,
            last_frame_at=health.last_frame_at,
            fps_received=health.fps_received,
            fps_analysed=health.fps_analysed,
            reconnects=health.reconnects,
        )
    return CameraView.model_construct(**data)


def read_health_many(client: redis.Redis, camera_ids: Sequence[str]) -> dict[str, CameraHealth]:
    """Health reports of these cameras, read in chunks; cameras without one are absent."""
    out: dict[str, CameraHealth] = {}
    for start in range(0, len(camera_ids), READ_CHUNK):
        chunk = camera_ids[start : start + READ_CHUNK]
        raws = cast(list[bytes | None], client.mget([HEALTH_KEY.format(id=i) for i in chunk]))
        out.update((cid, CameraHealth.model_validate_json(raw)) for cid, raw in zip(chunk, raws, strict=True) if raw)
    return out


def encode_cursor(camera_id: str) -> str:
    """An opaque cursor that resumes after ``camera_id``."""
    return base64.urlsafe_b64encode((_CURSOR_PREFIX + camera_id).encode()).decode().rstrip("=")


def decode_cursor(cursor: str) -> str:
    """The camera id a cursor resumes after; ``ValueError`` for a cursor this API did not make."""
    try:
        text = base64.urlsafe_b64decode(cursor + "=" * (-len(cursor) % 4)).decode()
    except (ValueError, UnicodeDecodeError):
        raise ValueError("is not a cursor this API returned") from None
    if not text.startswith(_CURSOR_PREFIX):
        raise ValueError("is not a cursor this API returned")
    return text.removeprefix(_CURSOR_PREFIX)


def select_page(
    snapshot: RegistrySnapshot,
    flt: CameraFilter,
    after_id: str | None,
    limit: int,
    client: redis.Redis,
    stale_s: float,
) -> tuple[list[tuple[Camera, CameraHealth | None]], str | None]:
    """Up to ``limit`` matching cameras after ``after_id`` in id order, with their health, and the next cursor."""
    start = bisect.bisect_right(snapshot.ids, after_id) if after_id is not None else 0
    picked: list[tuple[Camera, CameraHealth | None]] = []
    for chunk in _chunks(_static_matches(snapshot, flt, start), READ_CHUNK if flt.state else limit + 1):
        health = read_health_many(client, [c.id for c in chunk])
        for camera in chunk:
            h = health.get(camera.id)
            if flt.state is not None and live_state(camera, h, stale_s)[0] is not flt.state:
                continue
            picked.append((camera, h))
            if len(picked) > limit:
                return picked[:limit], encode_cursor(picked[limit - 1][0].id)
    return picked, None


def _static_matches(snapshot: RegistrySnapshot, flt: CameraFilter, start: int) -> Iterator[Camera]:
    """Cameras from position ``start`` on that pass the filter's static criteria; district and tags come from the
    snapshot's indexes, so a district page costs the district's cameras, not the city's."""
    cameras, texts = snapshot.cameras, snapshot.search_text
    candidates: Sequence[int] | None = None
    if flt.district is not None:
        candidates = snapshot.by_district.get(flt.district.casefold(), ())
    for tag in flt.tags:
        tagged = snapshot.by_tag.get(tag, ())
        if candidates is None or len(tagged) < len(candidates):
            candidates = tagged
    positions: Iterable[int] = (
        range(start, len(cameras)) if candidates is None else candidates[bisect.bisect_left(candidates, start) :]
    )
    for i in positions:
        if flt.static_match(cameras[i], texts[i]):
            yield cameras[i]


def _chunks(items: Iterator[Camera], size: int) -> Iterator[list[Camera]]:
    chunk: list[Camera] = []
    for item in items:
        chunk.append(item)
        if len(chunk) == size:
            yield chunk
            chunk = []
    if chunk:
        yield chunk


def _feature_head(camera: Camera) -> str:
    """The part of a camera's GeoJSON feature that only changes with the camera itself (not its live state)."""
    loc = camera.location
    head = {
        "type": "Feature",
        "id": camera.id,
        "geometry": {"type": "Point", "coordinates": [loc.lon, loc.lat]},
    }
    props = {
        "name": camera.name,
        "external_id": camera.external_id,
        "district": loc.district,
        "grid_cell": loc.grid_cell,
        "tags": list(camera.tags),
        "enabled": camera.enabled,
    }
    text = json.dumps(head, separators=(",", ":"), ensure_ascii=False)
    return text[:-1] + ',"properties":' + json.dumps(props, separators=(",", ":"), ensure_ascii=False)[:-1]


def geojson(
    snapshot: RegistrySnapshot,
    client: redis.Redis,
    stale_s: float,
    heads: dict[str, tuple[datetime, str]] | None = None,
) -> bytes:
    """Every camera as a GeoJSON FeatureCollection of points with its live state, serialised.

    ``heads`` caches each camera's static part across calls (keyed by id, valid while ``updated_at`` holds).
    Nothing in the body changes unless a camera or a state does, so it makes a useful ETag.
    """
    cache = heads if heads is not None else {}
    health = read_health_many(client, snapshot.ids)
    parts = []
    for camera in snapshot.cameras:
        known = cache.get(camera.id)
        if known is None or known[0] != camera.updated_at:
            known = (camera.updated_at, _feature_head(camera))
            cache[camera.id] = known
        h = health.get(camera.id)
        state, error = live_state(camera, h, stale_s)
        since = "null" if h is None else repr(h.since)
        why = "null" if error is None else json.dumps(error, ensure_ascii=False)
        parts.append(f'{known[1]},"state":"{state.value}","state_since":{since},"last_error":{why}}}}}')
    for gone in set(cache) - set(snapshot.by_id):
        del cache[gone]
    return ('{"type":"FeatureCollection","features":[' + ",".join(parts) + "]}").encode("utf-8")


class GeoJsonBody:
    """One serialised GeoJSON with its ETag; gzipped on first demand (compressing costs more than building)."""

    def __init__(self, body: bytes) -> None:
        self.body = body
        self.etag = '"' + hashlib.blake2b(body, digest_size=12).hexdigest() + '"'
        self._gzipped: bytes | None = None
        self._lock = threading.Lock()

    @property
    def gzipped(self) -> bytes:
        """The body gzipped (level 1: ~6x smaller in a fraction of level 6's time), computed once."""
        with self._lock:
            if self._gzipped is None:
                self._gzipped = gzip.compress(self.body, compresslevel=1, mtime=0)
            return self._gzipped


class GeoJsonCache:
    """The GeoJSON of one registry version, reused for ``max_age_s``; one rebuild at a time, so that twenty walls
    polling at once cost one rebuild, not twenty. Cameras' static parts are kept across rebuilds."""

    def __init__(self, max_age_s: float) -> None:
        self._max_age_s = max_age_s
        self._lock = threading.Lock()
        self._entry: tuple[int, float, GeoJsonBody] | None = None
        self._heads: dict[str, tuple[datetime, str]] = {}

    def get(self, snapshot: RegistrySnapshot, client: redis.Redis, stale_s: float) -> GeoJsonBody:
        """The cached body for the snapshot's version if fresh, else a new one (stored for the next callers)."""
        with self._lock:
            entry = self._entry
            if entry is not None and entry[0] == snapshot.version and time.monotonic() - entry[1] < self._max_age_s:
                return entry[2]
            body = geojson(snapshot, client, stale_s, self._heads)
            # Nothing changed: keep the old object, with its compressed copy and ETag.
            built = entry[2] if entry is not None and entry[2].body == body else GeoJsonBody(body)
            self._entry = (snapshot.version, time.monotonic(), built)
            return built
