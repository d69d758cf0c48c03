"""Alerts for the wall and operators, snapshots and event clips (each view audited), and the incidents view."""

from __future__ import annotations

from typing import Annotated, Any, cast

import redis
from fastapi import APIRouter, HTTPException, Path, Query, Response, status
from fastapi.responses import FileResponse
from pydantic import BaseModel

from alerts.clips import FileClipStore, clip_dir
from alerts.models import Alert
from alerts.publisher import ALERT_KEY, ALERTS_STREAM, INCIDENTS_STREAM
from api.audit import audit
from api.deps import CaseSystem, ResourcesDep, Viewer

router = APIRouter(prefix="/api/v1", tags=["alerts"])

StreamRows = list[tuple[bytes, dict[bytes, bytes]]]
_STREAM_ID = r"^(\d{1,20}-\d{1,20}|\$|0)$"
AlertId = Annotated[str, Path(pattern=r"^[0-9a-f]{32}$", description="The alert id (its idempotency key)")]


class AlertList(BaseModel):
    """Alerts, newest first, one entry per event in its latest phase."""

    alerts: list[Alert]


class FeedPage(BaseModel):
    """Lifecycle messages after ``after``, oldest first; pass ``last_id`` back as ``after``."""

    last_id: str
    messages: list[Alert]


def _decode(rows: StreamRows) -> list[tuple[str, Alert]]:
    return [(sid.decode(), Alert.model_validate_json(fields[b"alert"])) for sid, fields in rows]


@router.get("/alerts", response_model=AlertList)
def list_alerts(
    who: Viewer,
    res: ResourcesDep,
    limit: Annotated[int, Query(ge=1, le=500)] = 50,
    camera_id: str | None = None,
) -> AlertList:
    """The latest alerts, one per event (its newest lifecycle message), newest first."""
    seen: dict[str, Alert] = {}
    end = "+"
    # Scan backwards in pages: an event has several messages, and a camera filter skips others'.
    while len(seen) < limit:
        rows = cast(StreamRows, res.redis.xrevrange(ALERTS_STREAM, max=end, min="-", count=500))
        if not rows:
            break
        for _sid, alert in _decode(rows):
            if camera_id is not None and alert.camera_id != camera_id:
                continue
            if alert.id not in seen and len(seen) < limit:
                seen[alert.id] = alert
        end = f"({rows[-1][0].decode()}"
    return AlertList(alerts=list(seen.values()))


@router.get("/alerts/feed", response_model=FeedPage)
async def alert_feed(
    who: Viewer,
    res: ResourcesDep,
    after: Annotated[str | None, Query(pattern=_STREAM_ID)] = None,
    wait: Annotated[float, Query(ge=0, le=30)] = 20.0,
) -> FeedPage:
    """Long-poll the wall feed: returns as soon as messages after ``after`` exist, or after ``wait`` s."""
    if after is None:
        rows = cast(StreamRows, await res.aredis.xrevrange(ALERTS_STREAM, count=100))
        rows.reverse()
        last = rows[-1][0].decode() if rows else "0"
        return FeedPage(last_id=last, messages=[a for _, a in _decode(rows)])
    block = int(wait * 1000) if wait > 0 else None
    reply = cast(list[Any], await res.aredis.xread({ALERTS_STREAM: after}, count=200, block=block))
    if not reply:
        return FeedPage(last_id=after, messages=[])
    rows = cast(StreamRows, reply[0][1])
    return FeedPage(last_id=rows[-1][0].decode(), messages=[a for _, a in _decode(rows)])


def _get_alert(client: redis.Redis, alert_id: str) -> Alert:
    raw = client.get(ALERT_KEY.format(id=alert_id))
    if raw is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no alert with id {alert_id!r}")
    return Alert.model_validate_json(cast(bytes, raw))


@router.get("/alerts/{alert_id}", response_model=Alert)
def get_alert(alert_id: AlertId, who: Viewer, res: ResourcesDep) -> Alert:
    """One alert in its latest phase."""
    return _get_alert(res.redis, alert_id)


@router.get("/alerts/{alert_id}/snapshot", response_class=Response)
def get_snapshot(alert_id: AlertId, who: Viewer, res: ResourcesDep) -> Response:
    """The alert's JPEG snapshot, privacy-masked. Every view is written to the audit stream."""
    alert = _get_alert(res.redis, alert_id)
    jpeg = res.snapshots.get(alert.id)
    if jpeg is None:
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id!r} has no snapshot (none taken, or expired)")
    audit(res.redis, who.name, "snapshot.view", alert.id, after={"camera_id": alert.camera_id})
    return Response(jpeg, media_type="image/jpeg", headers={"Cache-Control": "private, no-store"})


@router.get(
    "/alerts/{alert_id}/clip",
    response_class=FileResponse,
    responses={200: {"content": {"video/mp4": {}}, "description": "The event clip (H.264 in MP4, not re-encoded)"}},
)
def get_clip(alert_id: AlertId, who: Viewer, res: ResourcesDep) -> FileResponse:
    """The alert's MP4 clip: the seconds before the event and the event itself. Every view is audited."""
    alert = _get_alert(res.redis, alert_id)
    store = FileClipStore(clip_dir(res.settings))
    path = store.path(alert.id)
    if path is None:
        if alert.clip is not None and store.recording(alert.id):
            raise HTTPException(
                status.HTTP_404_NOT_FOUND,
                f"the clip of alert {alert_id!r} is still being recorded: try again after the event ends",
                headers={"Retry-After": "10"},
            )
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"alert {alert_id!r} has no clip (none recorded, or expired)")
    audit(res.redis, who.name, "clip.view", alert.id, after={"camera_id": alert.camera_id})
    return FileResponse(
        path,
        media_type="video/mp4",
        filename=f"{alert.id}.mp4",
        headers={"Cache-Control": "private, no-store"},
    )


@router.get("/incidents", response_model=FeedPage)
def list_incidents(
    who: CaseSystem,
    res: ResourcesDep,
    after: Annotated[str, Query(pattern=_STREAM_ID)] = "0",
    limit: Annotated[int, Query(ge=1, le=1000)] = 100,
) -> FeedPage:
    """Incidents after ``after``, oldest first (read-only; case systems consume with XREADGROUP)."""
    start = "-" if after == "0" else f"({after}"
    rows = cast(StreamRows, res.redis.xrange(INCIDENTS_STREAM, min=start, max="+", count=limit))
    last = rows[-1][0].decode() if rows else after
    return FeedPage(last_id=last, messages=[a for _, a in _decode(rows)])
