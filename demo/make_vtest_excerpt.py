"""Transcode an excerpt of OpenCV's vtest.avi to camera-like H.264 for the demo and tests.

Run from the repository root::

    python -m demo.make_vtest_excerpt                      # demo/vtest-excerpt.mp4 (committed)
    python -m demo.make_vtest_excerpt --format h264 --out var/vtest-excerpt.h264   # RTSP server

The output keeps 768x576 at 10 fps: an IDR every 10 frames (1 s), one slice per frame, no B-frames,
~800 kbit/s ABR with a VBV, yuv420p. The raw Annex-B version is for GStreamer's multifilesrc loop
and is not committed; make it on demand. See demo/ATTRIBUTION.md for the source and its license.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Iterator
from pathlib import Path

import av
import numpy as np
import numpy.typing as npt

from ingest.synthetic import encode_h264

DEFAULT_SOURCE = Path("/work/shared/data/vtest.avi")
DEMO_DIR = Path(__file__).resolve().parent
MAX_BYTES = 4 * 1024 * 1024


def source_frames(source: Path, start: int, count: int) -> Iterator[npt.NDArray[np.uint8]]:
    """Yield ``count`` BGR frames of ``source`` starting at frame index ``start``."""
    with av.open(str(source)) as container:
        stream = container.streams.video[0]
        stream.thread_type = "NONE"
        index = 0
        for frame in container.decode(stream):
            if index >= start + count:
                break
            if index >= start:
                # threads=1: swscale's default pool spawns dozens of threads for no gain here.
                yield np.asarray(frame.to_ndarray(format="bgr24", threads=1), dtype=np.uint8)
            index += 1
        if index < start + count:
            raise ValueError(f"{source} has only {index} frames, asked for {start}..{start + count}")


def main(argv: list[str] | None = None) -> int:
    """Write the excerpt; return the process exit code."""
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--source", type=Path, default=DEFAULT_SOURCE)
    parser.add_argument("--format", choices=("mp4", "h264"), default="mp4")
    parser.add_argument("--out", type=Path, help="default: demo/vtest-excerpt.<format>")
    parser.add_argument("--start", type=int, default=0, help="first source frame")
    parser.add_argument("--frames", type=int, default=300, help="30 s at the source's 10 fps")
    parser.add_argument("--keyint", type=int, default=10)
    parser.add_argument("--bitrate-kbps", type=int, default=800)
    args = parser.parse_args(argv)

    out: Path = args.out or DEMO_DIR / f"vtest-excerpt.{args.format}"
    with av.open(str(args.source)) as probe:
        stream = probe.streams.video[0]
        width, height = stream.codec_context.width, stream.codec_context.height
        fps = stream.average_rate
    if fps is None:
        raise SystemExit(f"{args.source}: unknown frame rate")
    out.parent.mkdir(parents=True, exist_ok=True)
    # Encode beside the target and rename, so an interrupted run never leaves a truncated clip.
    tmp = out.with_name(out.name + ".tmp")
    n = encode_h264(
        source_frames(args.source, args.start, args.frames),
        tmp,
        width,
        height,
        fps,
        args.keyint,
        args.bitrate_kbps,
        args.format,
    )
    tmp.replace(out)
    size = out.stat().st_size
    print(f"{out}: {n} frames {width}x{height} @ {fps} fps, {size / 1e6:.2f} MB")
    if args.format == "mp4" and size > MAX_BYTES:
        print(f"warning: larger than {MAX_BYTES} bytes; lower --bitrate-kbps", file=sys.stderr)
        return 1
    return 0


if __name__ == "__main__":
    sys.exit(main())
