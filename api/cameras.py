"""Camera registration, probing, listing and the map's GeoJSON; bulk import and export live in camera_bulk.

A camera comes in by stream URL, or by ONVIF address, in which case it is probed first and its streams
are taken from the probe. Passwords are write-only.
"""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Annotated, Any

import redis
from fastapi import APIRouter, Body, FastAPI, Header, HTTPException, Path, Query, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel

from api import camera_bulk
from api.audit import read_audit
from api.camera_views import (
    CameraFilter,
    CameraPage,
    CameraView,
    GeoJsonCache,
    decode_cursor,
    select_page,
    stale_after,
    view,
)
from api.deps import Admin, Onboarding, OnboardingDep, Operator, Resources, ResourcesDep, Viewer
from ingest.cameras import Camera, CameraSpec, CameraState, field_values
from ingest.health import read_health
from ingest.onvif_probe import ProbeConfig, probe_camera
from ingest.probe_result import ProbeErrorKind, ProbeResult
from ingest.registry import CameraRegistry, DuplicateExternalId, RowChange, RowOutcome, RowStatus, StreamPolicy
from ingest.secretbox import SecretKeyError, load_secret_box

log = logging.getLogger(__name__)

CameraId = Annotated[str, Path(pattern=r"^cam_[0-9a-f]{12}$", description="The camera's id")]
# The map polls; one rebuild per health interval (workers report that often) serves every wall at once.
GEOJSON_MIN_AGE_S = 1.0


@asynccontextmanager
async def onboarding_lifespan(app: FastAPI) -> AsyncIterator[None]:
    """Build the onboarding resources: the secret key (created on first start), the guarded probe settings."""
    res: Resources = app.state.resources
    box = load_secret_box(res.settings)
    app.state.onboarding = Onboarding(
        registry=CameraRegistry(res.redis, box),
        box=box,
        probe=ProbeConfig.from_settings(res.settings),
        geojson=GeoJsonCache(max(GEOJSON_MIN_AGE_S, res.settings.health_interval_s)),
    )
    yield


router = APIRouter(prefix="/api/v1/cameras", tags=["cameras"], lifespan=onboarding_lifespan)
router.include_router(camera_bulk.router)


class ProbeReply(BaseModel):
    """A re-probe: what it found (or why it failed) and the camera afterwards."""

    probe: ProbeResult
    camera: CameraView


def _probe_error(result: ProbeResult) -> HTTPException:
    field = "password" if result.error is ProbeErrorKind.BAD_CREDENTIALS else "onvif_url"
    return HTTPException(
        status.HTTP_422_UNPROCESSABLE_CONTENT,
        {
            "message": f"{field}: the probe failed: {result.message}",
            "field": field,
            "error": result.error,
            "hint": "fix it and try again, or send ?probe=false with a stream_url to register without probing",
        },
    )


def _outcome_error(outcome: RowOutcome, camera_id: str | None) -> HTTPException:
    if outcome.field == "id":
        return HTTPException(status.HTTP_404_NOT_FOUND, f"no camera with id {camera_id!r}")
    code = status.HTTP_409_CONFLICT if outcome.field == "external_id" else status.HTTP_422_UNPROCESSABLE_CONTENT
    return HTTPException(code, {"message": f"{outcome.field}: {outcome.reason}", "field": outcome.field})


def _with_health(res: Resources, ob: Onboarding, camera: Camera) -> CameraView:
    health = read_health(res.redis, [camera.id]).get(camera.id)
    return view(camera, health, ob.registry.probe(camera.id), stale_after(res.settings.health_interval_s))


