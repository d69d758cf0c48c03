"""Event-clip packet rings: what a camera's ring of compressed packets holds and costs in RSS, per cap.

Used by ``bench_ingest`` (table 7): the rings live in the worker, beside the readers, so their memory is part
of a camera's ingest cost.
"""

from __future__ import annotations

import multiprocessing
import resource
import statistics
import tempfile
from pathlib import Path

from alerts.clips import ClipConfig, ClipRecorders, FileClipStore
from ingest.synthetic import standard_clip

CLIP_DIR = Path(__file__).resolve().parent.parent / "var" / "test-clips"


def _rss_bytes() -> int:
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * resource.getpagesize()


def _ring_rss(cap: int, cameras: int, clip: str) -> tuple[float, float, float]:
    """In a fresh process: (max KiB held per camera, median span s, RSS growth KiB per camera)."""
    import av

    containers = [av.open(clip) for _ in range(cameras)]
    for container in containers:  # demuxers at their steady state first: only the rings should grow below
        for _packet in container.demux(video=0):
            pass
        container.seek(0)
    recorders = ClipRecorders(FileClipStore(Path(tempfile.mkdtemp())), ClipConfig(pre_s=5.0, ring_bytes=cap))
    before = _rss_bytes()
    for n, container in enumerate(containers):
        for i, packet in enumerate(container.demux(video=0)):
            if packet.size:
                recorders.push(f"cam{n}", packet, arrived=1e9 + i / 25)
    grown = _rss_bytes() - before
    held = max(recorders.ring(f"cam{n}").bytes for n in range(cameras))
    span = statistics.median(recorders.ring(f"cam{n}").span_s() for n in range(cameras))
    return held / 1024, span, grown / cameras / 1024


def ring_memory(caps: list[int], cameras: int) -> list[list[object]]:
    """Fill ``cameras`` rings from the walker clip (600 kbit/s, 640x360) per cap, each cap in a fresh process:
    rows of (cap, cameras, max KiB held per camera, median span s, RSS growth KiB per camera)."""
    clip = str(standard_clip("walker", CLIP_DIR, container="mp4"))
    ctx = multiprocessing.get_context("spawn")
    rows: list[list[object]] = []
    for cap in caps:
        with ctx.Pool(1) as pool:
            held, span, grown = pool.apply(_ring_rss, (cap, cameras, clip))
        rows.append([f"{cap / 1024:,.0f} KiB", cameras, held, span, grown])
    return rows
