"""Stream reader: PyAV over RTSP/TCP (or a looped local file), yielding compressed packets with their media
time; decoding is the decode-mode controller's business (``ingest/decoding.py``).

PyAV caveats this module is built around (see ``/work/shared/docs/decode-costs.md``):
- one decoder thread per camera: frame threading costs 13-45 % more CPU for the same frames;
- the Y plane is read as a view of the decoded frame, never through swscale or RGB;
- a killed server ends the demuxer with a plain EOF, not an exception: the caller treats it as a drop;
- ``av.open`` takes an explicit open timeout and a read timeout (FFmpeg's interrupt callback), and the
  socket timeout bounds each TCP read, so a silent camera raises instead of blocking a thread forever.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import Any, cast
from urllib.parse import unquote, urlsplit

import av
import av.container
import av.video
import cv2
import numpy as np

from ingest.cameras import stream_url_with_credentials
from ingest.frames import Luma

# Formats whose first plane is the 8-bit luma plane; anything else goes through swscale (rare on cameras).
_Y_FIRST = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"})
# 0.5 s of probing finds the SPS/PPS of a camera sending one keyframe a second or more; the 5 s default
# makes every (re)connect five times slower for nothing.
_ANALYZE_US = "500000"
# Frame rate assumed for timing packets that carry no timestamp when the stream declares none.
_FALLBACK_FPS = 25.0


@dataclass(frozen=True, slots=True)
class ReaderOptions:
    """How to open and pace a stream."""

    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    # Local files play in real time and loop, so that they behave like a camera; off for offline runs and
    # benchmarks, which read each file once as fast as possible.
    realtime_files: bool = True

    @property
    def socket_timeout_s(self) -> float:
        """FFmpeg's socket timeout: half the read timeout (see :meth:`StreamReader.open`), at most the open timeout.

        An open that gets no answer fails after about this long, not after ``open_timeout_s``.
        """
        return min(self.open_timeout_s, self.read_timeout_s / 2)


def is_file_url(url: str) -> bool:
    """True for ``file://`` URLs and plain paths."""
    return urlsplit(url).scheme in ("file", "")


def with_credentials(url: str, username: str | None, password: str | None) -> str:
    """``url`` with ``username:password@`` inserted (RTSP only). The result must never be logged."""
    return stream_url_with_credentials(url, username, password) or url


def file_path(url: str) -> str:
    """The filesystem path of a ``file://`` URL or plain path."""
    return unquote(urlsplit(url).path) if url.startswith("file:") else url


def detect_size(width: int, height: int, detect_width: int) -> tuple[int, int]:
    """Detection size for a ``width`` x ``height`` source: ``detect_width`` wide, aspect kept, even height."""
    w = min(detect_width, width)
    h = max(2, round(height * w / width / 2) * 2)
    return w, h


def luma_view(frame: av.VideoFrame) -> Luma:
    """The frame's Y plane as a ``(H, W)`` uint8 view (no copy) when the pixel format allows it."""
    if frame.format.name not in _Y_FIRST:
        return cast(Luma, frame.to_ndarray(format="gray", threads=1))
    plane = frame.planes[0]
    full = np.frombuffer(memoryview(plane), dtype=np.uint8).reshape(frame.height, plane.line_size)
    return full[:, : frame.width]


def downscale(luma_hw: Luma, width: int, height: int, out_hw: Luma | None = None) -> Luma:
    """Resize luma to ``(height, width)``; INTER_AREA only for an exact 2x, where it is as cheap as LINEAR.

    ``out_hw``, a preallocated ``(height, width)`` uint8 array, receives the result when given (no
    allocation per frame). The result never aliases the decoder's buffer.
    """
    src_h, src_w = luma_hw.shape
    if out_hw is None:
        out_hw = np.empty((height, width), np.uint8)
    elif out_hw.shape != (height, width) or out_hw.dtype != np.uint8:
        raise ValueError(f"out_hw must be a ({height}, {width}) uint8 array, got {out_hw.dtype} {out_hw.shape}")
    if (src_w, src_h) == (width, height):
        np.copyto(out_hw, luma_hw)
        return out_hw
    exact_half = src_w == 2 * width and src_h == 2 * height
    interp = cv2.INTER_AREA if exact_half else cv2.INTER_LINEAR
    cv2.resize(luma_hw, (width, height), dst=out_hw, interpolation=interp)
    return out_hw


