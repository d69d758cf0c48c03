"""The sink: emit is acknowledged by the outbox; the drain publishes in order, through outages, once."""

from __future__ import annotations

import logging
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
from ingest.cameras import Camera, stream_url_with_credentials
from tests.incident_fixtures import event, incident_settings, make_camera, wait_until
from tests.mainstream_fixtures import PRIVACY, STREET, decode_jpeg, detection_clip, first_frame, main_clip
from tests.peers import RedisServerProcess, RtspServer, free_port

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
        # The drain clears its outage flag just after the step that emptied the outbox returns.
        wait_until(lambda: not sink.status().redis_outage, 10, "the drain to clear its outage flag")
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


# --- snapshots at the main stream's resolution ------------------------------------------------------------------

MAIN_PASSWORD = "pa ss:wörd"


def _two_stream_camera(detection_url: str, main_url: str | None) -> Camera:
    cam = make_camera("cam_1", zones=(PRIVACY, STREET), stream_url=detection_url)
    return cam.model_copy(update={"main_stream_url": main_url, "username": "viewer"})


def _with_password(camera: Camera) -> str | None:
    """The worker's resolver, as the sink sees it: the main-stream URL with the camera's credentials."""
    return stream_url_with_credentials(camera.main_stream_url, camera.username, MAIN_PASSWORD)


def test_the_main_streams_keyframe_replaces_the_start_snapshot(
    need_gst: None, clip_dir: Path, tmp_path: Path, redis_url: str, rclient: redis.Redis
) -> None:
    settings = incident_settings(tmp_path, redis_url)
    store = FileSnapshotStore(settings.data_dir / "snapshots")
    mounts = {"main": main_clip(clip_dir), "sub": detection_clip(clip_dir)}
    with RtspServer(mounts, user="viewer", password=MAIN_PASSWORD) as rtsp:
        sink = AlertSink.from_settings(settings, rclient, drain_config=FAST, main_stream_url=_with_password)
        cam = _two_stream_camera(rtsp.url("sub"), rtsp.url("main"))
        detection = first_frame(detection_clip(clip_dir))
        assert (detection.width, detection.height) == (640, 360)
        start = sink.emit(event("cam_1", T0), cam, "default", detection)
        # Stored at once from the detection frame (or already replaced: the grab runs on its own thread).
        first = store.get(start.id)
        assert first is not None and decode_jpeg(first).shape in ((360, 640, 3), (720, 1280, 3))

        def main_resolution() -> bool:
            jpeg = store.get(start.id)
            return jpeg is not None and decode_jpeg(jpeg).shape == (720, 1280, 3)

        wait_until(main_resolution, 15, "the snapshot to be replaced by the main stream's keyframe")
        end = sink.emit(event("cam_1", T0, EventPhase.END, t_s=T0 + 5), cam, "default", None)
        assert sink.flush(10)
        sink.close()  # joins the grab threads: their counters are final
        sink.release()
    assert sink.grabber is not None and sink.grabber.stats().grabbed == 1
    # Same alert, same reference, in the stored alert and on the wall.
    assert start.snapshot == end.snapshot == f"/api/v1/alerts/{start.id}/snapshot"
    assert [a.snapshot for a in _wall(rclient)] == [start.snapshot, start.snapshot]
    jpeg = store.get(start.id)
    assert jpeg is not None
    image = decode_jpeg(jpeg)
    # The privacy zone (top-left quarter: 320x180 pixels at 720p) is black at this resolution, up to its edge.
    assert image[:176, :316].max() < 24
    assert image[184:300, 324:380].mean() > 40  # just outside it: the scene
    # The box (0.3, 0.4)-(0.5, 0.8) is drawn where it belongs at 1280x720: its top edge at y=288, x 384..640.
    b, g, r = image[288, 512].astype(int)
    assert r > 180 and g < 90 and b < 90
    # Inside the box: the main stream's keyframe itself (the clip's only keyframe is its first frame).
    keyframe = first_frame(main_clip(clip_dir)).to_ndarray(format="bgr24")
    assert abs(float(image[320:560, 400:620].mean()) - float(keyframe[320:560, 400:620].mean())) < 3


