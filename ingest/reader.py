"""Stream reader: PyAV over RTSP/TCP (or a looped local file), yielding decoded frames, luma only.

PyAV caveats this module is built around (see ``../shared/docs/decode-costs.md``):
- one decoder thread per camera: frame threading costs 13-45 % more CPU for the same frames;
- the Y plane is read as a view of the decoded frame, never through swscale or RGB;
- a killed server ends the demuxer with a plain EOF, not an exception: the caller treats it as a drop.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from dataclasses import dataclass
from types import TracebackType
from typing import cast
from urllib.parse import urlsplit

import av
import av.container
import av.video
import cv2
import numpy as np

from ingest.frames import Luma

# Formats whose first plane is the 8-bit luma plane; anything else goes through swscale (rare on cameras).
_Y_FIRST = frozenset({"yuv420p", "yuvj420p", "yuv422p", "yuvj422p", "yuv444p", "yuvj444p", "nv12", "nv21", "gray"})
# 0.5 s of probing finds the SPS/PPS of a camera sending one keyframe a second or more; the 5 s default
# makes every (re)connect five times slower for nothing.
_ANALYZE_US = "500000"


@dataclass(frozen=True, slots=True)
class ReaderOptions:
    """How to open and pace a stream."""

    open_timeout_s: float = 5.0
    read_timeout_s: float = 5.0
    # Local files play in real time and loop, so that they behave like a camera.
    realtime_files: bool = True


def is_file_url(url: str) -> bool:
    """True for ``file://`` URLs and plain paths."""
    return urlsplit(url).scheme in ("file", "")


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


def downscale(luma_hw: Luma, width: int, height: int) -> Luma:
    """Resize luma to ``(height, width)``; INTER_AREA only for an exact 2x, where it is as cheap as LINEAR."""
    src_h, src_w = luma_hw.shape
    if (src_w, src_h) == (width, height):
        return np.ascontiguousarray(luma_hw)
    exact_half = src_w == 2 * width and src_h == 2 * height
    interp = cv2.INTER_AREA if exact_half else cv2.INTER_LINEAR
    return cast(Luma, cv2.resize(luma_hw, (width, height), interpolation=interp))


class StreamReader:
    """One camera's stream. Use as a context manager: the container is always closed."""

    def __init__(self, url: str, options: ReaderOptions) -> None:
        self.url = url
        self.options = options
        self._file = is_file_url(url)
        self._container: av.container.InputContainer | None = None
        self.packets = 0
        self.bytes = 0
        self.keyframes = 0

    def __enter__(self) -> StreamReader:
        self._open()
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()

    def _open(self) -> None:
        opts = self.options
        if self._file:
            path = urlsplit(self.url).path if self.url.startswith("file:") else self.url
            self._container = av.open(path)
        else:
            self._container = av.open(
                self.url,
                options={
                    "rtsp_transport": "tcp",
                    # FFmpeg's socket timeout, in microseconds: bounds connect and every read.
                    "timeout": str(int(opts.open_timeout_s * 1_000_000)),
                    "analyzeduration": _ANALYZE_US,
                },
                timeout=(opts.open_timeout_s, opts.read_timeout_s),
            )
        if not self._container.streams.video:
            self.close()
            raise av.error.InvalidDataError(0, "the stream has no video track", self.url)
        stream = self._container.streams.video[0]
        stream.thread_count = 1
        stream.thread_type = "SLICE"

    @property
    def video(self) -> av.video.stream.VideoStream:
        """The video stream being read."""
        if self._container is None:
            raise RuntimeError("reader is closed")
        return self._container.streams.video[0]

    def close(self) -> None:
        """Close the container; safe to call twice."""
        if self._container is not None:
            try:
                self._container.close()
            finally:
                self._container = None

    def frames(self) -> Iterator[av.VideoFrame]:
        """Decoded frames until the stream ends. Files loop forever when ``realtime_files`` is set."""
        while True:
            yield from self._frames_once()
            if not (self._file and self.options.realtime_files):
                return
            self.close()
            self._open()

    def _frames_once(self) -> Iterator[av.VideoFrame]:
        pace = self._file and self.options.realtime_files
        start_wall: float | None = None
        first_pts: float | None = None
        stream = self.video
        assert self._container is not None
        for packet in self._container.demux(stream):
            if packet.size == 0:
                continue  # the flush packet at EOF
            self.packets += 1
            self.bytes += packet.size
            if packet.is_keyframe:
                self.keyframes += 1
            for frame in packet.decode():
                if pace and frame.time is not None:
                    if start_wall is None or first_pts is None:
                        start_wall, first_pts = time.monotonic(), frame.time
                    delay = start_wall + (frame.time - first_pts) - time.monotonic()
                    if delay > 0:
                        time.sleep(delay)
                yield frame
