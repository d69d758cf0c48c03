"""Workers on the real registry and Redis: following registry changes, health through the reporter, and
the process pool splitting cameras between processes."""

from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

import redis
from pydantic import SecretStr

from alerts.snapshots import FileSnapshotStore
from ingest.assignment import LocalSplit
from ingest.cameras import CameraState
from ingest.health import HEALTH_KEY, read_health, read_workers
from ingest.registry import CameraRegistry
from ingest.secretbox import load_secret_box
from ingest.worker import Worker, WorkerPool
from tests.incident_fixtures import event
from tests.ingest_fixtures import RunningWorker, fast_settings, register, spec, start_worker, wait_for
from tests.mainstream_fixtures import decode_jpeg, detection_clip, first_frame, main_clip
from tests.peers import RtspServer


def _states(client: redis.Redis, ids: list[str]) -> dict[str, CameraState]:
    return {cid: h.state for cid, h in read_health(client, ids).items()}


def test_the_packet_hook_sees_every_packet_of_every_camera(
    tmp_path: Path, redis_url: str, rclient: redis.Redis, small_h264: Path
) -> None:
    seen: dict[str, int] = {}

    def hook(camera_id: str, packet: object) -> None:
        seen[camera_id] = seen.get(camera_id, 0) + 1

    [cid] = register(rclient, spec(small_h264.as_uri(), "hooked"))
    worker = Worker(fast_settings(tmp_path, redis_url), rclient, LocalSplit(0, 1), packet_hook=hook)
    with RunningWorker(worker):
        wait_for(lambda: seen.get(cid, 0) >= 30, 20, "30 packets through the hook")
    assert seen[cid] >= 30 and list(seen) == [cid]


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
    # Ids are random and split by hash: six of them all land on one process once in 32 runs, so register
    # until each process owns at least two.
    ids: list[str] = []
    while len(ids) < 6 or min(sum(LocalSplit(i, 2).owns(c) for c in ids) for i in range(2)) < 2:
        ids += register(rclient, spec(small_h264.as_uri(), f"cam {len(ids)}"))
    pool = WorkerPool(settings, redis_url)
    pool.start()
    try:
        wait_for(
            lambda: list(_states(rclient, ids).values()) == [CameraState.ONLINE] * len(ids),
            60,
            "every camera online",
        )
        health = read_health(rclient, ids)
        workers = {h.worker for h in health.values()}
        by_index = {i: {health[c].worker for c in ids if LocalSplit(i, 2).owns(c)} for i in range(2)}
    finally:
        started = time.monotonic()
        pool.stop()
        stop_s = time.monotonic() - started
    assert len(workers) == 2 and all(len(names) == 1 for names in by_index.values())  # each held by its owner
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


def test_main_stream_snapshots_open_with_the_stored_password(
    need_gst: None, clip_dir: Path, tmp_path: Path, redis_url: str, rclient: redis.Redis
) -> None:
    settings = fast_settings(tmp_path, redis_url)
    registry = CameraRegistry(rclient, box=load_secret_box(settings))
    mounts = {"main": main_clip(clip_dir), "sub": detection_clip(clip_dir)}
    with RtspServer(mounts, user="viewer", password="pa ss:wörd") as rtsp:
        two_streams = spec(
            rtsp.url("sub"),
            "two streams",
            main_stream_url=rtsp.url("main"),
            username="viewer",
            password=SecretStr("pa ss:wörd"),
        )
        camera = registry.create(two_streams, "test")
        # Not run: its sink is driven directly, as a camera thread would on an event's start.
        worker = Worker(settings, rclient, LocalSplit(0, 1))
        sink = worker._alert_sink
        assert sink is not None and sink.grabber is not None
        alert = sink.emit(event(camera.id, 1_700_000_000.0), camera, "default", first_frame(detection_clip(clip_dir)))
        store = FileSnapshotStore(settings.data_dir / "snapshots")

        def main_resolution() -> bool:
            jpeg = store.get(alert.id)
            return jpeg is not None and decode_jpeg(jpeg).shape == (720, 1280, 3)

        wait_for(main_resolution, 15, "the main stream's keyframe, opened with the decrypted password")
        sink.close()
        sink.release()


def _children(pid: int) -> list[int]:
    out: list[int] = []
    for task in os.listdir(f"/proc/{pid}/task"):
        with open(f"/proc/{pid}/task/{task}/children") as f:
            out += [int(c) for c in f.read().split()]
    return out


def test_worker_processes_do_not_outlive_a_killed_sharpeyes_worker(tmp_path: Path, redis_url: str) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARPEYES_")}
    env.update(SHARPEYES_REDIS_URL=redis_url, SHARPEYES_DATA_DIR=str(tmp_path / "data"), SHARPEYES_WORKER_PROCS="2")
    proc = subprocess.Popen(
        [sys.executable, "-m", "sharpeyes", "worker"], env=env, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL
    )
    try:
        wait_for(lambda: len(_children(proc.pid)) >= 3, 30, "two worker processes and the resource tracker")
        workers = _children(proc.pid)
        proc.kill()  # SIGKILL: no chance to stop its pool
        proc.wait()
        wait_for(lambda: not any(os.path.exists(f"/proc/{p}/status") and _alive(p) for p in workers), 20, "no orphan")
    finally:
        if proc.poll() is None:
            proc.kill()


def _alive(pid: int) -> bool:
    with open(f"/proc/{pid}/status") as f:
        return "State:\tZ" not in f.read()
