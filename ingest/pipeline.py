"""One camera's hot path: compressed packets in, decode mode chosen, luma frames analysed, events out.

Idle: only keyframes are decoded (about 1/s), each one analysed, or once the camera has been quiet for
minutes only every second or third one. Active: when the analyzer reports activity in an armed zone, or
the camera raises an alarm, every frame is decoded and frames are analysed at the detection rate, until
the camera has been quiet for ``active_hold_s``; then back to idle. Escalation decodes the packets buffered
since the last keyframe first (``ingest/decoding.py``), so full-rate frames start at once.

When the camera thread falls behind real time (decode or detection too slow), frames are dropped and
counted, never queued: nothing here holds more than one GOP of compressed packets.

The same class runs in the workers (live: wall-clock time, lag control) and in the benchmarks and offline
tools (media time, no lag control), so the benchmarks measure the code that runs.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Any

import av
import cv2
import numpy as np

from detectors.analyzer import Analysis, CameraAnalyzer
from detectors.events import Event, EventPhase
from detectors.source import ChromaLumaFrame, chroma_level
from detectors.zones import privacy_mask
from ingest.cameras import Camera
from ingest.decoding import Decoders, DecoderSettings, GopBuffer
from ingest.frames import DecodeMode, Luma
from ingest.reader import detect_size, downscale, luma_view
from ingest.stats import CameraStats

EventSink = Callable[[Event, Camera, str, av.VideoFrame | None], object]
PacketHook = Callable[["av.Packet[Any]"], None]

# The lag anchor may drift up by 1 ms per media second: a camera clock 100 ppm slow against ours would
# otherwise look like a camera falling further behind forever; 1,000 ppm is ten times any real drift.
_ANCHOR_LEAK = 0.001
# Media time going back more than this between two packets is a timestamp reset, not jitter.
_BACKWARD_JUMP_S = 1.0
# A live packet lagging real time by no more than this beyond the anchor (the least lag) came on time: the
# camera is caught up, and batched reading may pause. Two frames at 25 fps, above LAN jitter and a thread
# scheduled late; a camera that is behind (draining a batch, or slow) never pauses.
_LIVE_EDGE_S = 0.08


@dataclass(frozen=True, slots=True)
class ModeSettings:
    """When to decode what; see the ingest engine section of ``config/settings.py`` for each meaning."""

    analysis_interval_s: float = 0.2
    idle_interval_s: float = 1.0
    active_hold_s: float = 10.0
    adaptive_idle: bool = True
    idle_slow_after_s: float = 120.0
    idle_slower_after_s: float = 600.0
    max_lag_s: float = 3.0
    no_keyframe_s: float = 15.0
    decoder: DecoderSettings = field(default_factory=DecoderSettings)
    # Off: keyframe-only analysis whatever the scene shows (the benchmarks' 1-fps comparison; cameras an
    # operator wants kept cheap). Alarms still escalate.
    escalate_on_motion: bool = True
    # Live cameras are read in batches: after a packet that came on time, the camera's thread sleeps this long,
    # then drains what TCP buffered meanwhile. It wakes a few times a second instead of for every packet:
    # 16 cameras at 360p measured 9.25 -> 6.70 ms of CPU per camera-second at 0.25 s (wakeups and GIL
    # handoffs are most of RTSP's receive cost). Every packet still arrives; alerts come at most this much
    # later. 0 (the default here; the settings' receive_batch_s is 0.25): no pauses.
    receive_batch_s: float = 0.0

    def __post_init__(self) -> None:
        if self.receive_batch_s < 0:
            raise ValueError(f"receive_batch_s must not be negative, got {self.receive_batch_s}")
        for name in ("analysis_interval_s", "idle_interval_s", "max_lag_s", "no_keyframe_s"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive, got {getattr(self, name)}")
        if self.active_hold_s < 0:
            raise ValueError(f"active_hold_s must not be negative, got {self.active_hold_s}")
        if self.idle_slower_after_s < self.idle_slow_after_s:
            raise ValueError(
                f"idle_slower_after_s ({self.idle_slower_after_s}) must not be below "
                f"idle_slow_after_s ({self.idle_slow_after_s})"
            )


def _any_change(analysis: Analysis) -> bool:
    """True when the frame showed any change in an armed zone, or a scene change (recalibration)."""
    motion = getattr(analysis, "motion", None)  # detail the analyzer may or may not report
    if motion is None:
        return False
    return bool(getattr(motion, "recalibrating", False)) or any(
        getattr(zone, "fraction", 0.0) > 0.0 for zone in getattr(motion, "zones", ())
    )


class CameraPipeline:
    """Decode-mode control and analysis of one camera. Fed by one thread; :meth:`alarm` may be called
    from any thread."""

    def __init__(
        self,
        camera: Camera,
        analyzer: CameraAnalyzer,
        sink: EventSink,
        detect_width: int,
        settings: ModeSettings,
        stats: CameraStats | None = None,
        *,
        live: bool = True,
        on_packet: PacketHook | None = None,
    ) -> None:
        self.camera = camera
        self.analyzer = analyzer
        self.sink = sink
        self.detect_width = detect_width
        self.settings = settings
        self.stats = stats if stats is not None else CameraStats()
        self.live = live
        # Called with every compressed packet (event clips keep a ring of them); None costs nothing.
        self.on_packet = on_packet
        self.mode = DecodeMode.IDLE
        self._batched = live and settings.receive_batch_s > 0
        self._caught_up = False
        # Media times at which the camera escalated, when a benchmark or test asks for them.
        self.escalation_log: list[float] | None = None
        self._gop = GopBuffer(settings.decoder.max_gop_bytes)
        self._decoders: Decoders | None = None
        self._alarm = False
        self._keyless = False
        self._resync = False
        self._source: tuple[int, int] | None = None
        self._size = (0, 0)
        self._keep_hw: Luma | None = None
        self._reset_timing(0.0)

    # --- connection lifecycle

    def _reset_timing(self, media_s: float) -> None:
        self._anchor = float("inf")
        self._leak_media = media_s
        self._mono_to_wall = time.time() - time.monotonic()
        self._since_analysis = 1 << 30  # the first keyframe is always analysed
        self._next_due = media_s
        self._last_active = media_s
        self._last_change = media_s
        self._last_key_media = media_s
        self._prev_media = media_s
        self._last_t: float | None = None

    def connect(self, stream: av.video.stream.VideoStream) -> None:
        """Start a new connection on ``stream``: fresh decoders, idle mode, timing re-anchored."""
        self.disconnect()
        self._decoders = Decoders(stream, self.settings.decoder)
        self.stats.new_connection()
        self._first_packet = True

    def disconnect(self) -> None:
        """Forget the connection's decoders and buffered packets (the analyzer keeps its background)."""
        if self._decoders is not None:
            self._decoders.close()
        self._decoders = None
        self._gop.clear()
        self.mode = DecodeMode.IDLE
        self._resync = self._keyless = False

    def alarm(self) -> None:
        """The camera (or an operator) raised an alarm: escalate at the next packet, hold as for motion."""
        self._alarm = True

    # --- the hot path

    def feed(self, packet: av.Packet[Any], media_s: float) -> None:
        """Take one compressed video packet with its media time (seconds, increasing); when it came on time
        and reads are batched, pause ``receive_batch_s`` before the caller reads the next one."""
        self._take(packet, media_s)
        if self._caught_up:
            self._caught_up = False
            self.stats.batch_pauses += 1
            time.sleep(self.settings.receive_batch_s)

    def _take(self, packet: av.Packet[Any], media_s: float) -> None:
        st = self.stats
        st.packets += 1
        st.bytes += packet.size
        if self.on_packet is not None:
            self.on_packet(packet)
        if self._first_packet:
            self._first_packet = False
            self._reset_timing(media_s)
        key = packet.is_keyframe
        if key:
            st.keyframe(media_s)
            self._gop.restart(packet)
            self._last_key_media = media_s
            self._keyless = False
        else:
            self._gop.add(packet)
        if media_s < self._prev_media - _BACKWARD_JUMP_S:
            # The camera restarted its timestamps: re-anchor every media-time deadline (and the lag anchor),
            # or the camera would look far behind real time and its timers would not fire for a while.
            self._reset_timing(media_s)
            self.stats.new_connection()
        self._prev_media = media_s
        behind = False
        if self.live:
            now = time.monotonic()
            st.last_packet_mono = now
            skew = now - media_s
            if key:
                self._anchor += _ANCHOR_LEAK * (media_s - self._leak_media)
                self._leak_media = media_s
            if skew < self._anchor:
                self._anchor = skew
            elif skew - self._anchor > self.settings.max_lag_s:
                behind = True
            st.last_packet_due = media_s + self._anchor
            self._caught_up = self._batched and skew - self._anchor < _LIVE_EDGE_S
        if self._alarm:
            self._alarm = False
            self._last_active = self._last_change = media_s
            if self.mode is DecodeMode.IDLE:
                self._escalate(media_s, analyse_catch_up=True)
                return
        if self.mode is DecodeMode.IDLE:
            if key:
                self._idle_keyframe(packet, media_s, behind)
            elif media_s - self._last_key_media > self.settings.no_keyframe_s:
                # No keyframe for this long (intra-refresh cameras send none): idle mode would analyse
                # nothing, so decode everything instead, for as long as no keyframe comes.
                self._keyless = True
                self._escalate(media_s, analyse_catch_up=False)
        else:
            self._active_packet(packet, media_s, key, behind)

    def _idle_keyframe(self, packet: av.Packet[Any], media_s: float, behind: bool) -> None:
        st = self.stats
        assert self._decoders is not None
        self._decoders.gop_restarted()
        if behind:
            st.dropped += 1
            return
        self._since_analysis += 1
        if self._since_analysis < self._stride(media_s):
            st.skipped_keyframes += 1
            return
        self._since_analysis = 0
        try:
            frames = self._decoders.decode_idle(packet)
        except av.error.FFmpegError:
            st.decode_errors += 1
            return
        if frames:
            st.decoded += len(frames)
            frame = frames[-1]
            if frame.is_corrupt:
                st.decode_errors += 1
            self._analyse(frame, media_s, True)

    def _stride(self, media_s: float) -> int:
        """Analyse every n-th keyframe: one per ``idle_interval_s``, fewer once quiet for minutes."""
        s = self.settings
        interval = self.stats.keyframe_interval_s
        stride = 1 if interval is None else max(1, round(s.idle_interval_s / interval))
        if s.adaptive_idle:
            quiet = media_s - self._last_change
            if quiet >= s.idle_slower_after_s:
                stride *= 3
            elif quiet >= s.idle_slow_after_s:
                stride *= 2
        return stride

    def _active_packet(self, packet: av.Packet[Any], media_s: float, key: bool, behind: bool) -> None:
        st = self.stats
        assert self._decoders is not None
        if behind:
            st.dropped += 1
            # The decoder now lacks this packet's references until the next keyframe; a stream without
            # keyframes has none to wait for, and the decoder conceals the damage instead.
            self._resync = not self._keyless
            return
        if self._resync:
            if not key:
                st.dropped += 1
                return
            self._resync = False
        try:
            frames = self._decoders.decode_full(packet)
        except av.error.FFmpegError:
            st.decode_errors += 1
            return
        st.decoded += len(frames)
        for frame in frames:
            if frame.is_corrupt:
                st.decode_errors += 1
            if media_s >= self._next_due:
                interval = self.settings.analysis_interval_s
                self._next_due = max(self._next_due + interval, media_s + interval / 2)
                self._analyse(frame, media_s, key)
        if not self._keyless and media_s - self._last_active >= self.settings.active_hold_s:
            self._deescalate()

    def _escalate(self, media_s: float, *, analyse_catch_up: bool) -> None:
        st = self.stats
        assert self._decoders is not None
        self.mode = DecodeMode.ACTIVE
        st.escalations += 1
        if self.escalation_log is not None:
            self.escalation_log.append(media_s)
        self._next_due = media_s + self.settings.analysis_interval_s
        if self._keyless:
            return  # nothing buffered to catch up from: decode from the next packet on
        try:
            frames = self._decoders.catch_up(self._gop)
        except LookupError:
            self._resync = True  # no usable GOP: full rate starts at the next keyframe
            return
        except av.error.FFmpegError:
            st.decode_errors += 1
            self._resync = True
            return
        st.decoded += len(frames)
        if analyse_catch_up and frames:
            self._analyse(frames[-1], media_s, len(self._gop.packets) == 1)

    def _deescalate(self) -> None:
        self.mode = DecodeMode.IDLE
        self._resync = False
        self._since_analysis = 1 << 30  # analyse the next keyframe
        if self._decoders is not None:
            self._decoders.release_full()

    def _analyse(self, frame: av.VideoFrame, media_s: float, key: bool) -> None:
        luma = luma_view(frame)
        height, width = luma.shape
        if (width, height) != self._source:  # first frame, or the camera changed resolution
            self._source = (width, height)
            self._size = detect_size(width, height, self.detect_width)
            mask = privacy_mask(self.camera.zones, self._size[0], self._size[1])
            self._keep_hw = None if mask is None else np.where(mask, 0, 255).astype(np.uint8)
        # A fresh array per analysed frame (1-5 per second, about 1 us): a detector may keep a reference to
        # the previous frame, and a reused buffer would change under it.
        small = downscale(luma, *self._size)
        if self._keep_hw is not None:
            cv2.bitwise_and(small, self._keep_hw, dst=small)  # privacy zones black before any detector
        t = media_s + self._anchor + self._mono_to_wall if self.live else media_s
        interval = None if self._last_t is None else t - self._last_t
        self._last_t = t
        self.stats.analysed += 1
        self.stats.last_frame_wall = t if self.live else None
        # The colour cue for the day/night logic (about 10 us): the detectors' own frame type carries it.
        frame_in = ChromaLumaFrame(
            self.camera.id, t, small, key, interval_s=interval, mode=self.mode, chroma_level=chroma_level(frame)
        )
        analysis = self.analyzer.process(frame_in)
        for event in analysis.events:
            self.sink(event, self.camera, analysis.params, frame if event.phase is EventPhase.START else None)
        if analysis.active:
            self._last_active = self._last_change = media_s
            if self.mode is DecodeMode.IDLE and self.settings.escalate_on_motion:
                self._escalate(media_s, analyse_catch_up=False)
        elif _any_change(analysis):
            # The first change, even below the alert threshold, brings a slowed idle camera back to every
            # keyframe: a small or short event seen weakly once gets its next look one keyframe later.
            self._last_change = media_s

    # --- for health reports

    @property
    def keyless(self) -> bool:
        """True while the stream sends no keyframes and every frame is decoded instead."""
        return self._keyless
