"""Helpers and fixtures for the ingest engine's tests: cameras, fast settings, small and damaged clips."""

from __future__ import annotations

import random
import threading
import time
from collections.abc import Callable, Iterator
from dataclasses import replace
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import redis

from config.settings import Settings, load_settings
from detectors.zones import Zone
from ingest.assignment import LocalSplit
from ingest.cameras import Camera, CameraSpec, Location
from ingest.registry import CameraRegistry
from ingest.synthetic import SceneSpec, write_clip
from ingest.worker import Worker

FULL = Zone(name="all", polygon=((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)))
# A small scene for the many-camera tests: 320x180 keeps the test process's decode cost low.
SMALL_SCENE = SceneSpec(width=320, height=180, fps=25, duration_s=4.0, noise_sigma=2.0, seed=11)


def make_camera(url: str, cid: str = "cam_test", zones: tuple[Zone, ...] = (FULL,), name: str = "test") -> Camera:
    """A registered-looking camera without the registry."""
    now = datetime.now(UTC)
    return Camera(
        id=cid,
        name=name,
        stream_url=url,
        location=Location(lat=52.0, lon=4.0),
        zones=zones,
        created_at=now,
        updated_at=now,
        created_by="test",
        updated_by="test",
    )


def spec(url: str, name: str, **extra: Any) -> CameraSpec:
    """A camera spec for the registry."""
    return CameraSpec(name=name, stream_url=url, location=Location(lat=52.0, lon=4.0), zones=(FULL,), **extra)


def fast_settings(tmp_path: Path, redis_url: str, **overrides: Any) -> Settings:
    """Settings with short timeouts, so that fault tests take seconds."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "data_dir": tmp_path / "data",
        "health_interval_s": 0.5,
        "registry_poll_s": 0.2,
        "open_timeout_s": 1.5,
        "read_timeout_s": 1.5,
        "reconnect_base_s": 0.5,
        "degraded_window_s": 3.0,
        "event_end_quiet_s": 2.0,
    }
    values.update(overrides)
    return load_settings(**values)


@pytest.fixture(scope="session")
def small_h264(clip_dir: Path) -> Path:
    """Raw H.264, 320x180, 25 fps, keyframe every second, 4 s, nothing moving."""
    path = clip_dir / "ingest-small-v1.h264"
    if not path.is_file():
        write_clip(SMALL_SCENE, path, keyint=25, bitrate_kbps=250, container="h264")
    return path


@pytest.fixture(scope="session")
def slow_h264(clip_dir: Path) -> Path:
    """Raw H.264, 320x180, 5 fps, keyframe every second, 4 s: for tests of many cameras at once, where the
    server and the worker on a 2-core machine cannot carry 100 streams at 25 fps."""
    path = clip_dir / "ingest-slow-v1.h264"
    if not path.is_file():
        write_clip(replace(SMALL_SCENE, fps=5), path, keyint=5, bitrate_kbps=100, container="h264")
    return path


def _nal_spans(data: bytes) -> Iterator[tuple[int, int, int]]:
    """(payload start, end, nal type) of each NAL unit of an Annex-B stream."""
    starts: list[int] = []
    i = data.find(b"\x00\x00\x01")
    while i >= 0:
        starts.append(i + 3)
        i = data.find(b"\x00\x00\x01", i + 3)
    for n, start in enumerate(starts):
        end = starts[n + 1] - 3 if n + 1 < len(starts) else len(data)
        while end > start and data[end - 1] == 0:
            end -= 1  # the zero of a 4-byte start code belongs to the next NAL
        yield start, end, data[start] & 0x1F


def corrupt_h264(src: Path, dst: Path, seed: int = 5) -> Path:
    """A copy of ``src`` with random bytes spliced over the middle of every IDR slice (and every 7th P).

    The bytes contain no zero, so no start code appears: the NAL framing survives, the picture does not.
    """
    data = bytearray(src.read_bytes())
    rng = random.Random(seed)
    count = 0
    for start, end, kind in list(_nal_spans(bytes(data))):
        if kind not in (1, 5):
            continue
        count += 1
        if kind == 1 and count % 7:
            continue
        length = end - start
        if length < 64:
            continue
        at = start + length // 3
        span = min(400, length // 3)
        data[at : at + span] = bytes(rng.randrange(1, 256) for _ in range(span))
    dst.write_bytes(bytes(data))
    return dst


def wait_for(predicate: Callable[[], bool], timeout_s: float, what: str, interval_s: float = 0.1) -> float:
    """Poll ``predicate`` until true; returns the seconds it took, fails the test with ``what`` on timeout.

    The timeout is a safety net against hangs, not an assertion about speed.
    """
    start = time.monotonic()
    while not predicate():
        if time.monotonic() - start > timeout_s:
            pytest.fail(f"timed out after {timeout_s} s waiting for {what}")
        time.sleep(interval_s)
    return time.monotonic() - start


class RunningWorker:
    """A :class:`Worker` running in a thread of the test process, on the real registry."""

    def __init__(self, worker: Worker) -> None:
        self.worker = worker
        self.stop = threading.Event()
        self.thread = threading.Thread(target=worker.run, args=(self.stop,), name="test-worker", daemon=True)

    def __enter__(self) -> RunningWorker:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(timeout=30)


def start_worker(settings: Settings, client: redis.Redis, worker_cls: type[Worker] = Worker) -> RunningWorker:
    """A worker holding every camera of the registry (use as a context manager)."""
    return RunningWorker(worker_cls(settings, client, LocalSplit(0, 1)))


def register(client: redis.Redis, *specs: CameraSpec) -> list[str]:
    """Register cameras; returns their ids in order."""
    registry = CameraRegistry(client)
    return [registry.create(s, "test").id for s in specs]
