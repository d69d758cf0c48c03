"""The whole incident path on real peers: GStreamer RTSP camera, the ingest runner with the packet hook, the
sink's outbox, drain, snapshot and clip, Valkey. This is the wiring the worker uses (see docs/case-queue.md)."""

from __future__ import annotations

from pathlib import Path
from typing import Any, cast

import av
import cv2
import numpy as np
import redis

from alerts.clips import FileClipStore, clip_dir
from alerts.drain import DrainConfig
from alerts.models import Alert
from alerts.publisher import ALERTS_STREAM, INCIDENTS_STREAM
from alerts.sink import AlertSink
from alerts.snapshots import FileSnapshotStore, snapshot_dir
from detectors.events import EventPhase
from ingest.backoff import OpenBudget
from ingest.runner import CameraRunner, RunnerConfig
from tests.incident_fixtures import ZONE, incident_settings, make_camera, wait_until
from tests.peers import RtspServer


def _wall(client: redis.Redis) -> list[Alert]:
    return [Alert.model_validate_json(f[b"alert"]) for _, f in cast(list[Any], client.xrange(ALERTS_STREAM))]


def test_rtsp_camera_to_incident_with_snapshot_and_clip(
    need_gst: None, tmp_path: Path, redis_url: str, rclient: redis.Redis, walker_h264: Path
) -> None:
    settings = incident_settings(
        tmp_path, redis_url, clips_enabled=True, clip_pre_s=2.0, event_end_quiet_s=1.0, read_timeout_s=3.0
    )
    sink = AlertSink.from_settings(settings, rclient, drain_config=DrainConfig(report_every_s=0.5))
    assert sink.clips is not None
    clips = sink.clips
    with RtspServer({"street": walker_h264}) as rtsp:
        camera = make_camera("cam_pipeline0001", stream_url=rtsp.url("street"), zones=(ZONE,))
        runner = CameraRunner(
            camera,
            RunnerConfig.from_settings(settings),
            sink.emit,
            OpenBudget(10),
            on_packet=lambda packet: clips.push(camera.id, packet),
        )
        runner.start()
        try:
            wait_until(lambda: any(a.phase is EventPhase.END for a in _wall(rclient)), 40, "an event to end")
        finally:
            runner.stop()
            runner.join(10)
            clips.reset(camera.id)
    clips.drain()
    assert sink.flush(10)
    [(_, fields)] = rclient.xrange(INCIDENTS_STREAM, count=1)
    incident = Alert.model_validate_json(fields[b"alert"])
    assert incident.camera_id == camera.id and incident.zone == ZONE.name
    assert incident.snapshot is not None and incident.clip is not None
    jpeg = FileSnapshotStore(snapshot_dir(settings)).get(incident.id)
    assert jpeg is not None
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image.shape == (360, 640, 3)
    path = FileClipStore(clip_dir(settings)).path(incident.id)
    assert path is not None, "the clip was not stored"
    with av.open(str(path)) as clip:
        stream = clip.streams.video[0]
        assert (stream.codec_context.name, stream.width, stream.height) == ("h264", 640, 360)
        frames = sum(1 for _ in clip.decode(stream))
    end = next(a for a in _wall(rclient) if a.phase is EventPhase.END and a.id == incident.id)
    assert end.ended_at is not None
    event_s = (end.ended_at - incident.started_at).total_seconds()
    # The clip holds the pre-roll (from the keyframe at or before 2 s before the start) and the event.
    assert frames / 25 >= event_s + 1.5, (frames, event_s)
    sink.close()
    sink.release()
