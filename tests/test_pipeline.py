"""The decode-mode controller: idle keyframes, escalation on motion or alarm, back to idle, adaptive idle,
dropping when behind, keyless streams. Offline over real H.264 clips, with the real analyzer."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from detectors.analyzer import Analysis, AnalyzerConfig, CameraAnalyzer
from detectors.events import Event, EventPhase
from detectors.zones import Zone, ZoneKind
from ingest.cameras import Camera
from ingest.frames import DecodeMode, LumaFrame
from ingest.pipeline import CameraPipeline, ModeSettings
from ingest.reader import ReaderOptions, StreamReader
from tests.ingest_fixtures import FULL, make_camera
from tests.peers import RtspServer

Sunk = list[tuple[Event, av.VideoFrame | None]]


class RecordingAnalyzer(CameraAnalyzer):
    """The real analyzer, keeping what it was given."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.frames: list[LumaFrame] = []

    def process(self, frame: LumaFrame) -> Analysis:
        self.frames.append(frame)
        return super().process(frame)


def run(
    path: Path,
    settings: ModeSettings,
    camera: Camera | None = None,
    *,
    alarm_at: int | None = None,
    skip_keyframes: bool = False,
) -> tuple[CameraPipeline, RecordingAnalyzer, Sunk, list[DecodeMode]]:
    """Feed a clip once through a pipeline, offline (media time); returns it with what it produced."""
    camera = camera or make_camera(path.as_uri())
    analyzer = RecordingAnalyzer(camera.id, camera.zones, AnalyzerConfig())
    sunk: Sunk = []
    packets_seen: list[int] = []

    def sink(event: Event, cam: Camera, params: str, frame: av.VideoFrame | None) -> None:
        sunk.append((event, frame))

    pipeline = CameraPipeline(
        camera, analyzer, sink, 320, settings, live=False, on_packet=lambda p: packets_seen.append(p.size)
    )
    pipeline.escalation_log = []
    modes: list[DecodeMode] = []
    with StreamReader(str(path), ReaderOptions(realtime_files=False)) as reader:
        pipeline.connect(reader.video)
        for index, (packet, media_s) in enumerate(reader.packets()):
            if skip_keyframes and packet.is_keyframe:
                continue
            if index == alarm_at:
                pipeline.alarm()
            pipeline.feed(packet, media_s)
            modes.append(pipeline.mode)
    assert len(packets_seen) == pipeline.stats.packets  # the packet hook saw every packet
    return pipeline, analyzer, sunk, modes


def test_a_quiet_camera_decodes_only_its_keyframes(quiet_h264: Path) -> None:
    pipeline, analyzer, sunk, modes = run(quiet_h264, ModeSettings(adaptive_idle=False))
    st = pipeline.stats
    assert st.packets == 300 and st.keyframes == 12
    assert st.decoded == st.analysed == 12
    assert st.escalations == 0 and set(modes) == {DecodeMode.IDLE} and sunk == []
    assert all(f.keyframe and f.mode is DecodeMode.IDLE for f in analyzer.frames)
    assert [f.interval_s for f in analyzer.frames[1:3]] == pytest.approx([1.0, 1.0])
    assert st.keyframe_interval_s == pytest.approx(1.0)


def test_motion_escalates_to_every_frame_then_quiet_drops_back_to_idle(walker_h264: Path) -> None:
    settings = ModeSettings(analysis_interval_s=0.2, active_hold_s=1.5, adaptive_idle=False)
    pipeline, analyzer, sunk, modes = run(walker_h264, settings)
    st = pipeline.stats
    assert pipeline.escalation_log and 4.0 <= pipeline.escalation_log[0] <= 6.0  # the walker enters at 4 s
    first_active = modes.index(DecodeMode.ACTIVE)
    assert first_active % 25 == 0  # escalated on the keyframe whose analysis saw the walker
    # Active: every frame decoded while the walker is in view (4-9 s), analysed at 5 fps.
    assert st.decoded > 100
    active_frames = [f for f in analyzer.frames if f.mode is DecodeMode.ACTIVE]
    gaps = np.diff([f.t_s for f in active_frames])
    assert len(active_frames) >= 20 and float(np.median(gaps)) == pytest.approx(0.2)
    # ... and back to idle before the clip ends (walker gone at 9 s, hold 1.5 s).
    assert modes[-1] is DecodeMode.IDLE
    starts = [(e, f) for e, f in sunk if e.phase is EventPhase.START]
    assert starts and all(f is not None and f.width == 640 for _, f in starts)  # full-res frame for the snapshot