def _write(ob: Onboarding, row: RowChange, actor: str, replace: bool) -> Camera:
    try:
        [outcome] = ob.registry.apply_rows([row], actor, replace=replace)
    except SecretKeyError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    if outcome.status is RowStatus.FAILED:
        raise _outcome_error(outcome, row.camera_id)
    assert outcome.camera is not None
    return outcome.camera


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CameraView)
async def create_camera(
    spec: CameraSpec,
    who: Operator,
    res: ResourcesDep,
    ob: OnboardingDep,
    probe: Annotated[bool, Query(description="Probe the ONVIF address first (when one is given)")] = True,
) -> CameraView:
    """Register a camera by RTSP stream URL, or by ONVIF address (probed for its streams), with its location,
    zones and credentials. Workers pick it up within seconds."""
    result: ProbeResult | None = None
    if spec.onvif_url is not None and probe:
        password = spec.password.get_secret_value() if spec.password else None
        result = await probe_camera(spec.onvif_url, spec.username, password, ob.probe)
        if not result.ok:
            raise _probe_error(result)
        detection, main = result.detection_stream, result.main_stream
        spec = spec.model_copy(
            update={
                "stream_url": spec.stream_url or (detection.uri if detection else None),
                "main_stream_url": spec.main_stream_url or (main.uri if main else None),
            }
        )
    elif spec.stream_url is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            {"message": "stream_url: needed when the camera is not probed", "field": "stream_url"},
        )
    camera = await run_in_threadpool(_create, ob, spec, who.name)
    if result is not None:
        await run_in_threadpool(ob.registry.record_probes, [(camera.id, result)], StreamPolicy.KEEP, who.name)
    return view(camera, None, result, stale_after(res.settings.health_interval_s))


def _create(ob: Onboarding, spec: CameraSpec, actor: str) -> Camera:
    try:
        return ob.registry.create(spec, actor)
    except DuplicateExternalId as exc:
        raise HTTPException(
            status.HTTP_409_CONFLICT, {"message": f"external_id: {exc}", "field": "external_id"}
        ) from None
    except SecretKeyError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None


@router.get("", response_model=CameraPage)
def list_cameras(
    who: Viewer,
    res: ResourcesDep,
    ob: OnboardingDep,
    district: Annotated[str | None, Query(max_length=64, description="Exact district (case-insensitive)")] = None,
    tag: Annotated[list[str] | None, Query(description="Cameras carrying every one of these tags")] = None,
    state: Annotated[CameraState | None, Query(description="Live state")] = None,
    q: Annotated[str | None, Query(max_length=128, description="Text in name, ids, address, district or tags")] = None,
    enabled: bool | None = None,
    cursor: Annotated[str | None, Query(max_length=512, description="next_cursor of the previous page")] = None,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> CameraPage:
    """Cameras in id order with their live state, filtered, a page at a time."""
    try:
        after = decode_cursor(cursor) if cursor else None
    except ValueError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, {"message": f"cursor: {exc}", "field": "cursor"}
        ) from None
    flt = CameraFilter(district=district, tags=tuple(tag or ()), state=state, text=q or None, enabled=enabled)
    stale = stale_after(res.settings.health_interval_s)
    picked, next_cursor = select_page(ob.registry.snapshot(), flt, after, limit, res.redis, stale)
    probes = ob.registry.probes([c.id for c, _ in picked])
    return CameraPage(cameras=[view(c, h, probes.get(c.id), stale) for c, h in picked], next_cursor=next_cursor)


@router.get("/geojson", response_class=Response, responses={200: {"content": {"application/geo+json": {}}}})
def cameras_geojson(
    who: Viewer,
    res: ResourcesDep,
    ob: OnboardingDep,
    if_none_match: Annotated[str | None, Header()] = None,
    accept_encoding: Annotated[str | None, Header()] = None,
) -> Response:
    """Every camera as a GeoJSON point with its live state, for the wall's map. Rebuilt at most once per health
    interval (2 s); send the ETag back in If-None-Match to get 304 while nothing changed; gzip when accepted."""
    built = ob.geojson.get(ob.registry.snapshot(), res.redis, stale_after(res.settings.health_interval_s))
    headers = {"ETag": built.etag, "Cache-Control": "private, max-age=1", "Vary": "Accept-Encoding"}
    if if_none_match is not None and built.etag in {t.strip() for t in if_none_match.split(",")}:
        return Response(status_code=status.HTTP_304_NOT_MODIFIED, headers=headers)
    if accept_encoding is not None and "gzip" in accept_encoding.lower():
        headers["Content-Encoding"] = "gzip"
        return Response(built.gzipped, media_type="application/geo+json", headers=headers)
    return Response(built.body, media_type="application/geo+json", headers=headers)


