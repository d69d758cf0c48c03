"""A camera whose server dies raises video_loss after the grace time, and ends it when video returns."""

from __future__ import annotations

import threading
import time
from pathlib import Path

import av

from detectors.events import Event, EventPhase, EventType
from ingest.backoff import OpenBudget
from ingest.cameras import Camera, CameraState
from ingest.runner import CameraRunner, RunnerConfig
from tests.ingest_fixtures import fast_settings, make_camera, wait_for
from tests.peers import RtspServer


class Events:
    def __init__(self) -> None:
        self.items: list[Event] = []
        self.lock = threading.Lock()

    def __call__(self, event: Event, camera: Camera, params: str, frame: av.VideoFrame | None) -> None:
        with self.lock:
            self.items.append(event)

    def video_loss(self, phase: EventPhase) -> bool:
        with self.lock:
            return any(e.type is EventType.VIDEO_LOSS and e.phase is phase for e in self.items)


def test_video_loss_starts_after_grace_and_ends_on_recovery(
    need_gst: None, quiet_h264: Path, tmp_path: Path, redis_url: str
) -> None:
    settings = fast_settings(tmp_path, redis_url, video_loss_grace_s=1.0, reconnect_max_s=1.0)
    config = RunnerConfig.from_settings(settings)
    events = Events()
    with RtspServer({"cam": quiet_h264}) as rtsp:
        runner = CameraRunner(make_camera(rtsp.url("cam")), config, events, OpenBudget(20), worker="test:1")
        runner.start()

        def watchdog_tick() -> bool:  # what the worker's health reporter does every tick
            runner.check_watchdog(time.monotonic())
            return False

        try:
            wait_for(lambda: runner.state is CameraState.ONLINE, 15, "online")
            rtsp.kill()
            wait_for(lambda: watchdog_tick() or events.video_loss(EventPhase.START), 20, "a video_loss start")
            assert not events.video_loss(EventPhase.END)
            rtsp.restart()
            wait_for(lambda: events.video_loss(EventPhase.END), 30, "the video_loss end once video is back")
        finally:
            runner.stop()
            runner.join(10)
    [start] = [e for e in events.items if e.type is EventType.VIDEO_LOSS and e.phase is EventPhase.START]
    assert start.zone == "*" and start.camera_id == "cam_test"