class StreamReader:
    """One camera's stream. Use as a context manager (or :meth:`open`/:meth:`close`): the container is
    always closed, also when the caller's loop raises."""

    def __init__(self, url: str, options: ReaderOptions, username: str | None = None, password: str | None = None):
        self.url = url
        self.options = options
        self._open_url = with_credentials(url, username, password)
        self._file = is_file_url(url)
        self._container: av.container.InputContainer | None = None
        self.opens = 0

    def __enter__(self) -> StreamReader:
        self.open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def open(self) -> None:
        """Open the stream: raises ``av.error.FFmpegError`` (see ``ingest/failures.py`` for the classes)."""
        opts = self.options
        if self._file:
            self._container = av.open(file_path(self.url))
        else:
            self._container = av.open(
                self._open_url,
                options={
                    "rtsp_transport": "tcp",
                    # FFmpeg's socket timeout in microseconds: bounds the TCP connect and every socket read.
                    # Half the read timeout: when a server goes silent, the RTP depacketizer still holds the
                    # last frame and hands it out only when the first socket read times out; the second
                    # timeout then raises. Measured: socket timeout T -> error about 2T after the stall.
                    "timeout": str(int(opts.socket_timeout_s * 1_000_000)),
                    "analyzeduration": _ANALYZE_US,
                },
                # PyAV's interrupt callback: open timeout for av.open, read timeout for every packet read.
                timeout=(opts.open_timeout_s, opts.read_timeout_s),
            )
        self.opens += 1
        if not self._container.streams.video:
            self.close()
            raise av.error.InvalidDataError(0, "the stream has no video track", self.url)
        stream = self._container.streams.video[0]
        stream.thread_count = 1
        stream.thread_type = "SLICE"

    @property
    def is_file(self) -> bool:
        """True for a local file source."""
        return self._file

    @property
    def video(self) -> av.video.stream.VideoStream:
        """The video stream being read."""
        if self._container is None:
            raise RuntimeError("reader is closed")
        return self._container.streams.video[0]

    @property
    def declared_fps(self) -> float | None:
        """The frame rate the stream declares (SDP, container or SPS timing), if any."""
        rate = self.video.average_rate or self.video.guessed_rate
        return float(rate) if rate else None

    def close(self) -> None:
        """Close the container; safe to call twice."""
        if self._container is not None:
            try:
                self._container.close()
            finally:
                self._container = None

    def packets(self) -> Iterator[tuple[av.Packet[Any], float]]:
        """Compressed video packets with their media time in seconds, until the stream ends.

        Media time is continuous across the loops of a local file. Files play at real time and loop when
        ``realtime_files`` is set; otherwise each file is read once, as fast as possible.
        """
        offset = 0.0
        while True:
            last = offset
            for packet, media_s in self._packets_once(offset):
                last = media_s
                yield packet, media_s
            if not (self._file and self.options.realtime_files):
                return
            offset = last + 1.0 / (self.declared_fps or _FALLBACK_FPS)
            self.close()
            self.open()

    def _packets_once(self, offset: float) -> Iterator[tuple[av.Packet[Any], float]]:
        pace = self._file and self.options.realtime_files
        stream = self.video
        container = self._container
        assert container is not None
        tb = float(stream.time_base) if stream.time_base else 1.0 / 90_000
        step = 1.0 / (self.declared_fps or _FALLBACK_FPS)
        first_pts: int | None = None
        media = offset - step
        start_wall = time.monotonic()
        for packet in container.demux(stream):
            if packet.size == 0:
                continue  # the flush packet at EOF
            pts = packet.pts
            if pts is None:
                media += step  # RTSP's first packet can come without a timestamp
            else:
                if first_pts is None:
                    # Continue from the untimestamped packets before this one, if any.
                    first_pts = pts - round((media + step - offset) / tb)
                media = offset + (pts - first_pts) * tb
            if pace:
                delay = start_wall + (media - offset) - time.monotonic()
                if delay > 0:
                    time.sleep(delay)
            yield packet, media

    def frames(self) -> Iterator[av.VideoFrame]:
        """Every decoded frame until the stream ends (files loop when ``realtime_files`` is set).

        For offline tools; the workers decode through ``ingest.decoding.ModeController`` instead.
        """
        for packet, _ in self.packets():
            yield from packet.decode()