@router.get("/{camera_id}", response_model=CameraView)
def get_camera(camera_id: CameraId, who: Viewer, res: ResourcesDep, ob: OnboardingDep) -> CameraView:
    """One camera with its live state (connecting, online, offline, ...), last frame time and last probe."""
    camera = ob.registry.get(camera_id)
    if camera is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera with id {camera_id!r}")
    return _with_health(res, ob, camera)


@router.put("/{camera_id}", response_model=CameraView)
def replace_camera(
    camera_id: CameraId, spec: CameraSpec, who: Operator, res: ResourcesDep, ob: OnboardingDep
) -> CameraView:
    """Replace a camera's settings (a missing password keeps the stored one, '' removes it); its worker restarts
    it with the new ones. Nothing is written when nothing changes."""
    changes = {**field_values(spec), "password": spec.password}
    camera = _write(ob, RowChange(0, camera_id, None, changes), who.name, replace=True)
    return _with_health(res, ob, camera)


@router.patch("/{camera_id}", response_model=CameraView)
def patch_camera(
    camera_id: CameraId,
    who: Operator,
    res: ResourcesDep,
    ob: OnboardingDep,
    changes: Annotated[dict[str, Any], Body(description="Only the fields to change; location may be partial")],
) -> CameraView:
    """Change some of a camera's fields, e.g. ``{"name": "..."}`` or ``{"location": {"lat": 52.1}}``."""
    unknown = sorted(set(changes) - set(CameraSpec.model_fields))
    if unknown:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            {"message": f"{unknown[0]}: unknown field", "field": unknown[0]},
        )
    camera = _write(ob, RowChange(0, camera_id, None, changes), who.name, replace=False)
    return _with_health(res, ob, camera)


@router.delete("/{camera_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_camera(camera_id: CameraId, who: Operator, ob: OnboardingDep) -> Response:
    """Remove a camera; its worker stops watching it."""
    if ob.registry.delete(camera_id, who.name) is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera with id {camera_id!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.post("/{camera_id}/probe", response_model=ProbeReply)
async def reprobe_camera(
    camera_id: CameraId,
    who: Operator,
    res: ResourcesDep,
    ob: OnboardingDep,
    streams: Annotated[
        StreamPolicy,
        Query(description="keep: record only; fill: set missing stream URLs; replace: take the probe's choice"),
    ] = StreamPolicy.FILL,
) -> ProbeReply:
    """Probe the camera's ONVIF address again and store the result (a failure too, with its reason in words)."""
    camera = await run_in_threadpool(ob.registry.get, camera_id)
    if camera is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera with id {camera_id!r}")
    if camera.onvif_url is None:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT,
            {"message": "onvif_url: this camera has no ONVIF address: set one first", "field": "onvif_url"},
        )
    try:
        password = ob.registry.password(camera)
    except SecretKeyError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, str(exc)) from None
    result = await probe_camera(camera.onvif_url, camera.username, password, ob.probe)
    [stored] = await run_in_threadpool(ob.registry.record_probes, [(camera_id, result)], streams, who.name)
    if stored is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"camera {camera_id!r} was deleted during the probe")
    health = await run_in_threadpool(read_health, res.redis, [camera_id])
    return ProbeReply(
        probe=result, camera=view(stored, health.get(camera_id), result, stale_after(res.settings.health_interval_s))
    )


@router.get("/{camera_id}/history")
def camera_history(
    camera_id: CameraId,
    who: Admin,
    res: ResourcesDep,
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> list[dict[str, Any]]:
    """Audit entries about this camera, newest first (who changed what, before and after)."""
    try:
        return read_audit(res.redis, limit, None, target=camera_id)
    except redis.RedisError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"audit stream unreadable: {exc}") from None
