"""One camera's life in a worker: connect, decode, detect, publish; on failure, classify and back off.

Each camera runs in its own thread (see ``docs/ingest.md`` for the threads-versus-asyncio measurement):
PyAV reads and decodes with the GIL released, and a blocking read with a timeout is the one primitive
FFmpeg's RTSP client offers. The thread never writes to Redis itself; it keeps its state and counters,
which the worker's :class:`~ingest.health.HealthReporter` writes at a bounded rate.
"""

from __future__ import annotations

import logging
import os
import random
import socket
import threading
import time
from collections import deque
from dataclasses import dataclass, replace

import av

from config.settings import Settings
from detectors.analyzer import AnalyzerConfig, CameraAnalyzer
from detectors.events import Event
from detectors.videoloss import VideoLossTracker
from ingest.backoff import BackoffPolicy, OpenBudget
from ingest.cameras import Camera, CameraState
from ingest.decoding import DecoderSettings
from ingest.failures import ENDED, Failure, FailureKind, classify, redact
from ingest.health import CameraHealth
from ingest.pipeline import CameraPipeline, EventSink, ModeSettings, PacketHook
from ingest.reader import ReaderOptions, StreamReader
from ingest.stats import CameraStats, RateMeter

log = logging.getLogger(__name__)

# A connection that stayed up this long starts the next failure's backoff from the beginning; a camera
# that drops every few seconds keeps backing off instead of reconnecting every second.
STABLE_CONNECTION_S = 30.0
# Rolling history of state changes and reconnect decisions per camera, for operators and tests.
_HISTORY = 64
# The parameter-set name video_loss alerts carry: they come from the ingest engine's state, not a detector.
VIDEO_LOSS_PARAMS = "ingest"
# Two decode errors and a fifth of the decoded frames damaged within a window marks the stream degraded:
# one damaged frame is a lost packet, a fifth is a broken encoder or link.
_CORRUPT_MIN = 2
_CORRUPT_FRACTION = 0.2


@dataclass(frozen=True, slots=True)
class RunnerConfig:
    """Everything a camera runner needs from the settings, extracted once."""

    reader: ReaderOptions
    detect_width: int
    analyzer: AnalyzerConfig
    modes: ModeSettings
    backoff: BackoffPolicy
    degraded_window_s: float = 10.0
    degraded_fps_fraction: float = 0.5
    keyframe_warn_s: float = 4.0
    video_loss_grace_s: float = 10.0

    @classmethod
    def from_settings(cls, s: Settings) -> RunnerConfig:
        """Derive the runner's configuration from the settings."""
        return cls(
            reader=ReaderOptions(open_timeout_s=s.open_timeout_s, read_timeout_s=s.read_timeout_s),
            detect_width=s.detect_width,
            analyzer=AnalyzerConfig.from_settings(s),
            modes=ModeSettings(
                analysis_interval_s=1.0 / s.analysis_fps,
                idle_interval_s=s.idle_interval_s,
                active_hold_s=s.active_hold_s,
                adaptive_idle=s.adaptive_idle,
                idle_slow_after_s=s.idle_slow_after_s,
                idle_slower_after_s=max(s.idle_slow_after_s, s.idle_slower_after_s),
                max_lag_s=s.max_lag_s,
                no_keyframe_s=s.no_keyframe_s,
                decoder=DecoderSettings(cheap_idle=s.idle_skip_loop_filter, max_gop_bytes=s.max_gop_bytes),
                receive_batch_s=min(s.receive_batch_s, s.read_timeout_s / 4),  # longer would look like a stall
            ),
            backoff=BackoffPolicy(base_s=min(s.reconnect_base_s, s.reconnect_max_s), transient_cap_s=s.reconnect_max_s),
            degraded_window_s=s.degraded_window_s,
            degraded_fps_fraction=s.degraded_fps_fraction,
            keyframe_warn_s=s.keyframe_warn_s,
            video_loss_grace_s=s.video_loss_grace_s,
        )


@dataclass(frozen=True, slots=True)
class StateChange:
    """One entry of a camera's state history."""

    at: float
    state: CameraState
    message: str | None


