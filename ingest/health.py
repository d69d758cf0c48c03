"""Per-camera health as workers report it and the API shows it, and the reporter that writes it.

Camera threads never talk to Redis about health: they update counters and their state, and one
:class:`HealthReporter` thread per worker writes every camera whose state changed (at most every
``min_interval_s``) or whose last report is ``interval_s`` old, all in one pipeline per tick. So the Redis
load is bounded by the number of cameras over ``interval_s`` plus state changes, and a slow Redis slows
the reports, never the cameras.
"""

from __future__ import annotations

import logging
import threading
import time
from collections.abc import Callable, Iterable
from datetime import UTC, datetime
from typing import Protocol, cast

import redis
from pydantic import BaseModel, ConfigDict

from ingest.cameras import CameraState
from ingest.frames import DecodeMode

log = logging.getLogger(__name__)

HEALTH_KEY = "sharpeyes:health:{id}"
WORKER_KEY = "sharpeyes:worker:{name}"
# A worker's own summary expires when it is not refreshed: a dead worker disappears from the list.
_WORKER_TTL_S = 60


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
    reconnects: int = 0  # in the last hour
    decode_errors: int = 0  # since the worker took the camera
    bitrate_kbps: float = 0.0
    mode: DecodeMode | None = None
    fps_decoded: float = 0.0
    fps_declared: float | None = None
    frames_dropped: int = 0  # frames not decoded because the camera fell behind real time
    escalations: int = 0
    width: int | None = None
    height: int | None = None
    warnings: tuple[str, ...] = ()


class WorkerHealth(BaseModel):
    """One worker process's summary: what it holds and its reconnect budget counters."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    worker: str
    reported_at: float
    cameras: int
    active: int
    states: dict[str, int]
    opens_per_second_budget: int
    opens: int
    max_opens_in_one_second: int
    open_waits: int
    cpu_s: float
    rss_mb: float
    # Main-stream snapshot grabs (ingest/mainstream.py): done, failed, and dropped because the grabber's
    # bounded queue was full or the request waited too long; an on-call engineer sees snapshots degrade here.
    main_stream_grabs: int = 0
    main_stream_grab_failures: int = 0
    main_stream_grabs_dropped: int = 0


def write_health(client: redis.Redis, camera_id: str, health: CameraHealth) -> None:
    """Store ``health``; callers decide the rate (see :class:`HealthReporter`)."""
    client.set(HEALTH_KEY.format(id=camera_id), health.model_dump_json())


def read_health(client: redis.Redis, camera_ids: list[str]) -> dict[str, CameraHealth]:
    """Health of the given cameras; cameras no worker has reported on are absent."""
    if not camera_ids:
        return {}
    raws = cast(list[bytes | None], client.mget([HEALTH_KEY.format(id=i) for i in camera_ids]))
    return {cid: CameraHealth.model_validate_json(raw) for cid, raw in zip(camera_ids, raws, strict=True) if raw}


def read_workers(client: redis.Redis) -> list[WorkerHealth]:
    """The summaries of the workers that reported within the last minute."""
    # SCAN, not KEYS: KEYS blocks the server while it walks every key (alerts, health of 11,000 cameras).
    keys = sorted(cast(Iterable[bytes], client.scan_iter(match=WORKER_KEY.format(name="*"), count=1000)))
    if not keys:
        return []
    raws = cast(list[bytes | None], client.mget(keys))
    return [WorkerHealth.model_validate_json(raw) for raw in raws if raw]


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
            # A fixed time, not a running count of seconds: the message (and so the map's ETag) stays the same
            # between rebuilds while nothing changes.
            f"no report from worker {health.worker} since "
            f"{datetime.fromtimestamp(health.reported_at, tz=UTC).strftime('%Y-%m-%d %H:%M:%S')} UTC",
        )
    return health.state, health.last_error


class HealthSource(Protocol):
    """What the reporter needs from a camera runner."""

    @property
    def camera_id(self) -> str: ...

    @property
    def dirty(self) -> bool: ...

    def health(self) -> CameraHealth:
        """A fresh report (clears ``dirty``)."""
        ...

    def check_watchdog(self, now_mono: float) -> None:
        """Mark the camera stalled if its stream has been silent too long."""
        ...


class HealthReporter:
    """Writes the health of a worker's cameras at a bounded rate, and runs their stall watchdog."""

    def __init__(
        self,
        client: redis.Redis,
        interval_s: float,
        min_interval_s: float = 0.25,
        summary: Callable[[], WorkerHealth] | None = None,
    ) -> None:
        self._client = client
        self.interval_s = interval_s
        # State changes go out within a quarter second, however many cameras flap at once.
        self.min_interval_s = min(min_interval_s, interval_s)
        self._summary = summary
        self._last: dict[str, float] = {}
        self._last_summary = float("-inf")
        self.writes = 0
        self.ticks = 0
        self.failures = 0

    def tick(self, sources: Iterable[HealthSource]) -> int:
        """Run the watchdog and write what is due; returns the number of cameras written."""
        now = time.monotonic()
        due: list[tuple[str, CameraHealth]] = []
        seen: set[str] = set()
        for src in sources:
            cid = src.camera_id
            seen.add(cid)
            src.check_watchdog(now)
            if src.dirty or now - self._last.get(cid, float("-inf")) >= self.interval_s:
                due.append((cid, src.health()))
        for gone in set(self._last) - seen:
            del self._last[gone]
        summary = None
        if self._summary is not None and now - self._last_summary >= self.interval_s:
            summary = self._summary()
        self.ticks += 1
        if not due and summary is None:
            return 0
        try:
            pipe = self._client.pipeline(transaction=False)
            for cid, health in due:
                pipe.set(HEALTH_KEY.format(id=cid), health.model_dump_json())
            if summary is not None:
                pipe.set(WORKER_KEY.format(name=summary.worker), summary.model_dump_json(), ex=_WORKER_TTL_S)
            pipe.execute()
        except redis.RedisError as exc:
            self.failures += 1
            if self.failures == 1 or self.failures % 100 == 0:
                log.warning("health not written (%d failures so far): %s", self.failures, exc)
            return 0
        for cid, _ in due:
            self._last[cid] = now
        if summary is not None:
            self._last_summary = now
        self.writes += len(due)
        return len(due)

    def run(self, stop: threading.Event, sources: Callable[[], Iterable[HealthSource]]) -> None:
        """Tick every ``min_interval_s`` until ``stop`` is set."""
        while not stop.wait(self.min_interval_s):
            self.tick(list(sources()))
