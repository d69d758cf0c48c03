"""Per-camera counters, written by the camera's own thread and read by the health reporter.

Plain ints and floats: CPython reads and writes them atomically, so the reporter needs no lock to take a
snapshot, and the hot path (one packet every 40 ms per camera) pays only attribute increments.
"""

from __future__ import annotations

import statistics
import time
from collections import deque
from dataclasses import dataclass, field

# The median of the last 9 keyframe intervals: one late or early keyframe (a scene-cut IDR, a lost packet)
# does not move it, and 9 keyframes are under 10 s of video at the usual 1 s GOP.
_KEYFRAME_HISTORY = 9
# Reconnect times kept for the "reconnects in the last hour" figure. Backoff allows at most about one
# reconnect per second per camera, so 3,600 would cover a full hour of the worst flapping.
_RECONNECT_HISTORY = 3600
HOUR_S = 3600.0


@dataclass(slots=True)
class CameraStats:
    """Counters of one camera since its runner started (totals, never reset)."""

    packets: int = 0
    bytes: int = 0
    keyframes: int = 0
    decoded: int = 0
    analysed: int = 0
    # Frames not decoded because the camera fell behind real time (detection or decoding too slow).
    dropped: int = 0
    # Idle keyframes deliberately not decoded (adaptive idle rate, or a GOP shorter than the idle interval).
    skipped_keyframes: int = 0
    decode_errors: int = 0
    escalations: int = 0
    # Pauses of batched reading (ModeSettings.receive_batch_s): a few a second for a caught-up camera.
    batch_pauses: int = 0
    last_packet_mono: float = 0.0
    # When the latest packet was due by its media time (monotonic clock): its arrival without batching or lag.
    last_packet_due: float = 0.0
    last_frame_wall: float | None = None
    _keyframe_gaps: deque[float] = field(default_factory=lambda: deque(maxlen=_KEYFRAME_HISTORY))
    _last_keyframe_media: float | None = None
    _reconnects: deque[float] = field(default_factory=lambda: deque(maxlen=_RECONNECT_HISTORY))

    def keyframe(self, media_s: float) -> None:
        """Record a keyframe at media time ``media_s``."""
        self.keyframes += 1
        last = self._last_keyframe_media
        if last is not None and media_s > last:
            self._keyframe_gaps.append(media_s - last)
        self._last_keyframe_media = media_s

    def new_connection(self) -> None:
        """Forget the keyframe timing of the previous connection (media time restarts)."""
        self._last_keyframe_media = None

    @property
    def keyframe_interval_s(self) -> float | None:
        """Median observed keyframe interval, or None before two keyframes were seen."""
        gaps = list(self._keyframe_gaps)
        return statistics.median(gaps) if gaps else None

    def seconds_since_keyframe(self, media_s: float) -> float | None:
        """Media seconds since the last keyframe of this connection (None before the first one)."""
        last = self._last_keyframe_media
        return None if last is None else media_s - last

    def reconnected(self, now_wall: float | None = None) -> None:
        """Record one reconnect."""
        self._reconnects.append(time.time() if now_wall is None else now_wall)

    def reconnects_last_hour(self, now_wall: float | None = None) -> int:
        """Reconnects within the last hour."""
        now = time.time() if now_wall is None else now_wall
        return sum(1 for t in list(self._reconnects) if now - t <= HOUR_S)


@dataclass(frozen=True, slots=True)
class Rates:
    """Per-second rates over one reporting window."""

    fps_received: float
    fps_decoded: float
    fps_analysed: float
    bitrate_kbps: float
    decode_errors: int
    decoded: int


# A window ends when the last packet was due if that packet was read at most this long ago: longer than any
# batch pause (at most 1 s, 0.25 s by default), short enough that a stream going silent shows in the next window.
_BATCH_SNAP_S = 1.0


class RateMeter:
    """Turns the ever-growing counters into rates over the time since the previous call."""

    def __init__(self, stats: CameraStats, now: float | None = None) -> None:
        self._stats = stats
        self._mark = time.monotonic() if now is None else now
        self._packets = stats.packets
        self._bytes = stats.bytes
        self._decoded = stats.decoded
        self._analysed = stats.analysed
        self._errors = stats.decode_errors

    def elapsed(self) -> float:
        """Seconds since the window started."""
        return time.monotonic() - self._mark

    def take(self, now: float | None = None) -> Rates:
        """Rates since the previous ``take`` (or creation), and start a new window.

        A window ends when the last packet was due by its media time, if it arrived recently: live packets
        arrive in batches (``ModeSettings.receive_batch_s``) and are read in bursts, and a window cut at the moment of
        reading would count part of a batch against the wrong window (+-3 fps over 2 s at 25 fps).
        """
        st = self._stats
        now = time.monotonic() if now is None else now
        due = st.last_packet_due
        end = due if self._mark < due and now - st.last_packet_mono < _BATCH_SNAP_S else now
        span = max(1e-3, end - self._mark)
        packets, nbytes, decoded, analysed, errors = st.packets, st.bytes, st.decoded, st.analysed, st.decode_errors
        rates = Rates(
            fps_received=(packets - self._packets) / span,
            fps_decoded=(decoded - self._decoded) / span,
            fps_analysed=(analysed - self._analysed) / span,
            bitrate_kbps=(nbytes - self._bytes) * 8 / 1000 / span,
            decode_errors=errors - self._errors,
            decoded=decoded - self._decoded,
        )
        self._mark = end
        self._packets, self._bytes, self._decoded, self._analysed, self._errors = (
            packets,
            nbytes,
            decoded,
            analysed,
            errors,
        )
        return rates
