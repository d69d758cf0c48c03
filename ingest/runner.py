"""One camera's life in a worker: connect, decode, detect, publish; on failure, classify and back off."""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections.abc import Callable
from dataclasses import dataclass

import av
import redis

from config.settings import Settings
from detectors.analyzer import AnalyzerConfig, CameraAnalyzer
from detectors.events import Event, EventParams, EventPhase
from detectors.motion import MotionParams
from detectors.zones import privacy_mask
from ingest.backoff import OpenBudget, backoff_delay
from ingest.cameras import Camera, CameraState
from ingest.failures import ENDED, Failure, classify
from ingest.frames import LumaFrame
from ingest.health import CameraHealth, write_health
from ingest.reader import ReaderOptions, StreamReader, detect_size, downscale, luma_view

log = logging.getLogger(__name__)

EventSink = Callable[[Event, Camera, str, av.VideoFrame | None], object]


@dataclass(frozen=True, slots=True)
class DetectionConfig:
    """Everything a camera runner needs from the settings, extracted once."""

    reader: ReaderOptions
    detect_width: int
    analysis_interval_s: float
    analyzer: AnalyzerConfig
    health_interval_s: float

    @classmethod
    def from_settings(cls, s: Settings) -> DetectionConfig:
        """Derive the runner's configuration from the settings."""
        return cls(
            reader=ReaderOptions(open_timeout_s=s.open_timeout_s, read_timeout_s=s.read_timeout_s),
            detect_width=s.detect_width,
            analysis_interval_s=1.0 / s.analysis_fps,
            analyzer=AnalyzerConfig(
                motion=MotionParams(threshold=s.motion_threshold, zone_min_fraction=s.zone_min_fraction),
                events=EventParams(
                    min_duration_s=s.event_min_duration_s,
                    end_quiet_s=s.event_end_quiet_s,
                    cooldown_s=s.event_cooldown_s,
                    zone_min_fraction=s.zone_min_fraction,
                ),
            ),
            health_interval_s=s.health_interval_s,
        )


def worker_name() -> str:
    """host:pid, how health reports and logs name a worker process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class CameraRunner:
    """Runs one camera in its own thread until :meth:`stop`. Decoding releases the GIL, so threads scale."""

    def __init__(
        self,
        camera: Camera,
        config: DetectionConfig,
        client: redis.Redis,
        sink: EventSink,
        budget: OpenBudget,
    ) -> None:
        self.camera = camera
        self.config = config
        self._client = client
        self._sink = sink
        self._budget = budget
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, name=f"cam-{camera.id}", daemon=True)
        self._rng = random.Random()
        self._worker = worker_name()
        self.state = CameraState.CONNECTING
        self._since = time.time()
        self._last_error: str | None = None
        self._last_frame_at: float | None = None
        self._last_report = 0.0
        self._reconnects = 0
        self._frames = 0
        self._analysed = 0
        self._window_start = time.monotonic()

    def start(self) -> None:
        """Start the camera's thread."""
        self._thread.start()

    def stop(self) -> None:
        """Ask the thread to end; it does so at the next frame or read timeout."""
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end."""
        self._thread.join(timeout)

    def _set_state(self, state: CameraState, error: str | None = None) -> None:
        changed = state is not self.state or error != self._last_error
        if state is not self.state:
            self._since = time.time()
        self.state, self._last_error = state, error
        if changed:
            self._report(force=True)

    def _report(self, force: bool = False) -> None:
        now = time.monotonic()
        if not force and now - self._last_report < self.config.health_interval_s:
            return
        span = max(1e-3, now - self._window_start)
        health = CameraHealth(
            state=self.state,
            since=self._since,
            reported_at=time.time(),
            worker=self._worker,
            last_frame_at=self._last_frame_at,
            last_error=self._last_error,
            fps_received=round(self._frames / span, 2),
            fps_analysed=round(self._analysed / span, 2),
            reconnects=self._reconnects,
        )
        try:
            write_health(self._client, self.camera.id, health)
        except redis.RedisError as exc:
            log.warning("camera %s: health not written: %s", self.camera.id, exc)
            return
        self._last_report, self._window_start = now, now
        self._frames = self._analysed = 0

    def _run(self) -> None:
        attempt = 0
        while not self._stop.is_set():
            self._set_state(CameraState.CONNECTING, self._last_error)
            if not self._budget.acquire(self._stop):
                break
            failure: Failure
            try:
                with StreamReader(self.camera.stream_url, self.config.reader) as reader:
                    if self._watch(reader):
                        attempt = 0  # it delivered frames: the next failure starts a fresh backoff
                failure = ENDED
            except (av.error.FFmpegError, OSError) as exc:
                failure = classify(exc)
            if self._stop.is_set():
                break
            self._reconnects += 1
            self._set_state(failure.state, failure.message)
            log.info("camera %s: %s", self.camera.id, failure.message)
            delay = backoff_delay(attempt, failure.permanent, self._rng)
            attempt += 1
            self._stop.wait(delay)
        self._set_state(CameraState.DISABLED if not self.camera.enabled else CameraState.OFFLINE, "worker stopped")

    def _watch(self, reader: StreamReader) -> bool:
        """Decode and analyse until the stream ends or the runner stops; True if any frame arrived."""
        cfg = self.config
        camera = self.camera
        analyzer = CameraAnalyzer(camera.id, camera.zones, cfg.analyzer)
        next_analysis = 0.0
        got_frame = False
        source: tuple[int, int] | None = None
        size = (0, 0)
        try:
            for frame in reader.frames():
                if self._stop.is_set():
                    break
                now = time.time()
                self._frames += 1
                self._last_frame_at = now
                if not got_frame:
                    got_frame = True
                    self._set_state(CameraState.ONLINE, None)
                self._report()
                if now < next_analysis:
                    continue
                next_analysis = max(next_analysis + cfg.analysis_interval_s, now - cfg.analysis_interval_s)
                if source != (frame.width, frame.height):  # first frame, or the camera changed resolution
                    source = (frame.width, frame.height)
                    size = detect_size(frame.width, frame.height, cfg.detect_width)
                small = downscale(luma_view(frame), *size)
                if small.base is not None:
                    small = small.copy()  # same size as the source: never mask the decoder's own buffer
                mask = privacy_mask(camera.zones, size[0], size[1])
                if mask is not None:
                    small[mask] = 0
                self._analysed += 1
                analysis = analyzer.process(LumaFrame(camera.id, now, small, frame.key_frame))
                for event in analysis.events:
                    self._sink(event, camera, analysis.params, frame if event.phase is EventPhase.START else None)
        finally:
            for event in analyzer.flush(time.time()):
                self._sink(event, camera, cfg.analyzer.motion.name, None)
        return got_frame
