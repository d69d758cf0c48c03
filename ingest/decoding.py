"""The two decoders of one camera connection and the compressed packets since the last keyframe.

Idle mode sends only keyframes to a decoder (a packet filter: it costs the same as ``skip_frame='NONKEY'``
within 10 %, see the shared decode-costs notes, and it lets us keep the skipped packets). That decoder may
use cheaper settings (no deblocking loop filter) because nothing references its output.

Switching to full decoding mid-GOP leaves a decoder without the references of the P-frames that follow.
So every packet since the last keyframe stays in a bounded :class:`GopBuffer`, and escalation decodes it
with the full decoder first: full-rate frames begin at once, never at the next keyframe (up to a GOP
later). The catch-up costs one keyframe plus the P-frames so far, a few milliseconds at 360p.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import av
import av.codec.context
import av.video
from av.video.codeccontext import VideoCodecContext

# FFmpeg's AVDISCARD_ALL for skip_loop_filter: no deblocking at all. About 10 % of a keyframe decode at
# 360p (3.9 -> 3.5 ms measured) and nearly 30 % of a full decode.
_CHEAP_IDLE_OPTIONS = {"skip_loop_filter": "all"}


class GopBuffer:
    """The packets since (and including) the last keyframe, bounded by ``max_bytes``.

    Packets are PyAV references to the demuxer's buffers, not copies. Past ``max_bytes`` (a GOP far longer
    than any camera should send) the buffer empties and stays unusable until the next keyframe: escalation
    then waits for that keyframe instead of holding unbounded memory.
    """

    __slots__ = ("max_bytes", "nbytes", "packets", "usable")

    def __init__(self, max_bytes: int) -> None:
        if max_bytes < 1:
            raise ValueError(f"max_bytes must be positive, got {max_bytes}")
        self.max_bytes = max_bytes
        self.packets: list[av.Packet[Any]] = []
        self.nbytes = 0
        self.usable = False  # True once it starts with a keyframe and has not overflowed

    def restart(self, keyframe: av.Packet[Any]) -> None:
        """Start a new GOP with ``keyframe``."""
        self.packets.clear()
        self.packets.append(keyframe)
        self.nbytes = keyframe.size
        self.usable = keyframe.size <= self.max_bytes

    def add(self, packet: av.Packet[Any]) -> None:
        """Append a non-key packet."""
        if not self.usable:
            return
        self.nbytes += packet.size
        if self.nbytes > self.max_bytes:
            self.clear()
            return
        self.packets.append(packet)

    def clear(self) -> None:
        """Drop everything until the next keyframe."""
        self.packets.clear()
        self.nbytes = 0
        self.usable = False


@dataclass(frozen=True, slots=True)
class DecoderSettings:
    """Decoder choices of a camera."""

    cheap_idle: bool = True  # decode idle keyframes without the loop filter (separate decoder)
    max_gop_bytes: int = 4_000_000


def _new_context(stream: av.video.stream.VideoStream, options: dict[str, str]) -> VideoCodecContext:
    ctx = av.codec.context.CodecContext.create(stream.codec_context.codec.name, "r")
    assert isinstance(ctx, VideoCodecContext)
    extradata = stream.codec_context.extradata
    if extradata:
        ctx.extradata = extradata
    ctx.thread_count = 1
    ctx.thread_type = "SLICE"
    if options:
        ctx.options = dict(options)
    return ctx


class Decoders:
    """The idle decoder (keyframes only) and the full decoder (every frame) of one connection.

    ``full_next`` is how many packets of the current GOP the full decoder has consumed: decoding packet
    ``gop.packets[full_next]`` next is correct, anything else is not. -1 means it is out of step with the
    stream and must restart from a keyframe.
    """

    def __init__(self, stream: av.video.stream.VideoStream, settings: DecoderSettings) -> None:
        self._stream = stream
        self.settings = settings
        self._full: VideoCodecContext | None = None
        self._idle: VideoCodecContext | None = None
        self.full_next = -1

    def _full_ctx(self) -> VideoCodecContext:
        if self._full is None:
            self._full = _new_context(self._stream, {})
        return self._full

    def _idle_ctx(self) -> VideoCodecContext:
        if not self.settings.cheap_idle:
            return self._full_ctx()
        if self._idle is None:
            self._idle = _new_context(self._stream, _CHEAP_IDLE_OPTIONS)
        return self._idle

    def gop_restarted(self) -> None:
        """A keyframe began a new GOP that the full decoder has not seen (yet)."""
        self.full_next = -1

    def decode_idle(self, keyframe: av.Packet[Any]) -> list[av.VideoFrame]:
        """Decode one keyframe in idle mode."""
        ctx = self._idle_ctx()
        # With a shared decoder the keyframe also puts the full decoder in step (at packet 1 of the GOP).
        shared = ctx is self._full
        self.full_next = -1
        frames = ctx.decode(keyframe)
        if shared:
            self.full_next = 1
        return frames

    def catch_up(self, gop: GopBuffer) -> list[av.VideoFrame]:
        """Bring the full decoder level with the stream by decoding the buffered GOP; returns the frames
        decoded (possibly none). Raises ``LookupError`` when the buffer cannot do it (no keyframe yet, or
        overflowed): the caller waits for the next keyframe."""
        if not gop.usable:
            raise LookupError("no usable GOP buffer: wait for the next keyframe")
        start = self.full_next if 0 <= self.full_next <= len(gop.packets) else 0
        ctx = self._full_ctx()
        frames: list[av.VideoFrame] = []
        for packet in gop.packets[start:]:
            frames.extend(ctx.decode(packet))
        self.full_next = len(gop.packets)
        return frames

    def decode_full(self, packet: av.Packet[Any]) -> list[av.VideoFrame]:
        """Decode the packet just appended to the GOP (or a keyframe that restarted it) at full rate."""
        frames = self._full_ctx().decode(packet)
        self.full_next = 1 if packet.is_keyframe else self.full_next + 1
        return frames

    def release_full(self) -> None:
        """Back to idle: free the full decoder's frame pool unless it is also the idle decoder."""
        self.full_next = -1
        if self.settings.cheap_idle and self._full is not None:
            self._full = None  # PyAV frees the context (and its DPB) with the last reference

    def close(self) -> None:
        """Drop both decoders."""
        self._full = self._idle = None
        self.full_next = -1
