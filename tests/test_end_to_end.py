"""Steps 1 to 4 of the walking skeleton through the HTTP API of a real `sharpeyes run`, on the real
GStreamer RTSP server and the real Valkey/Redis."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import cv2
import httpx
import numpy as np
import pytest
import redis

from alerts.models import Alert
from alerts.publisher import INCIDENTS_STREAM
from api.auth import Role, TokenStore
from tests.peers import RtspServer, free_port

LOOP_S = 12.0  # the walker clip's length: the server loops it
MOTION_WINDOW_S = (4.0, 9.0)  # when the walker is in the frame, in clip time


@pytest.fixture
def system(tmp_path: Path, redis_url: str, rclient: redis.Redis) -> Iterator[str]:
    """`sharpeyes run` as a subprocess; yields its base URL."""
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARPEYES_")}
    env.update(
        SHARPEYES_REDIS_URL=redis_url,
        SHARPEYES_DATA_DIR=str(tmp_path / "data"),
        SHARPEYES_API_PORT=str(port),
        SHARPEYES_REGISTRY_POLL_S="0.3",
        SHARPEYES_HEALTH_INTERVAL_S="0.5",
        SHARPEYES_EVENT_END_QUIET_S="2",
    )
    with open(tmp_path / "run.log", "wb") as log:
        proc = subprocess.Popen([sys.executable, "-m", "sharpeyes", "run"], env=env, stdout=log, stderr=log)
        base = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + 30
        while True:
            try:
                if httpx.get(f"{base}/healthz", timeout=1).status_code == 200:
                    break
            except httpx.TransportError:
                pass
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                pytest.fail("sharpeyes run did not start:\n" + (tmp_path / "run.log").read_text())
            time.sleep(0.2)
        yield base
        proc.send_signal(signal.SIGINT)
        try:
            proc.wait(timeout=20)
        except subprocess.TimeoutExpired:
            proc.kill()
            pytest.fail("sharpeyes run did not stop within 20 s of Ctrl-C")


def test_camera_to_case_queue(need_gst: None, system: str, walker_h264: Path, rclient: redis.Redis) -> None:
    operator = TokenStore(rclient).create("e2e-operator", Role.OPERATOR)
    viewer = TokenStore(rclient).create("e2e-viewer", Role.VIEWER)
    with RtspServer({"street": walker_h264}) as rtsp:
        http = httpx.Client(base_url=system, timeout=10)
        # 1. register
        body = {
            "name": "Main St & 3rd",
            "stream_url": rtsp.url("street"),
            "location": {"lat": 40.7128, "lon": -74.006, "district": "Downtown"},
            "zones": [{"name": "crosswalk", "polygon": [[0.3, 0.4], [0.7, 0.4], [0.7, 0.85], [0.3, 0.85]]}],
        }
        created = http.post("/api/v1/cameras", json=body, headers={"Authorization": f"Bearer {operator}"})
        assert created.status_code == 201, created.text
        camera_id = created.json()["id"]
        assert created.json()["state"] == "connecting"
        view = {"Authorization": f"Bearer {viewer}"}

        # 2. a worker picks it up and reports it online with a recent frame
        deadline = time.monotonic() + 20
        while True:
            cam = http.get(f"/api/v1/cameras/{camera_id}", headers=view).json()
            if cam["state"] == "online" and cam["last_frame_at"]:
                break
            assert time.monotonic() < deadline, f"camera never came online: {cam}"
            time.sleep(0.3)
        online_since = cam["state_since"]
        assert time.time() - cam["last_frame_at"] < 5

        # 3. the walker enters the zone: an incident lands in the case queue
        deadline = time.monotonic() + 2 * LOOP_S + 10
        while not rclient.xlen(INCIDENTS_STREAM):
            assert time.monotonic() < deadline, "no incident within two loops of the clip"
            time.sleep(0.3)
        [(_, fields)] = rclient.xrange(INCIDENTS_STREAM, count=1)
        incident = Alert.model_validate_json(fields[b"alert"])
        assert incident.camera_id == camera_id
        assert incident.zone == "crosswalk"
        assert incident.type.value == "motion"
        assert incident.location.coordinates == (-74.006, 40.7128)
        assert incident.district == "Downtown"
        # The clip loops every 12 s from the moment the stream came online; the event must start while the
        # walker is on screen (plus the detector's min duration and one analysis interval of slack).
        clip_time = (incident.started_at.timestamp() - online_since) % LOOP_S
        assert MOTION_WINDOW_S[0] - 0.5 <= clip_time <= MOTION_WINDOW_S[1] + 0.5, clip_time
        assert incident.bbox is not None and 0.25 <= incident.bbox[0] < incident.bbox[2] <= 0.75

        # 4. the API lists it, with a snapshot that decodes as a JPEG at the stream's full resolution
        alerts = http.get("/api/v1/alerts", headers=view).json()["alerts"]
        assert incident.id in [a["id"] for a in alerts]
        snap = http.get(f"/api/v1/alerts/{incident.id}/snapshot", headers=view)
        assert snap.status_code == 200, (snap.text, incident.model_dump_json())
        assert snap.headers["content-type"] == "image/jpeg"
        image = cv2.imdecode(np.frombuffer(snap.content, np.uint8), cv2.IMREAD_COLOR)
        assert image is not None and image.shape == (360, 640, 3)

        # the server goes away: the camera is reported offline, not silently stale
        rtsp.kill()
        deadline = time.monotonic() + 20
        while http.get(f"/api/v1/cameras/{camera_id}", headers=view).json()["state"] not in ("offline", "stalled"):
            assert time.monotonic() < deadline, "camera still online 20 s after its server died"
            time.sleep(0.3)
