"""Workers on the real registry and Redis: following registry changes, health through the reporter, and
the process pool splitting cameras between processes."""

from __future__ import annotations

import time
from pathlib import Path

import redis
from pydantic import SecretStr

from ingest.cameras import CameraState
from ingest.health import HEALTH_KEY, read_health, read_workers
from ingest.registry import CameraRegistry
from ingest.secretbox import load_secret_box
from ingest.worker import WorkerPool
from tests.ingest_fixtures import fast_settings, register, spec, start_worker, wait_for
from tests.peers import RtspServer

pytest_plugins = ["tests.ingest_fixtures"]


def _states(client: redis.Redis, ids: list[str]) -> dict[str, CameraState]:
    return {cid: h.state for cid, h in read_health(client, ids).items()}


def test_worker_follows_registry_changes(
    tmp_path: Path, redis_url: str, rclient: redis.Redis, small_h264: Path
) -> None:
    settings = fast_settings(tmp_path, redis_url)
    a, b = register(rclient, spec(small_h264.as_uri(), "a"), spec(small_h264.as_uri(), "b"))
    with start_worker(settings, rclient) as running:
        wait_for(lambda: _states(rclient, [a, b]) == {a: CameraState.ONLINE, b: CameraState.ONLINE}, 20, "both online")
        wait_for(lambda: read_health(rclient, [a])[a].keyframe_interval_s is not None, 10, "a keyframe interval")
        health = read_health(rclient, [a])[a]
        assert health.fps_received > 0 and health.mode == "idle" and health.width == 320
        wait_for(lambda: any(w.cameras == 2 for w in read_workers(rclient)), 10, "the worker's summary")

        registry = CameraRegistry(rclient)
        camera_a = registry.get(a)
        assert camera_a is not None
        registry.update(a, spec(small_h264.as_uri(), "a", enabled=False), "test")
        registry.delete(b)
        wait_for(lambda: _states(rclient, [a]) == {a: CameraState.DISABLED}, 10, "a disabled")
        wait_for(lambda: rclient.get(HEALTH_KEY.format(id=b)) is None, 10, "b's health removed")
        assert running.worker.runners == {}


def test_pool_splits_cameras_across_processes(
    tmp_path: Path, redis_url: str, rclient: redis.Redis, small_h264: Path
) -> None:
    settings = fast_settings(tmp_path, redis_url, worker_procs=2)
    ids = register(rclient, *(spec(small_h264.as_uri(), f"cam {i}") for i in range(6)))
    pool = WorkerPool(settings, redis_url)
    pool.start()
    try:
        wait_for(
            lambda: set(_states(rclient, ids).values()) == {CameraState.ONLINE} and len(_states(rclient, ids)) == 6,
            60,
            "six cameras online",
        )
        workers = {h.worker for h in read_health(rclient, ids).values()}
    finally:
        started = time.monotonic()
        pool.stop()
        stop_s = time.monotonic() - started
    assert len(workers) == 2
    assert all(not p.is_alive() for p in pool.procs) and stop_s < 15  # stopped, not killed


def test_stored_passwords_reach_the_camera_and_never_its_health(
    need_gst: None, tmp_path: Path, redis_url: str, rclient: redis.Redis, small_h264: Path
) -> None:
    settings = fast_settings(tmp_path, redis_url)
    registry = CameraRegistry(rclient, box=load_secret_box(settings))
    with RtspServer({"cam": small_h264}, user="viewer", password="pa ss:wörd") as rtsp:
        url = rtsp.url("cam")
        good = registry.create(spec(url, "right", username="viewer", password=SecretStr("pa ss:wörd")), "test").id
        bad = registry.create(spec(url, "wrong", username="viewer", password=SecretStr("guess")), "test").id
        with start_worker(settings, rclient):
            wait_for(
                lambda: _states(rclient, [good, bad]) == {good: CameraState.ONLINE, bad: CameraState.AUTH_FAILED},
                30,
                "the right password online, the wrong one auth_failed",
            )
            health = read_health(rclient, [bad])[bad]
    assert health.last_error is not None and "401" in health.last_error and "guess" not in health.last_error