def test_an_alarm_escalates_mid_gop_at_once(quiet_h264: Path) -> None:
    settings = ModeSettings(active_hold_s=1.0, adaptive_idle=False)
    pipeline, analyzer, _, modes = run(quiet_h264, settings, alarm_at=40)
    assert modes[39] is DecodeMode.IDLE and modes[40] is DecodeMode.ACTIVE
    assert pipeline.escalation_log == pytest.approx([1.6])
    # The catch-up decoded the 16 packets of the GOP so far, and its last frame was analysed right away.
    escalated = [f for f in analyzer.frames if f.mode is DecodeMode.ACTIVE]
    assert escalated[0].t_s == pytest.approx(1.6) and not escalated[0].keyframe
    assert DecodeMode.IDLE in modes[70:]  # quiet scene: back to idle after the hold


def test_adaptive_idle_analyses_fewer_keyframes_of_a_long_quiet_camera(quiet_h264: Path) -> None:
    plain, _, _, _ = run(quiet_h264, ModeSettings(adaptive_idle=False))
    adaptive, analyzer, _, _ = run(
        quiet_h264, ModeSettings(adaptive_idle=True, idle_slow_after_s=3.0, idle_slower_after_s=6.0)
    )
    # Every keyframe until quiet for 3 s (the detector's warm-up counts as change), then every 2nd, then
    # from 6 s of quiet every 3rd.
    gaps = np.diff([round(f.t_s) for f in analyzer.frames]).tolist()
    assert gaps[0] == 1 and gaps == sorted(gaps) and gaps[-1] == 3 and 2 in gaps
    assert adaptive.stats.skipped_keyframes == 12 - len(analyzer.frames) > 0
    assert adaptive.stats.decoded < plain.stats.decoded


def test_privacy_zones_are_black_before_the_detector_sees_the_frame(walker_h264: Path) -> None:
    privacy = Zone(name="window", kind=ZoneKind.PRIVACY, polygon=((0.0, 0.0), (0.5, 0.0), (0.5, 0.5), (0.0, 0.5)))
    camera = make_camera(walker_h264.as_uri(), zones=(FULL, privacy))
    _, analyzer, _, _ = run(walker_h264, ModeSettings(), camera)
    luma = analyzer.frames[0].luma_hw
    assert luma.shape == (180, 320)
    assert int(luma[:80, :150].max()) == 0 and float(luma[100:, 170:].mean()) > 40


def test_a_stream_without_keyframes_is_decoded_in_full(walker_h264: Path) -> None:
    pipeline, _, _, modes = run(walker_h264, ModeSettings(no_keyframe_s=1.0), skip_keyframes=True)
    assert pipeline.keyless and modes[-1] is DecodeMode.ACTIVE
    assert pipeline.stats.escalations == 1


def test_a_camera_behind_real_time_drops_frames_instead_of_queueing(walker_h264: Path) -> None:
    camera = make_camera(walker_h264.as_uri())
    analyzer = CameraAnalyzer(camera.id, camera.zones, AnalyzerConfig())
    settings = ModeSettings(max_lag_s=0.05, active_hold_s=1e9)  # stays active: every frame is due
    pipeline = CameraPipeline(camera, analyzer, lambda *a: None, 320, settings, live=True)
    with StreamReader(str(walker_h264), ReaderOptions(realtime_files=False)) as reader:
        pipeline.connect(reader.video)
        packets = list(reader.packets())
        pipeline.alarm()  # active: every frame would be decoded
        pipeline.feed(*packets[0])
        time.sleep(0.3)  # the camera thread stalls (a slow detector): the stream is now 0.3 s ahead of it
        for packet, media_s in packets[1:]:
            pipeline.feed(packet, media_s)  # fed faster than real time: it catches up within the clip
    st = pipeline.stats
    assert st.dropped > 0
    # Dropped frames are P-frames up to the next keyframe, where decoding resumes.
    assert st.decoded + st.dropped >= st.packets - 1
    assert st.decoded > 200


