"""A camera runner on the real RTSP server: online, escalation with a snapshot frame, health fields,
credentials, missing stream URL, degraded judgement, and survival of a failing sink."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import pytest

from detectors.events import Event, EventPhase
from ingest.backoff import OpenBudget
from ingest.cameras import Camera, CameraState
from ingest.failures import FailureKind
from ingest.frames import DecodeMode
from ingest.runner import CameraRunner, RunnerConfig
from ingest.stats import RateMeter
from tests.ingest_fixtures import fast_settings, make_camera, wait_for
from tests.peers import RtspServer


@pytest.fixture
def config(tmp_path: Path, redis_url: str) -> RunnerConfig:
    return RunnerConfig.from_settings(fast_settings(tmp_path, redis_url, active_hold_s=1.0, analysis_fps=5))


class Events:
    def __init__(self) -> None:
        self.items: list[tuple[Event, av.VideoFrame | None]] = []
        self.lock = threading.Lock()

    def __call__(self, event: Event, camera: Camera, params: str, frame: av.VideoFrame | None) -> None:
        with self.lock:
            self.items.append((event, frame))


def test_runner_watches_escalates_and_reports(need_gst: None, walker_h264: Path, config: RunnerConfig) -> None:
    events = Events()
    with RtspServer({"cam": walker_h264}) as rtsp:
        runner = CameraRunner(make_camera(rtsp.url("cam")), config, events, OpenBudget(5), worker="test:1")
        runner.start()
        try:
            wait_for(lambda: runner.state is CameraState.ONLINE, 15, "online")
            wait_for(lambda: runner.stats.escalations >= 1, 30, "escalation on the walker")
            wait_for(lambda: any(e.phase is EventPhase.START for e, _ in events.items), 30, "an event start")
            wait_for(lambda: runner.stats.keyframe_interval_s is not None, 10, "a keyframe interval")
            health = runner.health()
        finally:
            runner.stop()
            runner.join(10)
    assert not runner.alive
    start_frames = [f for e, f in events.items if e.phase is EventPhase.START]
    assert start_frames[0] is not None and (start_frames[0].width, start_frames[0].height) == (640, 360)
    assert health.state is CameraState.ONLINE and health.worker == "test:1"
    assert health.keyframe_interval_s == pytest.approx(1.0, abs=0.05)
    assert health.fps_declared == 25.0 and health.fps_received > 5 and health.bitrate_kbps > 50
    assert (health.width, health.height) == (640, 360) and health.mode in (DecodeMode.IDLE, DecodeMode.ACTIVE)
    assert health.escalations >= 1 and health.last_frame_at is not None and health.warnings == ()
    # Rates are windowed by when packets were due, which is never after they were read.
    assert 0 < runner.stats.last_packet_due <= runner.stats.last_packet_mono
    assert runner.state is CameraState.OFFLINE and runner.last_error == "worker stopped watching this camera"
    assert [h.state for h in runner.history][:2] == [CameraState.CONNECTING, CameraState.ONLINE]


def test_an_undecryptable_password_keeps_the_camera_in_auth_failed(config: RunnerConfig) -> None:
    camera = make_camera("rtsp://127.0.0.1:9/cam")
    budget = OpenBudget(5)
    runner = CameraRunner(camera, config, Events(), budget, credential_error="cannot use the stored password: key")
    runner.start()
    wait_for(lambda: runner.state is CameraState.AUTH_FAILED, 5, "auth_failed")
    runner.stop()
    runner.join(5)
    assert budget.opens == 0  # never tried with a password it does not have


def test_a_camera_without_a_stream_url_waits_for_its_probe(config: RunnerConfig) -> None:
    camera = make_camera("rtsp://127.0.0.1:9/cam").model_copy(update={"stream_url": None})
    runner = CameraRunner(camera, config, Events(), OpenBudget(5))
    runner.start()
    wait_for(lambda: runner.state is CameraState.NO_STREAM, 5, "no_stream")
    runner.stop()
    runner.join(5)


def test_far_fewer_frames_than_declared_is_degraded_and_recovers(config: RunnerConfig) -> None:
    runner = CameraRunner(make_camera("rtsp://127.0.0.1:9/cam"), config, Events(), OpenBudget(5))
    runner._declared_fps = 25.0
    meter = RateMeter(runner.stats)
    meter._mark -= 10.0  # a 10 s window ...
    runner.stats.packets += 50  # ... with 5 fps received
    runner._judge(meter)
    assert runner.state is CameraState.DEGRADED and "5.0 fps of the 25 fps" in (runner.last_error or "")
    meter._mark -= 10.0
    runner.stats.packets += 250
    runner._judge(meter)
    assert runner.state is CameraState.ONLINE and runner.last_error is None


def test_a_failing_sink_does_not_end_the_camera(need_gst: None, walker_h264: Path, config: RunnerConfig) -> None:
    calls = []

    def broken_sink(event: Event, camera: Camera, params: str, frame: av.VideoFrame | None) -> None:
        calls.append(event)
        raise RuntimeError("sink bug")

    with RtspServer({"cam": walker_h264}) as rtsp:
        runner = CameraRunner(make_camera(rtsp.url("cam")), config, broken_sink, OpenBudget(5))
        runner.start()
        try:
            wait_for(lambda: any(r.kind is FailureKind.OTHER for r in runner.retries), 30, "an internal-error retry")
            wait_for(lambda: runner.state is CameraState.ONLINE, 15, "online again")
        finally:
            runner.stop()
            runner.join(10)
    messages = [h.message or "" for h in runner.history]
    assert calls and any(m.startswith("internal error: RuntimeError('sink bug')") for m in messages)


def test_runners_batch_their_reads_but_never_for_as_long_as_a_stall(tmp_path: Path, redis_url: str) -> None:
    assert RunnerConfig.from_settings(fast_settings(tmp_path, redis_url)).modes.receive_batch_s == 0.25
    short = RunnerConfig.from_settings(fast_settings(tmp_path, redis_url, read_timeout_s=0.6))
    assert short.modes.receive_batch_s == pytest.approx(0.15)
    assert RunnerConfig.from_settings(fast_settings(tmp_path, redis_url, receive_batch_s=0)).modes.receive_batch_s == 0
