"""Clips and checks for the main-stream snapshot tests: one scene as a 1280x720 main stream and a 640x360
detection stream, as a camera sends them, and a decoder for the JPEGs the sink stores."""

from __future__ import annotations

from pathlib import Path

import av
import cv2
import numpy as np
import numpy.typing as npt

from detectors.zones import Zone, ZoneKind
from ingest.synthetic import SceneSpec, write_clip

# One second at 25 fps with a keyframe each second: the RTSP server loops it, so a keyframe comes every second.
# Short, because encoding 720p costs about 2 s per second of clip (done once, then cached).
MAIN_SCENE = SceneSpec(width=1280, height=720, fps=25, duration_s=1.0, noise_sigma=2.0, seed=21)
DETECTION_SCENE = SceneSpec(width=640, height=360, fps=25, duration_s=1.0, noise_sigma=2.0, seed=21)
# The top-left quarter (a neighbour's window) is private; everything else detects.
PRIVACY = Zone(name="window", kind=ZoneKind.PRIVACY, polygon=((0.0, 0.0), (0.25, 0.0), (0.25, 0.25), (0.0, 0.25)))
STREET = Zone(name="crosswalk", polygon=((0.3, 0.3), (1.0, 0.3), (1.0, 1.0), (0.3, 1.0)))


def main_clip(clip_dir: Path) -> Path:
    """Raw H.264, 1280x720 (the main stream), cached across runs."""
    path = clip_dir / "mainstream-720p-v1.h264"
    if not path.is_file():
        write_clip(MAIN_SCENE, path, keyint=25, bitrate_kbps=1500, container="h264")
    return path


def detection_clip(clip_dir: Path) -> Path:
    """Raw H.264, 640x360 (the detection stream) of the same scene, cached across runs."""
    path = clip_dir / "mainstream-360p-v1.h264"
    if not path.is_file():
        write_clip(DETECTION_SCENE, path, keyint=25, bitrate_kbps=400, container="h264")
    return path


def first_frame(clip: Path) -> av.VideoFrame:
    """The first decoded frame of ``clip`` (what a camera thread hands the sink on an event's start)."""
    with av.open(str(clip)) as container:
        return next(container.decode(video=0))


def decode_jpeg(jpeg: bytes) -> npt.NDArray[np.uint8]:
    """A stored snapshot as a BGR array."""
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None, "not a JPEG"
    return np.asarray(image, dtype=np.uint8)
