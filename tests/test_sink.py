"""The sink: emit is acknowledged by the outbox; the drain publishes in order, through outages, once."""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path
from typing import Any, cast

import av
import numpy as np
import pytest
import redis

from alerts.drain import DrainConfig, outbox_dir
from alerts.models import Alert
from alerts.outbox import Outbox
from alerts.publisher import ALERTS_STREAM, INCIDENTS_STREAM, AlertPublisher
from alerts.sink import AlertSink
from alerts.snapshots import FileSnapshotStore
from detectors.events import EventPhase
from tests.incident_fixtures import event, incident_settings, make_camera, wait_until
from tests.peers import RedisServerProcess

FAST = DrainConfig(adopt_every_s=0.1, report_every_s=0.2, retry_max_s=0.5)
T0 = 1_700_000_000.0


def _wall(client: redis.Redis) -> list[Alert]:
    return [Alert.model_validate_json(f[b"alert"]) for _, f in cast(list[Any], client.xrange(ALERTS_STREAM))]


def test_emit_stores_then_drain_publishes(tmp_path: Path, redis_url: str, rclient: redis.Redis) -> None:
    sink = AlertSink.from_settings(incident_settings(tmp_path, redis_url), rclient, drain_config=FAST)
    cam = make_camera("cam_1")
    start = sink.emit(event("cam_1", T0), cam, "default", None)
    sink.emit(event("cam_1", T0, EventPhase.END, t_s=T0 + 9), cam, "default", None)
    assert sink.flush(10)
    assert rclient.xlen(INCIDENTS_STREAM) == 1
    assert [a.phase for a in _wall(rclient)] == [EventPhase.START, EventPhase.END]
    assert _wall(rclient)[0] == start
    assert sink.status().accepted == 2 and sink.status().outbox_depth == 0
    sink.close()
    sink.release()
    assert not list(outbox_dir(tmp_path / "data").glob("*.sqlite"))  # drained and released: removed


def test_outage_grows_the_outbox_and_drains_in_order(tmp_path: Path) -> None:
    with RedisServerProcess() as server:
        client = redis.Redis.from_url(server.url, socket_timeout=2)
        sink = AlertSink.from_settings(incident_settings(tmp_path, server.url), client, drain_config=FAST)
        cam = make_camera("cam_1")
        server.stop()
        for i in range(30):  # acknowledged by the local outbox: Redis is gone
            sink.emit(event("cam_1", T0 + i), cam, "default", None)
        assert sink.status().accepted == 30
        wait_until(lambda: sink.status().redis_outage, 10, "the drain to notice the outage")
        assert sink.status().outbox_depth == 30
        server.start()
        assert sink.flush(20)
        assert not sink.status().redis_outage
        assert [a.started_at.timestamp() for a in _wall(client)] == [T0 + i for i in range(30)]
        assert client.xlen(INCIDENTS_STREAM) == 30
        sink.close()
        sink.release()


def test_update_and_end_carry_the_snapshot(tmp_path: Path, redis_url: str, rclient: redis.Redis) -> None:
    settings = incident_settings(tmp_path, redis_url)
    sink = AlertSink.from_settings(settings, rclient, drain_config=FAST)
    cam = make_camera("cam_1")
    frame = av.VideoFrame.from_ndarray(np.full((360, 640, 3), 90, np.uint8), format="bgr24")
    start = sink.emit(event("cam_1", T0), cam, "default", frame)
    end = sink.emit(event("cam_1", T0, EventPhase.END, t_s=T0 + 5), cam, "default", None)
    assert start.snapshot == end.snapshot == f"/api/v1/alerts/{start.id}/snapshot"
    jpeg = FileSnapshotStore(settings.data_dir / "snapshots").get(start.id)
    assert jpeg is not None and jpeg[:2] == b"\xff\xd8"
    sink.close()
    sink.release()


def test_a_dead_workers_outbox_is_adopted(tmp_path: Path, redis_url: str, rclient: redis.Redis) -> None:
    settings = incident_settings(tmp_path, redis_url)
    orphan = Outbox.claim(outbox_dir(settings.data_dir), settings.outbox_quota_bytes)
    cam = make_camera("cam_9")
    for i in range(5):
        orphan.append(Alert.from_event(event("cam_9", T0 + i), cam, "default", False).model_dump_json())
    orphan.close()  # its worker is gone: the lock is free
    sink = AlertSink.from_settings(settings, rclient, drain_config=FAST)  # claims the orphan as its own
    other = AlertSink.from_settings(settings, rclient, drain_config=FAST)
    assert sink.flush(10) and other.flush(10)
    assert rclient.xlen(INCIDENTS_STREAM) == 5
    # A second orphan appears while both run: one of them adopts it.
    late = Outbox.claim(outbox_dir(settings.data_dir), settings.outbox_quota_bytes)
    late.append(Alert.from_event(event("cam_9", T0 + 99), cam, "default", False).model_dump_json())
    late.close()
    wait_until(lambda: rclient.xlen(INCIDENTS_STREAM) == 6, 10, "the late orphan to be drained")
    for s in (sink, other):
        s.close()
        s.release()
    assert not list(outbox_dir(settings.data_dir).glob("*.sqlite"))


def test_a_record_redis_refuses_is_quarantined(tmp_path: Path, redis_url: str, rclient: redis.Redis) -> None:
    settings = incident_settings(tmp_path, redis_url, incident_cluster_radius_m=100.0)
    sink = AlertSink.from_settings(settings, rclient, drain_config=FAST)
    bad_cam = make_camera("cam_bad", lon=999.0, validate=False)  # GEO refuses it: a permanent error
    sink.emit(event("cam_bad", T0), bad_cam, "default", None)
    sink.emit(event("cam_1", T0), make_camera("cam_1"), "default", None)
    assert sink.flush(10)
    assert sink.drainer is not None and sink.drainer.stats.quarantined == 1
    assert sink.drainer.stats.published["clustered"] == 1
    sink.close()
    sink.release()


def test_direct_mode_without_outbox(tmp_path: Path, rclient: redis.Redis) -> None:
    sink = AlertSink(AlertPublisher(rclient, 1000), FileSnapshotStore(tmp_path), 80)
    sink.emit(event("cam_1", T0), make_camera("cam_1"), "default", None)
    assert sink.published == 1 and rclient.xlen(INCIDENTS_STREAM) == 1


def test_outbox_needs_a_client(tmp_path: Path, rclient: redis.Redis) -> None:
    box = Outbox.claim(tmp_path, 1 << 20)
    with pytest.raises(ValueError, match="needs the Redis client"):
        AlertSink(AlertPublisher(rclient, 1000), FileSnapshotStore(tmp_path), 80, outbox=box)
    box.close()


def test_settings_reach_the_publisher(tmp_path: Path, redis_url: str, rclient: redis.Redis) -> None:
    settings = incident_settings(tmp_path, redis_url, incident_merge_window_s=120.0, incidents_maxlen=5000)
    policy = AlertPublisher.from_settings(settings, rclient).policy
    assert (policy.merge_window_s, policy.incidents_maxlen) == (120.0, 5000)
    assert policy.incidents_retention_s == 30 * 86400
    assert replace(policy, merge_window_s=0).merge_window_s == 0