def test_an_unreachable_main_stream_keeps_the_detection_snapshot(
    clip_dir: Path, tmp_path: Path, redis_url: str, rclient: redis.Redis, caplog: pytest.LogCaptureFixture
) -> None:
    settings = incident_settings(tmp_path, redis_url)
    store = FileSnapshotStore(settings.data_dir / "snapshots")
    sink = AlertSink.from_settings(settings, rclient, drain_config=FAST, main_stream_url=_with_password)
    port = free_port()  # nothing listens there
    cam = _two_stream_camera(f"rtsp://127.0.0.1:{port}/sub", f"rtsp://127.0.0.1:{port}/main")
    with caplog.at_level(logging.WARNING, logger="alerts.sink"):
        start = sink.emit(event("cam_1", T0), cam, "default", first_frame(detection_clip(clip_dir)))
        detection = store.get(start.id)
        assert sink.grabber is not None
        grabber = sink.grabber
        wait_until(lambda: grabber.stats().failed == 1, 15, "the main-stream grab to fail")
        assert sink.flush(10)
    assert store.get(start.id) == detection  # untouched: still the detection frame
    assert detection is not None and decode_jpeg(detection).shape == (360, 640, 3)
    assert [a.id for a in _wall(rclient)] == [start.id] and rclient.xlen(INCIDENTS_STREAM) == 1
    assert start.snapshot == f"/api/v1/alerts/{start.id}/snapshot"
    warnings = [r.getMessage() for r in caplog.records if r.name == "alerts.sink" and r.levelno >= logging.WARNING]
    assert len(warnings) == 1
    assert "cam_1" in warnings[0] and "refused" in warnings[0] and "viewer:***@" in warnings[0]
    assert MAIN_PASSWORD not in caplog.text and "wörd" not in caplog.text
    sink.close()
    sink.release()


def test_a_main_stream_of_another_shape_keeps_the_detection_snapshot(
    need_gst: None,
    clip_dir: Path,
    tmp_path: Path,
    redis_url: str,
    rclient: redis.Redis,
    caplog: pytest.LogCaptureFixture,
) -> None:
    settings = incident_settings(tmp_path, redis_url)
    store = FileSnapshotStore(settings.data_dir / "snapshots")
    # A 4:3 detection stream (a cropped substream) beside a 16:9 main stream: masks would land elsewhere.
    cropped = av.VideoFrame.from_ndarray(np.full((480, 640, 3), 90, np.uint8), format="bgr24")
    with RtspServer({"main": main_clip(clip_dir)}, user="viewer", password=MAIN_PASSWORD) as rtsp:
        sink = AlertSink.from_settings(settings, rclient, drain_config=FAST, main_stream_url=_with_password)
        cam = _two_stream_camera(rtsp.url("sub"), rtsp.url("main"))
        with caplog.at_level(logging.WARNING, logger="alerts.sink"):
            start = sink.emit(event("cam_1", T0), cam, "default", cropped)
            grabber = sink.grabber
            assert grabber is not None
            wait_until(lambda: grabber.stats().grabbed == 1, 15, "the grab")
        sink.close()
        sink.release()
    jpeg = store.get(start.id)
    assert jpeg is not None and decode_jpeg(jpeg).shape == (480, 640, 3)
    assert any("does not show the detection stream's picture" in r.getMessage() for r in caplog.records)


def test_no_grab_without_a_main_stream_of_its_own(
    clip_dir: Path, tmp_path: Path, redis_url: str, rclient: redis.Redis
) -> None:
    frame = first_frame(detection_clip(clip_dir))
    sink = AlertSink.from_settings(
        incident_settings(tmp_path, redis_url), rclient, drain_config=FAST, main_stream_url=_with_password
    )
    url = "rtsp://127.0.0.1:8554/cam"
    sink.emit(event("cam_1", T0), _two_stream_camera(url, None), "default", frame)
    sink.emit(event("cam_1", T0 + 1), _two_stream_camera(url, url), "default", frame)  # the same stream
    sink.emit(event("cam_1", T0 + 2), _two_stream_camera(url, url + "2"), "default", None)  # no snapshot to replace
    assert sink.grabber is not None and sink.grabber.stats().submitted == 0
    sink.close()
    sink.release()
    off = incident_settings(tmp_path, redis_url, snapshot_main_stream=False)
    sink = AlertSink.from_settings(off, rclient, drain_config=FAST, main_stream_url=_with_password)
    assert sink.grabber is None
    sink.close()
    sink.release()
