"""Why the detectors cost more inside the engine than in a tight loop (table 1b of bench_ingest).

Inside the engine a camera's detectors run once per keyframe, after a keyframe decode; in a tight loop they
run again within microseconds of their last run. On this machine (a 2-vCPU virtual machine) the difference is
not what the decoder evicts: after an idle spin of a few milliseconds that touches almost no memory, the same
analysis costs about as much more as after a decode. Code that has not run for a few milliseconds runs cold,
whatever ran in between, and a frame's analysis is about a hundred short OpenCV calls through some forty
distinct functions, so it pays that warm-up on every frame. This table measures it on the engine's own frames.
"""

from __future__ import annotations

import statistics
import time
from pathlib import Path

from detectors.analyzer import AnalyzerConfig, CameraAnalyzer
from detectors.source import ChromaLumaFrame, luma_frame
from detectors.zones import Zone
from ingest.decoding import Decoders, DecoderSettings
from ingest.reader import ReaderOptions, StreamReader, detect_size

# Idle spins before an analysis, in seconds: from well within to well beyond the time it takes to go cold.
SPINS_S = (0.0003, 0.001, 0.004)


def _spin(seconds: float) -> None:
    """Busy-wait: the CPU stays on this thread and touches almost no memory (unlike a decode)."""
    end = time.perf_counter() + seconds
    while time.perf_counter() < end:
        pass


def _timed(analyzer: CameraAnalyzer, frame: ChromaLumaFrame) -> float:
    start = time.perf_counter()
    analyzer.process(frame)
    return time.perf_counter() - start


def detector_warmth(path: Path, zones: tuple[Zone, ...], detect_width: int, passes: int) -> list[list[object]]:
    """Rows of table 1b: one camera's analysis of each keyframe of ``path``, warm, after idle spins, and after
    the keyframe's decode (as in the engine). Every condition has its own analyzer fed the same frames in the
    same order, so each does the same work; the figures are medians over ``passes`` readings of the clip."""
    conditions = ["warm", *(f"after a {s * 1000:g} ms idle spin" for s in SPINS_S), "after the keyframe's decode"]
    analyzers = {c: CameraAnalyzer("warmth", zones, AnalyzerConfig()) for c in conditions}
    shadow = CameraAnalyzer("warmth", zones, AnalyzerConfig())  # runs just before "warm", on the same frame
    samples: dict[str, list[float]] = {c: [] for c in conditions}
    offset = 0.0
    for _ in range(passes):
        with StreamReader(str(path), ReaderOptions(realtime_files=False)) as reader:
            decoders = Decoders(reader.video, DecoderSettings())
            last = 0.0
            for packet, media_s in reader.packets():
                last = media_s
                if not packet.is_keyframe:
                    continue
                decoded = decoders.decode_idle(packet)
                if not decoded:
                    continue
                av_frame = decoded[-1]
                size = detect_size(av_frame.width, av_frame.height, detect_width)
                frame = luma_frame(av_frame, "warmth", media_s + offset, size, zones)
                samples["after the keyframe's decode"].append(_timed(analyzers["after the keyframe's decode"], frame))
                for seconds, name in zip(SPINS_S, conditions[1:-1], strict=True):
                    _spin(seconds)
                    samples[name].append(_timed(analyzers[name], frame))
                shadow.process(frame)
                samples["warm"].append(_timed(analyzers["warm"], frame))
            offset += last + 1.0
    warm = statistics.median(samples["warm"])
    rows: list[list[object]] = []
    for name in conditions:
        med = statistics.median(samples[name])
        rows.append([name, med * 1e6, med / warm])
    return rows
