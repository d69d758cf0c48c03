"""Health reports: the model the API reads, staleness, and the reporter's bounded write rate (real Redis)."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from ingest.cameras import CameraState
from ingest.health import (
    HEALTH_KEY,
    CameraHealth,
    HealthReporter,
    WorkerHealth,
    effective_state,
    read_health,
    read_workers,
    write_health,
)


def _health(state: CameraState = CameraState.ONLINE, reported_at: float | None = None) -> CameraHealth:
    now = time.time()
    return CameraHealth(state=state, since=now, reported_at=now if reported_at is None else reported_at, worker="w:1")


def test_health_round_trips_through_redis(rclient: redis.Redis) -> None:
    write_health(rclient, "cam_a", _health().model_copy(update={"warnings": ("keyframe every 8.0 s",)}))
    got = read_health(rclient, ["cam_a", "cam_missing"])
    assert list(got) == ["cam_a"] and got["cam_a"].warnings == ("keyframe every 8.0 s",)
    assert read_health(rclient, []) == {}


def test_old_reports_without_the_new_fields_still_parse() -> None:
    old = '{"state":"online","since":1,"reported_at":2,"worker":"w","fps_received":25.0}'
    assert CameraHealth.model_validate_json(old).mode is None


def test_a_stale_report_means_nobody_is_watching() -> None:
    fresh = effective_state(_health(CameraState.STALLED), created_at=0, stale_after_s=15)
    assert fresh == (CameraState.STALLED, None)
    state, message = effective_state(_health(reported_at=time.time() - 60), created_at=0, stale_after_s=15)
    assert state is CameraState.OFFLINE and message is not None and "w:1" in message
    assert effective_state(None, created_at=time.time(), stale_after_s=15)[0] is CameraState.CONNECTING


@dataclass
class Source:
    """A camera as the reporter sees it (the interface CameraRunner implements)."""

    camera_id: str
    state: CameraState = CameraState.ONLINE
    dirty: bool = True
    reports: int = 0
    watchdog_checks: list[float] = field(default_factory=list)

    def health(self) -> CameraHealth:
        self.dirty = False
        self.reports += 1
        return _health(self.state)

    def check_watchdog(self, now_mono: float) -> None:
        self.watchdog_checks.append(now_mono)


def test_reporter_writes_changes_at_once_and_the_rest_once_per_interval(rclient: redis.Redis) -> None:
    summaries = []

    def summary() -> WorkerHealth:
        summaries.append(1)
        return WorkerHealth(
            worker="w:1",
            reported_at=time.time(),
            cameras=3,
            active=0,
            states={"online": 3},
            opens_per_second_budget=20,
            opens=3,
            max_opens_in_one_second=3,
            open_waits=0,
            cpu_s=0.1,
            rss_mb=50.0,
        )

    reporter = HealthReporter(rclient, interval_s=3600, min_interval_s=0.25, summary=summary)
    sources = [Source(f"cam_{i}") for i in range(3)]
    assert reporter.tick(sources) == 3  # first report of each
    assert reporter.tick(sources) == 0  # nothing changed, interval not over: no write at all
    sources[1].state, sources[1].dirty = CameraState.STALLED, True
    assert reporter.tick(sources) == 1
    assert read_health(rclient, ["cam_1"])["cam_1"].state is CameraState.STALLED
    assert all(len(s.watchdog_checks) == 3 for s in sources)
    assert len(summaries) == 1 and [w.worker for w in read_workers(rclient)] == ["w:1"]
    assert rclient.ttl("sharpeyes:worker:w:1") > 0


def test_reporter_survives_redis_errors(rclient: redis.Redis) -> None:
    dead = redis.Redis(host="127.0.0.1", port=1, socket_connect_timeout=0.2, retry=Retry(NoBackoff(), 0))
    reporter = HealthReporter(dead, interval_s=1.0)
    source = Source("cam_x")
    assert reporter.tick([source]) == 0 and reporter.failures == 1
    assert rclient.get(HEALTH_KEY.format(id="cam_x")) is None
