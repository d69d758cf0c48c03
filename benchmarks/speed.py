"""Detection cost per camera-frame at 320x180 on one core: ours per camera and batched, the baselines, and
the idle keyframe-decode cost that the detection must stay under a tenth of. All in one run, CPU time, medians
of interleaved repetitions."""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from pathlib import Path

import av
import cv2

from benchmarks import scenes as sc
from benchmarks.baselines import FrigateAnalyzer, Mog2Analyzer
from benchmarks.table import print_table
from detectors.analyzer import AnalyzerConfig, CameraAnalyzer
from detectors.batch import BatchAnalyzer
from detectors.offline import OfflineOptions, luma_frames
from detectors.source import ChromaLumaFrame
from detectors.zones import Zone

CAMERAS = 64
WARM_FRAMES = 25  # past the analyzers' warm-up, so the timed frames run the full pipeline
TIMED_FRAMES = 60
REPEATS = 3


def _frames(path: Path, zones: tuple[Zone, ...]) -> list[ChromaLumaFrame]:
    return list(luma_frames(path, zones, OfflineOptions(detect_width=320, fps=5.0)))


def _feed(frames: list[ChromaLumaFrame], cam: int, k: int) -> ChromaLumaFrame:
    # Each camera replays the clip from its own offset, so a tick mixes quiet and busy cameras.
    f = frames[(cam * 7 + k) % len(frames)]
    return ChromaLumaFrame(f"cam{cam}", k * 0.2, f.luma_hw, f.keyframe, chroma_level=f.chroma_level)


def _per_camera(make: Callable[[int], object], frames: list[ChromaLumaFrame], cameras: int) -> Callable[[], float]:
    def run() -> float:
        analyzers = [make(c) for c in range(cameras)]
        for k in range(WARM_FRAMES):
            for c, a in enumerate(analyzers):
                a.process(_feed(frames, c, k))  # type: ignore[attr-defined]
        start = time.process_time()
        for k in range(WARM_FRAMES, WARM_FRAMES + TIMED_FRAMES):
            for c, a in enumerate(analyzers):
                a.process(_feed(frames, c, k))  # type: ignore[attr-defined]
        return (time.process_time() - start) / (cameras * TIMED_FRAMES) * 1e6

    return run


def _batched(
    config: AnalyzerConfig, zones: tuple[Zone, ...], frames: list[ChromaLumaFrame], batch: int
) -> Callable[[], float]:
    def run() -> float:
        shape = frames[0].luma_hw.shape
        groups = [
            BatchAnalyzer([(f"cam{c}", zones) for c in range(g, min(CAMERAS, g + batch))], config, (shape[0], shape[1]))
            for g in range(0, CAMERAS, batch)
        ]

        def tick(k: int) -> None:
            for gi, group in enumerate(groups):
                base = gi * batch
                group.process([_feed(frames, base + c, k) for c in range(len(group.analyzers))])

        for k in range(WARM_FRAMES):
            tick(k)
        start = time.process_time()
        for k in range(WARM_FRAMES, WARM_FRAMES + TIMED_FRAMES):
            tick(k)
        return (time.process_time() - start) / (CAMERAS * TIMED_FRAMES) * 1e6

    return run


def _keyframe_decode_us(path: Path) -> tuple[float, float]:
    """CPU µs per decoded keyframe (skip_frame NONKEY, one thread) and per frame when decoding all."""

    def decode(keyframes_only: bool) -> float:
        with av.open(str(path)) as container:
            stream = container.streams.video[0]
            stream.thread_type = "SLICE"
            stream.thread_count = 1
            if keyframes_only:
                stream.codec_context.skip_frame = "NONKEY"
            start = time.process_time()
            n = sum(1 for _ in container.decode(stream))
            return (time.process_time() - start) / max(1, n) * 1e6

    key = statistics.median(decode(True) for _ in range(REPEATS))
    full = statistics.median(decode(False) for _ in range(REPEATS))
    return key, full


def speed_tables() -> None:
    """Measure and print the speed table."""
    cv2.setNumThreads(1)
    scene = next(s for s in sc.all_scenes() if s.name == "people-day-0")
    path = sc.clip(scene)
    zones = scene.zones
    frames = _frames(path, zones)
    config = AnalyzerConfig()
    candidates: dict[str, Callable[[], float]] = {
        "ours, per camera (CameraAnalyzer loop)": _per_camera(
            lambda c: CameraAnalyzer(f"cam{c}", zones, config, clock_offset_s=None), frames, CAMERAS
        ),
        "ours, batched by 8": _batched(config, zones, frames, 8),
        "ours, batched by 64": _batched(config, zones, frames, 64),
        "Frigate defaults, per camera": _per_camera(
            lambda c: FrigateAnalyzer(f"cam{c}", zones, config.events), frames, CAMERAS
        ),
        "MOG2 defaults, per camera": _per_camera(lambda c: Mog2Analyzer(f"cam{c}", zones, config.events), frames, 16),
    }
    samples: dict[str, list[float]] = {name: [] for name in candidates}
    for _ in range(REPEATS):  # interleaved: machine noise hits every candidate alike
        for name, run in candidates.items():
            samples[name].append(run())
    key_us, full_us = _keyframe_decode_us(path)
    ours = statistics.median(samples["ours, per camera (CameraAnalyzer loop)"])
    rows: list[list[object]] = []
    for name, values in samples.items():
        med = statistics.median(values)
        rows.append(
            [
                name,
                f"{med:.0f}",
                f"[{min(values):.0f}-{max(values):.0f}]",
                f"{med / ours:.2f}",
                f"{100 * med / key_us:.1f} %",
            ]
        )
    rows.append(["decode one keyframe, 640x360 (idle mode)", f"{key_us:.0f}", "-", f"{key_us / ours:.1f}", "100 %"])
    rows.append(["decode every frame, 640x360, per frame", f"{full_us:.0f}", "-", f"{full_us / ours:.1f}", "-"])
    print_table(
        f"Detection cost per camera-frame, 320x180 input, one core ({CAMERAS} cameras, {TIMED_FRAMES} frames each, "
        f"median of {REPEATS} interleaved runs)",
        ["what", "µs/frame", "range", "x ours per camera", "of keyframe decode"],
        rows,
    )
