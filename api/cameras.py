"""Camera registration and live state."""

from __future__ import annotations

from typing import Any

from fastapi import APIRouter, HTTPException, Response, status
from pydantic import BaseModel, ConfigDict

from api.audit import audit
from api.deps import Operator, ResourcesDep, Viewer
from ingest.cameras import Camera, CameraSpec, CameraState
from ingest.health import CameraHealth, effective_state, read_health
from ingest.registry import DuplicateExternalId

router = APIRouter(prefix="/api/v1/cameras", tags=["cameras"])

# A camera whose worker has not reported for this many health intervals is shown offline.
STALE_INTERVALS = 5


class CameraView(Camera):
    """A camera with its live state, as the API returns it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: CameraState
    state_since: float | None = None
    last_frame_at: float | None = None
    last_error: str | None = None
    fps_received: float | None = None
    fps_analysed: float | None = None
    reconnects: int | None = None


class CameraList(BaseModel):
    """A page of cameras."""

    cameras: list[CameraView]


def _view(camera: Camera, health: CameraHealth | None, stale_after_s: float) -> CameraView:
    if not camera.enabled:
        state, error = CameraState.DISABLED, None
    else:
        state, error = effective_state(health, camera.created_at.timestamp(), stale_after_s)
    extra: dict[str, Any] = {"state": state, "last_error": error}
    if health is not None:
        extra.update(
            state_since=health.since,
            last_frame_at=health.last_frame_at,
            fps_received=health.fps_received,
            fps_analysed=health.fps_analysed,
            reconnects=health.reconnects,
        )
    return CameraView(**camera.model_dump(), **extra)


def _stale_after(res: ResourcesDep) -> float:
    return max(15.0, STALE_INTERVALS * res.settings.health_interval_s)


def _audit_view(camera: Camera) -> dict[str, Any]:
    return camera.model_dump(mode="json")


@router.post("", status_code=status.HTTP_201_CREATED, response_model=CameraView)
def create_camera(spec: CameraSpec, who: Operator, res: ResourcesDep) -> CameraView:
    """Register a camera by stream URL, with its location and zones. Workers pick it up within seconds."""
    try:
        camera = res.registry.create(spec, who.name)
    except DuplicateExternalId as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    audit(res.redis, who.name, "camera.create", camera.id, after=_audit_view(camera))
    return _view(camera, None, _stale_after(res))


@router.get("", response_model=CameraList)
def list_cameras(who: Viewer, res: ResourcesDep) -> CameraList:
    """Every camera with its live state."""
    cameras = res.registry.all()
    health = read_health(res.redis, [c.id for c in cameras])
    stale = _stale_after(res)
    return CameraList(cameras=[_view(c, health.get(c.id), stale) for c in cameras])


@router.get("/{camera_id}", response_model=CameraView)
def get_camera(camera_id: str, who: Viewer, res: ResourcesDep) -> CameraView:
    """One camera with its live state (connecting, online, offline, ...) and last frame time."""
    camera = res.registry.get(camera_id)
    if camera is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera with id {camera_id!r}")
    return _view(camera, read_health(res.redis, [camera_id]).get(camera_id), _stale_after(res))


@router.put("/{camera_id}", response_model=CameraView)
def update_camera(camera_id: str, spec: CameraSpec, who: Operator, res: ResourcesDep) -> CameraView:
    """Replace a camera's settings; its worker restarts it with the new ones."""
    try:
        changed = res.registry.update(camera_id, spec, who.name)
    except DuplicateExternalId as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, str(exc)) from None
    if changed is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera with id {camera_id!r}")
    before, after = changed
    audit(res.redis, who.name, "camera.update", camera_id, before=_audit_view(before), after=_audit_view(after))
    return _view(after, None, _stale_after(res))


@router.delete("/{camera_id}", status_code=status.HTTP_204_NO_CONTENT)
def delete_camera(camera_id: str, who: Operator, res: ResourcesDep) -> Response:
    """Remove a camera; its worker stops watching it."""
    before = res.registry.delete(camera_id)
    if before is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no camera with id {camera_id!r}")
    audit(res.redis, who.name, "camera.delete", camera_id, before=_audit_view(before))
    return Response(status_code=status.HTTP_204_NO_CONTENT)