@dataclass(frozen=True, slots=True)
class RetryDecision:
    """One reconnect decision: which failure, which attempt, the backoff ceiling and the delay drawn."""

    at: float
    kind: FailureKind
    attempt: int
    ceiling_s: float
    delay_s: float


def worker_name() -> str:
    """host:pid, how health reports and logs name a worker process."""
    return f"{socket.gethostname()}:{os.getpid()}"


class CameraRunner:
    """Runs one camera in its own thread until :meth:`stop`."""

    def __init__(
        self,
        camera: Camera,
        config: RunnerConfig,
        sink: EventSink,
        budget: OpenBudget,
        *,
        worker: str | None = None,
        credentials: tuple[str | None, str | None] = (None, None),
        credential_error: str | None = None,
        on_packet: PacketHook | None = None,
        rng: random.Random | None = None,
    ) -> None:
        """``credentials`` (username, password) go into the RTSP URL at open time only, never into a log or
        a message; ``credential_error`` (the stored password cannot be decrypted) keeps the camera
        in ``auth_failed`` without connecting."""
        self.camera = camera
        self.config = config
        self._sink = sink
        self._budget = budget
        self._credentials = credentials
        self._credential_error = credential_error
        self._stop = threading.Event()
        self._final: tuple[CameraState, str | None] = (CameraState.OFFLINE, "worker stopped watching this camera")
        self._thread = threading.Thread(target=self._run, name=f"cam-{camera.id}", daemon=True)
        self._rng = rng if rng is not None else random.Random()
        self._worker = worker if worker is not None else worker_name()
        self._lock = threading.Lock()
        self.state = CameraState.CONNECTING
        self.since = time.time()
        self.last_error: str | None = None
        self._dirty = True
        self._watchdog_stalled = False
        self.stats = CameraStats()
        self.history: deque[StateChange] = deque([StateChange(self.since, self.state, None)], maxlen=_HISTORY)
        self.retries: deque[RetryDecision] = deque(maxlen=_HISTORY)
        # effective_zones: the camera-wide arming schedule applied to detect zones that have none of their own.
        self.analyzer = CameraAnalyzer(camera.id, camera.effective_zones, config.analyzer)
        self.pipeline = CameraPipeline(
            camera, self.analyzer, sink, config.detect_width, config.modes, self.stats, live=True, on_packet=on_packet
        )
        self._report_meter = RateMeter(self.stats)
        self._declared_fps: float | None = None
        self._size: tuple[int, int] | None = None
        self._warned: set[str] = set()
        self._video_loss = VideoLossTracker(camera.id, grace_s=config.video_loss_grace_s)

    # --- lifecycle

    @property
    def camera_id(self) -> str:
        """The camera's id."""
        return self.camera.id

    def start(self) -> None:
        """Start the camera's thread."""
        self._thread.start()

    def stop(self, final: CameraState = CameraState.OFFLINE, message: str | None = None) -> None:
        """Ask the thread to end (it does so at the next packet or read timeout), leaving ``final`` as the
        camera's last reported state."""
        self._final = (final, message or "worker stopped watching this camera")
        self._stop.set()

    def join(self, timeout: float | None = None) -> None:
        """Wait for the thread to end."""
        self._thread.join(timeout)

    @property
    def alive(self) -> bool:
        """True while the camera's thread runs."""
        return self._thread.is_alive()

    def alarm(self) -> None:
        """Escalate this camera to full-rate decoding now (camera alarm, operator request)."""
        self.pipeline.alarm()

    # --- state

    def _set_state(self, state: CameraState, error: str | None) -> None:
        with self._lock:
            if state is self.state and error == self.last_error:
                return
            now = time.time()
            loss: list[Event] = []
            if state is not self.state:
                self.since = now
                self.history.append(StateChange(now, state, error))
                log.info("camera %s: %s%s", self.camera.id, state.value, f" ({error})" if error else "")
                loss = self._video_loss.update(state, now)
            self.state, self.last_error = state, error
            self._dirty = True
        self._emit_video_loss(loss)

    def _emit_video_loss(self, events: list[Event]) -> None:
        """Send video_loss starts and ends to the sink (outside the state lock: the sink may block briefly)."""
        for event in events:
            try:
                self._sink(event, self.camera, VIDEO_LOSS_PARAMS, None)
            except Exception:  # the same last resort as in _connect_once: the camera must go on
                log.exception("camera %s: internal error while reporting video loss", self.camera.id)

    @property
    def dirty(self) -> bool:
        """True when the state changed since the last health report."""
        return self._dirty

    def check_watchdog(self, now_mono: float) -> None:
        """Called by the health reporter: a stream silent for the read timeout is stalled, at once.

        PyAV's own read timeout ends the read about then too and the thread reconnects; this makes the
        state visible even while the thread is still inside the blocking read.
        """
        if not self._stop.is_set():
            # A camera that stays down past the grace time raises video_loss here: no new state triggers it.
            with self._lock:
                loss = self._video_loss.poll(time.time())
            self._emit_video_loss(loss)
        last = self.stats.last_packet_mono
        if self.state not in (CameraState.ONLINE, CameraState.DEGRADED) or not last:
            return
        silent = now_mono - last
        if silent > self.config.reader.read_timeout_s:
            self._watchdog_stalled = True
            self._set_state(CameraState.STALLED, f"no packet for {silent:.1f} s (watchdog)")

    def health(self) -> CameraHealth:
        """A fresh health report; clears ``dirty``."""
        st = self.stats
        rates = self._report_meter.take()
        with self._lock:
            self._dirty = False
            state, since, error = self.state, self.since, self.last_error
        last_frame = None
        if st.last_packet_mono:
            last_frame = st.last_packet_mono + (time.time() - time.monotonic())
        kf = st.keyframe_interval_s
        return CameraHealth(
            state=state,
            since=since,
            reported_at=time.time(),
            worker=self._worker,
            last_frame_at=last_frame,
            last_error=error,
            fps_received=round(rates.fps_received, 2),
            fps_analysed=round(rates.fps_analysed, 2),
            fps_decoded=round(rates.fps_decoded, 2),
            fps_declared=self._declared_fps,
            keyframe_interval_s=None if kf is None else round(kf, 3),
            reconnects=st.reconnects_last_hour(),
            decode_errors=st.decode_errors,
            bitrate_kbps=round(rates.bitrate_kbps, 1),
            mode=self.pipeline.mode,
            frames_dropped=st.dropped,
            escalations=st.escalations,
            width=None if self._size is None else self._size[0],
            height=None if self._size is None else self._size[1],
            warnings=self.warnings(),
        )

    def warnings(self) -> tuple[str, ...]:
        """Conditions that do not stop the camera but that an operator should fix."""
        out: list[str] = []
        kf = self.stats.keyframe_interval_s
        if kf is not None and kf > self.config.keyframe_warn_s:
            out.append(
                f"keyframe every {kf:.1f} s: an idle camera is analysed only that often; "
                "set the camera's GOP (I-frame interval) to 1-2 s"
            )
        if self.pipeline.keyless:
            out.append(
                "no keyframes in the stream: every frame is decoded (expensive); enable regular I-frames on the camera"
            )
        for text in out:
            key = text.split(":", 1)[0]
            if key not in self._warned:
                self._warned.add(key)
                log.warning("camera %s: %s", self.camera.id, text)
        return tuple(out)

    # --- the thread

    def _run(self) -> None:
        try:
            if self.camera.stream_url is None:
                self._set_state(CameraState.NO_STREAM, "no stream URL known yet: probe the camera over ONVIF")
                self._stop.wait()
            elif self._credential_error is not None:
                self._set_state(CameraState.AUTH_FAILED, self._credential_error)
                self._stop.wait()
            else:
                self._reconnect_loop(self.camera.stream_url)
        finally:
            self._set_state(*self._final)

    def _reconnect_loop(self, url: str) -> None:
        attempt = 0
        while not self._stop.is_set():
            # "connecting" only until the first outcome: while reconnecting, the camera keeps showing why it
            # is down (offline, stalled, auth_failed), which is what the operator needs to see.
            if not self._budget.acquire(self._stop):
                break
            failure, stable = self._connect_once(url)
            if self._stop.is_set():
                break
            if stable:
                attempt = 0
            self.stats.reconnected()
            if failure.kind is FailureKind.OPEN_TIMEOUT and self.state is CameraState.STALLED:
                # Connects, then silence: the same hung camera that stalled mid-stream, still hung.
                failure = replace(failure, state=CameraState.STALLED, message=f"still stalled: {failure.message}")
            self._set_state(failure.state, failure.message)
            policy = self.config.backoff
            delay = policy.delay(attempt, failure.permanent, self._rng)
            self.retries.append(
                RetryDecision(time.time(), failure.kind, attempt, policy.ceiling(attempt, failure.permanent), delay)
            )
            attempt += 1
            self._stop.wait(delay)

    def _connect_once(self, url: str) -> tuple[Failure, bool]:
        """Open, watch until the stream fails or the runner stops; the failure, and whether it was stable."""
        user, password = self._credentials
        reader = StreamReader(url, self.config.reader, user, password)
        started = time.monotonic()
        try:
            reader.open()
        except (av.error.FFmpegError, OSError) as exc:
            elapsed = time.monotonic() - started
            return classify(
                exc, opening=True, elapsed_s=elapsed, open_timeout_s=self.config.reader.socket_timeout_s
            ), False
        connected = time.monotonic()
        try:
            self._watch(reader)
            failure = ENDED
        except (av.error.FFmpegError, OSError) as exc:
            failure = classify(exc)
        except Exception as exc:  # last resort: a bug in a detector or sink must not end the camera's watch
            log.exception("camera %s: internal error, reconnecting", self.camera.id)
            failure = Failure(FailureKind.OTHER, CameraState.OFFLINE, False, f"internal error: {redact(repr(exc))}")
        finally:
            reader.close()
            self.pipeline.disconnect()
            self._flush_events()
        return failure, time.monotonic() - connected >= STABLE_CONNECTION_S

    def _flush_events(self) -> None:
        """End the events the dropped connection left open."""
        try:
            for event in self.analyzer.flush(time.time()):
                self._sink(event, self.camera, self.config.analyzer.motion.name, None)
        except Exception:  # the same last resort as in _connect_once: the camera must go on
            log.exception("camera %s: internal error while ending its open events", self.camera.id)

    def _watch(self, reader: StreamReader) -> None:
        """Feed packets to the pipeline until the stream ends, fails or the runner stops."""
        stream = reader.video
        self._declared_fps = reader.declared_fps
        if stream.codec_context.width:
            self._size = (stream.codec_context.width, stream.codec_context.height)
        self.pipeline.connect(stream)
        st = self.stats
        meter = RateMeter(st)
        window = self.config.degraded_window_s
        next_check = time.monotonic() + window
        online = False
        feed = self.pipeline.feed
        stop = self._stop
        for packet, media_s in reader.packets():
            if stop.is_set():
                return
            feed(packet, media_s)
            if not online:
                online = True
                self._set_state(CameraState.ONLINE, None)
            elif self._watchdog_stalled:
                self._watchdog_stalled = False
                self._set_state(CameraState.ONLINE, None)
            if st.last_packet_mono >= next_check:
                next_check = st.last_packet_mono + window
                self._judge(meter)

    def _judge(self, meter: RateMeter) -> None:
        """Online or degraded, from the last window's frame rate and decode errors."""
        rates = meter.take()
        declared = self._declared_fps
        cfg = self.config
        if declared and rates.fps_received < cfg.degraded_fps_fraction * declared:
            self._set_state(
                CameraState.DEGRADED,
                f"receiving {rates.fps_received:.1f} fps of the {declared:g} fps the stream declares "
                "(network loss or an overloaded camera)",
            )
        elif rates.decode_errors >= _CORRUPT_MIN and rates.decode_errors >= _CORRUPT_FRACTION * max(1, rates.decoded):
            self._set_state(
                CameraState.DEGRADED,
                f"corrupt data: {rates.decode_errors} of {rates.decoded} decoded frames damaged "
                f"in the last {cfg.degraded_window_s:g} s",
            )
        else:
            self._set_state(CameraState.ONLINE, None)