def test_a_timestamp_reset_is_not_mistaken_for_a_camera_falling_behind(walker_h264: Path) -> None:
    camera = make_camera(walker_h264.as_uri())
    analyzer = CameraAnalyzer(camera.id, camera.zones, AnalyzerConfig())
    pipeline = CameraPipeline(camera, analyzer, lambda *a: None, 320, ModeSettings(max_lag_s=0.5), live=True)
    with StreamReader(str(walker_h264), ReaderOptions(realtime_files=False)) as reader:
        pipeline.connect(reader.video)
        packets = list(reader.packets())
        for packet, media_s in packets[:100]:  # 4 s of media, fed at once: ahead of real time
            pipeline.feed(packet, media_s)
        for packet, media_s in packets[100:]:  # the camera restarts its clock at 0
            pipeline.feed(packet, media_s - 100 * 0.04 - 30.0)
    assert pipeline.stats.dropped == 0 and pipeline.stats.decoded > 0


def _live_pipeline(url: str, settings: ModeSettings) -> CameraPipeline:
    camera = make_camera(url)
    return CameraPipeline(
        camera, CameraAnalyzer(camera.id, camera.zones, AnalyzerConfig()), lambda *_: None, 320, settings
    )


def test_batched_reading_pauses_at_the_live_edge_and_loses_no_packet(need_gst: None, walker_h264: Path) -> None:
    with RtspServer({"cam": walker_h264}) as rtsp:
        pipeline = _live_pipeline(rtsp.url("cam"), ModeSettings(receive_batch_s=0.25))
        with StreamReader(rtsp.url("cam"), ReaderOptions(open_timeout_s=3, read_timeout_s=3)) as reader:
            pipeline.connect(reader.video)
            items = []
            for packet, media_s in reader.packets():
                pipeline.feed(packet, media_s)
                items.append(media_s)
                if len(items) == 75:  # 3 s of video
                    break
    # Every frame, in order: the batch pauses only let packets gather in the socket buffer.
    assert np.allclose(np.diff(items), 0.04, atol=1e-3)
    # One pause per batch of several packets, not one wakeup per packet (counted, not timed).
    assert 3 <= pipeline.stats.batch_pauses <= 75 // 4


def test_a_camera_that_is_behind_never_pauses(need_gst: None, walker_h264: Path) -> None:
    with RtspServer({"cam": walker_h264}) as rtsp:
        pipeline = _live_pipeline(rtsp.url("cam"), ModeSettings(receive_batch_s=0.25))
        pauses = []
        with StreamReader(rtsp.url("cam"), ReaderOptions(open_timeout_s=3, read_timeout_s=3)) as reader:
            pipeline.connect(reader.video)
            for i, (packet, media_s) in enumerate(reader.packets()):
                pipeline.feed(packet, media_s)
                pauses.append(pipeline.stats.batch_pauses)
                if 2 <= i < 27:
                    time.sleep(0.07)  # a slow consumer: 1.75 s for 1 s of video, it falls behind
                if i == 75:
                    break
    # Falling behind from packet 3 on: buffered packets are not the live edge (no pause while catching up);
    # once caught up (75 packets = 3 s of video, read in about 3 s), it pauses again.
    assert pauses[4] == pauses[27]
    assert pauses[75] > pauses[27]


def test_offline_pipelines_and_the_default_never_pause(quiet_h264: Path) -> None:
    with pytest.raises(ValueError, match="receive_batch_s must not be negative, got -1"):
        ModeSettings(receive_batch_s=-1)
    assert ModeSettings().receive_batch_s == 0.0  # every packet as it comes unless the runner asks
    pipeline, *_ = run(quiet_h264, ModeSettings(receive_batch_s=0.25))  # offline: media time, no real time
    assert pipeline.stats.batch_pauses == 0
