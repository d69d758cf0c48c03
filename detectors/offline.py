"""The workers' detectors over a video file: decode with PyAV, the same frame preparation and the same
:class:`CameraAnalyzer`, with media time (seconds from the first frame) as the clock."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import av

from detectors.analyzer import AnalyzerConfig, CameraAnalyzer
from detectors.events import Event, EventPhase
from detectors.source import ChromaLumaFrame, luma_frame
from detectors.zones import Zone
from ingest.reader import detect_size

OFFLINE_CAMERA = "offline"


@dataclass(frozen=True, slots=True)
class OfflineOptions:
    """How a file is read: detection width, analysis rate (None = every decoded frame), keyframes only."""

    detect_width: int = 320
    fps: float | None = 5.0
    keyframes_only: bool = False
    # Unix time of the file's first frame, for zone arming schedules; None ignores schedules.
    start_unix_s: float | None = None

    def __post_init__(self) -> None:
        if self.fps is not None and not self.fps > 0:
            raise ValueError(f"fps must be > 0, got {self.fps!r}")
        if self.detect_width < 16:
            raise ValueError(f"detect_width must be >= 16, got {self.detect_width!r}")


def luma_frames(
    path: Path,
    zones: tuple[Zone, ...],
    options: OfflineOptions,
    camera_id: str = OFFLINE_CAMERA,
    progress: Callable[[float, float], None] | None = None,
) -> Iterator[ChromaLumaFrame]:
    """Decode ``path`` and yield its analysed frames, paced like a worker paces a live camera.

    Raises ``av.FFmpegError`` when the file cannot be opened or decoded, ``ValueError`` without video.
    """
    with av.open(str(path)) as container:
        if not container.streams.video:
            raise ValueError(f"{path}: no video stream")
        stream = container.streams.video[0]
        # Same decoder set-up as a worker's reader: one thread, no frame threading.
        stream.thread_type = "SLICE"
        stream.thread_count = 1
        if options.keyframes_only:
            stream.codec_context.skip_frame = "NONKEY"
        duration = float(stream.duration * stream.time_base) if stream.duration and stream.time_base else 0.0
        interval = 1.0 / options.fps if options.fps else 0.0
        origin: float | None = None
        next_analysis = 0.0
        source: tuple[int, int] | None = None
        size = (0, 0)
        index = 0
        rate = float(stream.average_rate) if stream.average_rate else 25.0
        for packet in container.demux(stream):
            # One packet per frame (cameras send one slice per frame): the index times raw streams without pts,
            # and still counts the frames that skip_frame drops. The empty packet at EOF flushes the decoder.
            index += packet.size > 0
            for frame in packet.decode():
                raw_t = frame.time if frame.time is not None else (index - 1) / rate
                if origin is None:
                    origin = raw_t
                t = raw_t - origin
                if progress is not None:
                    progress(t, duration)
                if t < next_analysis:
                    continue
                next_analysis = max(next_analysis + interval, t - interval)
                if source != (frame.width, frame.height):  # first frame, or the resolution changed
                    source = (frame.width, frame.height)
                    size = detect_size(frame.width, frame.height, options.detect_width)
                yield luma_frame(frame, camera_id, t, size, zones)


def detect_file(
    path: Path,
    zones: tuple[Zone, ...],
    config: AnalyzerConfig,
    options: OfflineOptions,
    progress: Callable[[float, float], None] | None = None,
) -> Iterator[Event]:
    """Every lifecycle message the workers' analyzer produces on ``path``; open events end at the last frame."""
    analyzer = CameraAnalyzer(OFFLINE_CAMERA, zones, config, clock_offset_s=options.start_unix_s)
    last_t = 0.0
    for frame in luma_frames(path, zones, options, OFFLINE_CAMERA, progress):
        last_t = frame.t_s
        yield from analyzer.process(frame).events
    yield from analyzer.flush(last_t)


def event_record(event: Event) -> dict[str, object]:
    """The JSON object `sharpeyes detect` prints for an ended event."""
    return {
        "type": event.type.value,
        "zone": event.zone,
        "start_s": round(event.start_s, 3),
        "end_s": round(event.end_s if event.end_s is not None else event.t_s, 3),
        "peak_fraction": round(event.peak_fraction, 4),
        "bbox": [round(v, 4) for v in event.bbox] if event.bbox is not None else None,
    }


def ended(events: Iterator[Event]) -> Iterator[Event]:
    """Only the END message of each event: one line per event, final peak and box included."""
    return (e for e in events if e.phase is EventPhase.END)
