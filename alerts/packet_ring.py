"""A bytes-bounded ring of one camera's compressed packets: the last seconds, whole GOPs from a keyframe on.

The pre-roll of event clips (``alerts/clips.py``). Nothing here decodes or copies: a packet's buffer is
reference-counted by FFmpeg, and the byte cap counts payloads plus a fixed overhead per packet.
"""

from __future__ import annotations

import time
from collections import deque
from dataclasses import dataclass, field
from fractions import Fraction
from typing import Any

from av.packet import Packet

# What one queued packet costs besides its payload: the AVPacket, its buffer reference and padding, the
# Python objects around it. Counted against the ring's byte cap so the cap bounds real memory.
PACKET_OVERHEAD = 256
# Used when a packet has neither a timestamp nor a duration (raw Annex-B files): 25 fps.
_FALLBACK_FPS = 25


@dataclass(slots=True)
class RingEntry:
    """One packet held, with the timing the ring gave it (a packet may lack pts, dts or duration)."""

    packet: Packet[Any]
    pts: int
    dts: int
    duration: int
    arrived: float
    size: int
    key: bool


@dataclass(slots=True)
class _Gop:
    entries: list[RingEntry] = field(default_factory=list)
    size: int = 0


class PacketRing:
    """The last seconds of one camera's packets, whole GOPs from a keyframe on, capped at ``max_bytes``.

    ``push`` is cheap: no decoding, no copy (the packet's buffer is reference-counted by FFmpeg).
    """

    def __init__(self, max_bytes: int, keep_s: float) -> None:
        if max_bytes < 1 or keep_s < 0:
            raise ValueError(f"ring needs max_bytes >= 1 and keep_s >= 0, got {max_bytes}, {keep_s}")
        self.max_bytes = max_bytes
        self.keep_s = keep_s
        self._gops: deque[_Gop] = deque()
        self._bytes = 0
        self._stream: Any = None
        self.time_base: Fraction | None = None
        self._default_duration = 1
        self._next_pts = 0
        self.dropped = 0

    @property
    def bytes(self) -> int:
        """Memory the ring accounts for: payloads plus a fixed overhead per packet."""
        return self._bytes

    def __len__(self) -> int:
        return sum(len(g.entries) for g in self._gops)

    def span_s(self) -> float:
        """Arrival time from the oldest to the newest packet held."""
        if not self._gops:
            return 0.0
        return self._gops[-1].entries[-1].arrived - self._gops[0].entries[0].arrived

    def reset(self) -> None:
        """Forget everything (the stream closed; the next one may differ)."""
        self._gops.clear()
        self._bytes = 0
        self._stream = None
        self.time_base = None

    def new_stream(self, packet: Packet[Any]) -> bool:
        """True when ``packet`` comes from another stream than the ring holds (a reconnect)."""
        return packet.stream is not self._stream

    def adopt_stream(self, packet: Packet[Any]) -> None:
        """Start over on ``packet``'s stream."""
        self.reset()
        stream = packet.stream
        self._stream = stream
        self.time_base = packet.time_base or stream.time_base or Fraction(1, 90000)
        rate = stream.average_rate or stream.guessed_rate or _FALLBACK_FPS
        self._default_duration = max(1, round(1 / (Fraction(rate) * self.time_base)))
        self._next_pts = 0

    def push(self, packet: Packet[Any], arrived: float | None = None) -> RingEntry | None:
        """Keep ``packet``; returns its entry, or None when it cannot start a GOP (no keyframe yet)."""
        if packet.size == 0:
            return None
        if self._stream is None or self.new_stream(packet):
            self.adopt_stream(packet)
        duration = packet.duration or self._default_duration
        pts = packet.pts if packet.pts is not None else self._next_pts
        dts = packet.dts if packet.dts is not None else pts
        self._next_pts = max(self._next_pts, pts + duration)
        key = packet.is_keyframe
        entry = RingEntry(packet, pts, dts, duration, time.time() if arrived is None else arrived, packet.size, key)
        if key:
            self._gops.append(_Gop())
        elif not self._gops:
            self.dropped += 1
            return entry  # usable by a running recording, but no clip can start on it
        gop = self._gops[-1]
        gop.entries.append(entry)
        cost = entry.size + PACKET_OVERHEAD
        gop.size += cost
        self._bytes += cost
        self._evict()
        return entry

    def _evict(self) -> None:
        while self._gops:
            if self._bytes <= self.max_bytes:
                # Within the byte cap: drop the oldest GOP only if the rest still covers keep_s.
                if len(self._gops) < 2:
                    return
                newest = self._gops[-1].entries[-1].arrived
                if newest - self._gops[1].entries[0].arrived < self.keep_s:
                    return
            gop = self._gops.popleft()
            self._bytes -= gop.size
            self.dropped += len(gop.entries)

    def since(self, t_s: float) -> list[RingEntry]:
        """Entries from the last keyframe that arrived at or before ``t_s`` (or the oldest one) to now."""
        if not self._gops:
            return []
        start = 0
        for i, gop in enumerate(self._gops):
            if gop.entries[0].arrived <= t_s:
                start = i
        out: list[RingEntry] = []
        for gop in list(self._gops)[start:]:
            out.extend(gop.entries)
        return out
