"""Alerts over HTTP: snapshots and clips for authorized roles, each view audited; incidents; /metrics."""

from __future__ import annotations

from pathlib import Path

import av
import numpy as np
import redis
from fastapi.testclient import TestClient

from alerts.clips import FileClipStore, clip_dir
from alerts.models import Alert
from alerts.publisher import AlertPublisher
from alerts.sink import AlertSink
from alerts.snapshots import FileSnapshotStore, snapshot_dir
from api.audit import read_audit
from api.auth import Role
from config.settings import Settings
from tests.conftest import auth
from tests.incident_fixtures import event, make_camera

T0 = 1_700_000_000.0


def _alert_with_snapshot(settings: Settings, client: redis.Redis) -> Alert:
    sink = AlertSink(AlertPublisher(client, 1000), FileSnapshotStore(snapshot_dir(settings)), 80)
    frame = av.VideoFrame.from_ndarray(np.full((360, 640, 3), 100, np.uint8), format="bgr24")
    return sink.emit(event("cam_1", T0), make_camera("cam_1"), "default", frame)


def test_snapshot_for_viewers_only_and_audited(
    api: TestClient, settings: Settings, rclient: redis.Redis, tokens: dict[Role, str]
) -> None:
    alert = _alert_with_snapshot(settings, rclient)
    url = f"/api/v1/alerts/{alert.id}/snapshot"
    got = api.get(url, headers=auth(tokens[Role.VIEWER]))
    assert got.status_code == 200 and got.headers["content-type"] == "image/jpeg"
    assert got.headers["cache-control"] == "private, no-store"
    assert api.get(url).status_code == 401
    assert api.get(url, headers=auth(tokens[Role.CASE_SYSTEM])).status_code == 403
    [entry] = read_audit(rclient, 10, None, action_prefix="snapshot.")
    assert entry["actor"] == "test-viewer" and entry["target"] == alert.id
    assert entry["after"] == {"camera_id": "cam_1"}


def test_clip_served_as_mp4_and_audited(
    api: TestClient, settings: Settings, rclient: redis.Redis, tokens: dict[Role, str], walker_h264: Path
) -> None:
    alert = _alert_with_snapshot(settings, rclient)
    store = FileClipStore(clip_dir(settings))
    url = f"/api/v1/alerts/{alert.id}/clip"
    viewer = auth(tokens[Role.OPERATOR])
    missing = api.get(url, headers=viewer)
    assert missing.status_code == 404 and "no clip" in missing.json()["detail"]
    mp4 = store.partial_path(alert.id)
    with av.open(str(walker_h264)) as src, av.open(str(mp4), "w", format="mp4") as out:
        stream = out.add_stream_from_template(src.streams.video[0])
        for i, packet in enumerate(p for p in src.demux(video=0) if p.size):
            if i == 25:
                break
            packet.stream, packet.pts, packet.dts = stream, i * 48000, i * 48000
            out.mux(packet)
    store.put_file(alert.id, mp4)
    got = api.get(url, headers=viewer)
    assert got.status_code == 200 and got.headers["content-type"] == "video/mp4"
    assert got.content[4:8] == b"ftyp"
    assert api.get(url, headers=auth(tokens[Role.CASE_SYSTEM])).status_code == 403
    [entry] = read_audit(rclient, 10, None, action_prefix="clip.")
    assert entry["actor"] == "test-operator" and entry["target"] == alert.id


def test_clip_still_recording_says_so(
    api: TestClient, settings: Settings, rclient: redis.Redis, tokens: dict[Role, str]
) -> None:
    alert = Alert.from_event(event("cam_1", T0), make_camera("cam_1"), "default", snapshot=False, clip=True)
    AlertPublisher(rclient, 1000).publish(alert)
    FileClipStore(clip_dir(settings)).partial_path(alert.id).write_bytes(b"")
    got = api.get(f"/api/v1/alerts/{alert.id}/clip", headers=auth(tokens[Role.VIEWER]))
    assert got.status_code == 404 and "still being recorded" in got.json()["detail"]
    assert got.headers["retry-after"] == "10"


def test_incidents_for_the_case_system(
    api: TestClient, settings: Settings, rclient: redis.Redis, tokens: dict[Role, str]
) -> None:
    alert = _alert_with_snapshot(settings, rclient)
    page = api.get("/api/v1/incidents", headers=auth(tokens[Role.CASE_SYSTEM])).json()
    assert [m["id"] for m in page["messages"]] == [alert.id]
    assert api.get("/api/v1/incidents", headers=auth(tokens[Role.VIEWER])).status_code == 403


def test_metrics_endpoint(api: TestClient, settings: Settings, rclient: redis.Redis, tokens: dict[Role, str]) -> None:
    _alert_with_snapshot(settings, rclient)
    got = api.get("/metrics", headers=auth(tokens[Role.VIEWER]))
    assert got.status_code == 200 and got.headers["content-type"].startswith("text/plain; version=0.0.4")
    assert 'sharpeyes_incidents_total{kind="event"} 1' in got.text
    assert api.get("/metrics").status_code == 401
