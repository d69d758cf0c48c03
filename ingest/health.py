"""Per-camera health as workers report it and the API shows it."""

from __future__ import annotations

import time
from typing import cast

import redis
from pydantic import BaseModel, ConfigDict

from ingest.cameras import CameraState

HEALTH_KEY = "sharpeyes:health:{id}"


class CameraHealth(BaseModel):
    """One camera's live state, written by the worker that holds it."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    state: CameraState
    since: float
    reported_at: float
    worker: str
    last_frame_at: float | None = None
    last_error: str | None = None
    fps_received: float = 0.0
    fps_analysed: float = 0.0
    keyframe_interval_s: float | None = None
    reconnects: int = 0
    decode_errors: int = 0
    bitrate_kbps: float = 0.0


def write_health(client: redis.Redis, camera_id: str, health: CameraHealth) -> None:
    """Store ``health``; callers decide the rate (on state change, else every ``health_interval_s``)."""
    client.set(HEALTH_KEY.format(id=camera_id), health.model_dump_json())


def read_health(client: redis.Redis, camera_ids: list[str]) -> dict[str, CameraHealth]:
    """Health of the given cameras; cameras no worker has reported on are absent."""
    if not camera_ids:
        return {}
    raws = cast(list[bytes | None], client.mget([HEALTH_KEY.format(id=i) for i in camera_ids]))
    return {cid: CameraHealth.model_validate_json(raw) for cid, raw in zip(camera_ids, raws, strict=True) if raw}


def effective_state(
    health: CameraHealth | None, created_at: float, stale_after_s: float
) -> tuple[CameraState, str | None]:
    """The state to show: a report older than ``stale_after_s`` means no worker is watching the camera."""
    now = time.time()
    if health is None:
        if now - created_at < stale_after_s:
            return CameraState.CONNECTING, None
        return CameraState.OFFLINE, "no worker has reported on this camera: is `sharpeyes worker` running?"
    if now - health.reported_at > stale_after_s:
        return (
            CameraState.OFFLINE,
            f"no report from worker {health.worker} for {now - health.reported_at:.0f} s",
        )
    return health.state, health.last_error
