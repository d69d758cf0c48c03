"""Fault tests of the incident path on real peers: Redis restarted and killed under load, a worker SIGKILLed
between detection and publish, the case system down, the outbox quota reached, hostile names."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import IO, Any, cast

import pytest
import redis
from fastapi.testclient import TestClient

from alerts.consumer import INCIDENTS, CaseConsumer, ConsumerConfig, WebhookDelivery, dead_letter_stream
from alerts.drain import DrainConfig
from alerts.models import Alert
from alerts.sink import AlertSink
from api.auth import Role
from ingest.registry import CameraRegistry
from tests.conftest import auth
from tests.incident_driver import T0 as DRIVER_T0
from tests.incident_fixtures import (
    Webhook,
    aof_redis,
    event,
    incident_settings,
    make_camera,
    running_webhook,
    wait_until,
)
from tests.peers import RedisServerProcess

ROOT = Path(__file__).resolve().parent.parent
FAST = DrainConfig(retry_max_s=0.3, report_every_s=0.5, adopt_every_s=0.2)


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServerProcess]:
    yield from aof_redis(tmp_path)


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    yield from running_webhook()


def _incident_keys(client: redis.Redis) -> list[str]:
    rows = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrange(INCIDENTS))
    return [f[b"idempotency_key"].decode() for _, f in rows]


class _ConsumerThread:
    """The reference consumer running in a thread, against a Redis that may come and go."""

    def __init__(self, url: str, hook: Webhook, group: str = "cases", max_tries: int = 50) -> None:
        client = redis.Redis.from_url(url, socket_timeout=2, socket_connect_timeout=1)
        config = ConsumerConfig(group=group, consumer="t1", max_tries=max_tries, retry_s=0.5, block_ms=100)
        self.consumer = CaseConsumer(client, WebhookDelivery(hook.url, timeout_s=2), config)
        self.stop = threading.Event()
        self.thread = threading.Thread(target=self._run, daemon=True)

    def _run(self) -> None:
        while not self.stop.is_set():
            try:
                self.consumer.run(self.stop)
            except redis.RedisError:
                self.stop.wait(0.2)

    def __enter__(self) -> _ConsumerThread:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop.set()
        self.thread.join(10)


# --- Redis restarted (and killed) while 1,000 alerts are produced ------------------------------------------


def test_redis_restart_and_crash_during_1000_alerts_lose_and_duplicate_nothing(
    tmp_path: Path, persistent_redis: RedisServerProcess, webhook: Webhook
) -> None:
    server = persistent_redis
    client = redis.Redis.from_url(server.url, socket_timeout=2, socket_connect_timeout=1)
    sink = AlertSink.from_settings(incident_settings(tmp_path, server.url), client, drain_config=FAST)
    cameras = [make_camera(f"cam_{n:012d}") for n in range(25)]
    emitted: list[str] = []
    with _ConsumerThread(server.url, webhook):
        for i in range(1000):
            cam = cameras[i % len(cameras)]
            emitted.append(sink.emit(event(cam.id, T0_FAULT + i), cam, "default", None).idempotency_key)
            if i == 300:
                server.restart()  # graceful: what an operator or an upgrade does
            elif i == 650:
                server.kill()  # a crash: with appendfsync everysec, up to a second of writes is gone
                server.start()
            if i % 10 == 0:
                time.sleep(0.002)  # production spreads alerts out; the test keeps the run short
        assert sink.flush(60), f"outbox not drained: {sink.status()}"
        keys = _incident_keys(client)
        assert len(keys) == 1000, f"{len(keys)} incidents for 1000 events"
        assert sorted(keys) == sorted(emitted)
        wait_until(lambda: len(set(webhook.keys())) == 1000, 60, "the case system to receive all 1000")
    # The case system dedups on Idempotency-Key: at most the acknowledgements lost in the crash come twice.
    assert len(webhook.keys()) - 1000 <= 100
    sink.close()
    sink.release()


T0_FAULT = 1_760_000_000.0


# --- a worker SIGKILLed between detection and publish --------------------------------------------------------


class _Driver:
    def __init__(self, url: str, data: Path, count: int, first: int = 0, pace_ms: float = 0.0) -> None:
        argv = [sys.executable, "-m", "tests.incident_driver", "--redis", url, "--data", str(data)]
        argv += ["--count", str(count), "--first", str(first), "--pace-ms", str(pace_ms)]
        self.proc = subprocess.Popen(argv, cwd=ROOT, stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
        self.acked: list[int] = []

    @property
    def out(self) -> IO[str]:
        assert self.proc.stdout is not None
        return self.proc.stdout

    def read_until(self, predicate: Any, timeout: float = 60) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.out.readline().strip()
            if not line:
                raise AssertionError(f"driver exited early with {self.proc.wait()}")
            if line.startswith("ACK "):
                self.acked.append(int(line[4:]))
            if predicate(line):
                return line
        raise AssertionError("driver too slow")

    def kill(self) -> None:
        self.proc.send_signal(signal.SIGKILL)
        self.proc.wait()
        self.out.close()

    def finish(self) -> None:
        self.read_until(lambda line: line == "DRAINED")
        assert self.proc.wait(30) == 0
        self.out.close()


def _driver_keys(count: int) -> set[str]:
    from tests.incident_driver import CAMERAS

    keys = set()
    for i in range(count):
        cam = make_camera(f"cam_{i % CAMERAS:012d}")
        keys.add(Alert.from_event(event(cam.id, DRIVER_T0 + i), cam, "default", False).idempotency_key)
    return keys


def test_worker_killed_with_alerts_in_its_outbox_loses_none(
    tmp_path: Path, persistent_redis: RedisServerProcess
) -> None:
    server = persistent_redis
    client = redis.Redis.from_url(server.url)
    data = tmp_path / "data"
    server.pause()  # Redis hangs: every alert is detected and acknowledged by the outbox, none published
    first = _Driver(server.url, data, count=200)
    first.read_until(lambda line: line == "ACK 199")
    first.kill()
    server.resume()
    assert client.xlen(INCIDENTS) == 0
    # The restarted worker adopts the outbox; it also detects the last 50 events again (same keys).
    second = _Driver(server.url, data, count=200, first=150)
    second.finish()
    keys = _incident_keys(client)
    assert len(keys) == 200 and set(keys) == _driver_keys(200)


def test_worker_killed_mid_publish_loses_and_duplicates_nothing(
    tmp_path: Path, persistent_redis: RedisServerProcess
) -> None:
    server = persistent_redis
    client = redis.Redis.from_url(server.url)
    data = tmp_path / "data"
    total = 400
    run = _Driver(server.url, data, count=total, pace_ms=0.5)
    for kill_after in (120, 260):  # Redis is up: the drain is publishing when the SIGKILL lands
        run.read_until(lambda line, k=kill_after: line == f"ACK {k}")
        run.kill()
        resume = max(run.acked) + 1 - 10  # the 10 events before the crash are detected again
        run = _Driver(server.url, data, count=total, first=resume, pace_ms=0.5)
    run.finish()
    keys = _incident_keys(client)
    assert len(keys) == total, f"{len(keys)} incidents for {total} events (duplicates or losses)"
    assert set(keys) == _driver_keys(total)


# --- the case system down ------------------------------------------------------------------------------------


def test_case_system_down_nothing_acknowledged_dead_letters_then_everything_delivered(
    tmp_path: Path, redis_url: str, rclient: redis.Redis, webhook: Webhook
) -> None:
    sink = AlertSink.from_settings(incident_settings(tmp_path, redis_url), rclient, drain_config=FAST)
    cam = make_camera("cam_1")
    keys = [sink.emit(event("cam_1", T0_FAULT + i), cam, "default", None).idempotency_key for i in range(20)]
    assert sink.flush(10)
    webhook.stop()  # the case system is down: connections refused
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARPEYES_")}
    env["SHARPEYES_REDIS_URL"] = redis_url
    argv = [sys.executable, "-m", "sharpeyes", "cases", "consume", "--group", "cases", "--webhook", webhook.url]
    argv += ["--max-tries", "3", "--retry-s", "0.3", "--timeout", "2"]
    with open(tmp_path / "consumer.log", "wb") as log:
        proc = subprocess.Popen(argv, cwd=ROOT, env=env, stdout=log, stderr=log)
    try:
        dead = dead_letter_stream("cases")

        def accounted() -> int:
            pending = int(rclient.xpending(INCIDENTS, "cases")["pending"]) if rclient.exists(INCIDENTS) else 0
            return pending + int(rclient.xlen(dead))

        wait_until(lambda: rclient.xlen(dead) >= 10, 20, "the first dead letters")
        # More incidents while it is down.
        keys += [sink.emit(event("cam_1", T0_FAULT + 100 + i), cam, "default", None).idempotency_key for i in range(5)]
        assert sink.flush(10)
        wait_until(lambda: rclient.xlen(dead) == 25, 20, "every incident to be dead-lettered after 3 tries")
        # Nothing was acknowledged without being either still pending or kept as a dead letter.
        assert accounted() == 25 and webhook.keys() == []
        for _, entry in rclient.xrange(dead):
            assert entry[b"tries"] == b"3" and entry[b"transient"] == b"1"
            assert b"Connection refused" in entry[b"error"]
        webhook.start()  # the case system is back
        wait_until(lambda: len(webhook.keys()) >= 25, 20, "redelivery once the endpoint answers")
        wait_until(lambda: rclient.xlen(dead) == 0, 10, "the dead letters to be redriven")
        assert sorted(webhook.keys()) == sorted(keys)  # each exactly once
        assert int(rclient.xpending(INCIDENTS, "cases")["pending"]) == 0
    finally:
        proc.send_signal(signal.SIGTERM)
        code = proc.wait(20)
    assert code == 0, (tmp_path / "consumer.log").read_text()
    sink.close()
    sink.release()


# --- the outbox quota ----------------------------------------------------------------------------------------


def test_outbox_quota_raises_the_alarm_keeps_the_oldest_and_does_not_crash(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    with RedisServerProcess() as server:
        client = redis.Redis.from_url(server.url, socket_timeout=1, socket_connect_timeout=0.5)
        settings = incident_settings(tmp_path, server.url, outbox_quota_bytes=64 * 1024)
        sink = AlertSink.from_settings(settings, client, drain_config=FAST)
        server.stop()  # Redis is away long enough to fill the outbox
        cam = make_camera("cam_1")
        emitted = []
        with caplog.at_level(logging.WARNING):
            for i in range(150):
                emitted.append(sink.emit(event("cam_1", T0_FAULT + i), cam, "default", None).idempotency_key)
        status = sink.status()
        assert status.outbox_full and 0 < status.accepted < 150 and status.rejected == 150 - status.accepted
        alarms = [r for r in caplog.records if r.levelno == logging.CRITICAL and "OUTBOX FULL" in r.getMessage()]
        assert len(alarms) == 1  # one alarm per episode, not one per alert
        assert sink.drainer is not None and sink.drainer.report().full
        kept = status.accepted
        server.start()
        assert sink.flush(20)
        keys = _incident_keys(client)
        assert keys == emitted[:kept]  # the oldest were kept, in order
        sink.emit(event("cam_1", T0_FAULT + 1000), cam, "default", None)
        assert not sink.status().outbox_full
        assert any("below its quota again" in r.getMessage() for r in caplog.records)
        sink.close()
        sink.release()


# --- hostile names -------------------------------------------------------------------------------------------

ACCEPTED_NAMES = [
    "Quote \"cam\" 'single' `tick`",
    "Back\\slash \\u0000 literal",
    "</script><img src=x onerror=alert(1)>",
    "Ünïcödé 東京 🚓 \u202eevil\u202c",
    "a" * 128,
]
REFUSED_NAMES = ["ctrl\x00char", "bell\x07", "new\nline", "x" * 10_000, " "]


def test_hostile_names_are_refused_at_registration_or_survive_the_round_trip(
    tmp_path: Path,
    api: TestClient,
    settings: Any,
    redis_url: str,
    rclient: redis.Redis,
    tokens: dict[Role, str],
    webhook: Webhook,
) -> None:
    operator = auth(tokens[Role.OPERATOR])

    def body(name: str, zone: str = "crosswalk") -> dict[str, Any]:
        return {
            "name": name,
            "stream_url": "rtsp://127.0.0.1:8554/cam",
            "location": {"lat": 40.7, "lon": -74.0, "district": "Downtown"},
            "zones": [{"name": zone, "polygon": [[0.2, 0.2], [0.8, 0.2], [0.8, 0.8], [0.2, 0.8]]}],
        }

    for name in REFUSED_NAMES:
        got = api.post("/api/v1/cameras?probe=false", json=body(name), headers=operator)
        assert got.status_code == 422, (name[:20], got.text)
        assert "name" in got.json()["message"]
    for zone in ['say "hi"', "z\x00", "z" * 200]:
        assert api.post("/api/v1/cameras?probe=false", json=body("ok", zone), headers=operator).status_code == 422
    raw = b'{"name": "bad \xff\xfe bytes", "stream_url": "rtsp://127.0.0.1/x", "location": {"lat": 1, "lon": 1}}'
    got = api.post("/api/v1/cameras?probe=false", content=raw, headers={**operator, "Content-Type": "application/json"})
    assert got.status_code in (400, 422), got.text  # not UTF-8: not even JSON

    registry = CameraRegistry(rclient)
    cameras = []
    for name in ACCEPTED_NAMES:
        got = api.post("/api/v1/cameras?probe=false", json=body(name, "Gate #1 (north)/A"), headers=operator)
        assert got.status_code == 201, got.text
        camera = registry.get(got.json()["id"])
        assert camera is not None and camera.name == name
        cameras.append(camera)
    # And cameras that never went through registration (an older registry, a hand-edited record).
    forged = make_camera("cam_forged\udcff", name="raw \x00\x1b[2J\udcfe" + "y" * 10_000, validate=False)
    cameras.append(forged)

    sink = AlertSink.from_settings(incident_settings(tmp_path, redis_url), rclient, drain_config=FAST)
    sent = {}
    for i, cam in enumerate(cameras):
        alert = sink.emit(event(cam.id, T0_FAULT + i, zone=cam.zones[0].name), cam, "default", None)
        sent[alert.idempotency_key] = alert
    assert sink.flush(10)
    config = ConsumerConfig(group="cases", consumer="c", block_ms=20)
    consumer = CaseConsumer(rclient, WebhookDelivery(webhook.url, 5), config)
    consumer.ensure_group()
    while len(webhook.keys()) < len(cameras):
        assert consumer.step() or len(webhook.keys()) == len(cameras)
    received = {b["idempotency_key"]: b for b in webhook.bodies()}
    assert set(received) == set(sent)
    for key, alert in sent.items():
        assert Alert.model_validate(received[key]) == alert  # what was sent is what arrived
    names = {received[k]["camera_name"] for k in received}
    assert set(ACCEPTED_NAMES) <= names
    forged_name = next(n for n in names if n.startswith("raw"))
    assert forged_name.startswith("raw \ufffd\ufffd[2J\ufffd") and len(forged_name) == 256
    assert rclient.xlen(dead_letter_stream("cases")) == 0
    # The wall's API serves them back intact too.
    wall = api.get("/api/v1/alerts?limit=50", headers=auth(tokens[Role.VIEWER])).json()["alerts"]
    assert set(ACCEPTED_NAMES) <= {a["camera_name"] for a in wall}
    sink.close()
    sink.release()
