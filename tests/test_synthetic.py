"""Synthetic clips: deterministic rendering, ground truth, and camera-like H.264 encoding."""

from __future__ import annotations

import dataclasses
import json
import re
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest
from av.video.frame import PictureType

from ingest import synthetic
from ingest.synthetic import (
    MovingObject,
    SceneSpec,
    StandardClip,
    encode_h264,
    motion_windows,
    render_frames,
    standard_clip,
    standard_recipe,
    write_clip,
)

SMALL = SceneSpec(width=192, height=108, fps=25, duration_s=2.0, noise_sigma=2.5, seed=3, light_drift=4.0)
CROSSER = MovingObject(0.4, 1.6, 0.1, 0.5, 0.9, 0.5, 0.08, 0.3, -50.0)


@pytest.fixture(scope="module")
def walker_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return standard_clip("walker", tmp_path_factory.mktemp("clips") / "walker.mp4")


def _nal_types_annexb(data: bytes) -> list[int]:
    return [data[m.end()] & 0x1F for m in re.finditer(b"\x00\x00\x01", data) if m.end() < len(data)]


def _nal_types_avcc(data: bytes) -> list[int]:
    types, pos = [], 0
    while pos + 4 < len(data):
        size = int.from_bytes(data[pos : pos + 4], "big")
        types.append(data[pos + 4] & 0x1F)
        pos += 4 + size
    return types


def _analyse(path: Path) -> dict[str, object]:
    """Decode a clip and collect what a camera-likeness check needs."""
    keyframes, pict_types, slices_per_frame, reordered = [], set(), set(), False
    raw = path.suffix == ".h264"
    count = 0
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        info: dict[str, object] = {
            "width": stream.codec_context.width,
            "height": stream.codec_context.height,
            "pix_fmt": stream.codec_context.pix_fmt,
            "profile": stream.codec_context.profile,
            "has_b_frames": stream.codec_context.has_b_frames,
        }
        for packet in container.demux(stream):
            if packet.size == 0:
                continue
            data = bytes(packet)
            nals = _nal_types_annexb(data) if raw else _nal_types_avcc(data)
            slices_per_frame.add(sum(1 for t in nals if t in (1, 5)))
            if raw and 5 in nals:
                # The loop in the RTSP server needs the parameter sets in band before every IDR.
                assert 7 in nals and 8 in nals, f"IDR without SPS/PPS at packet {count}"
            if not raw and packet.pts is not None and packet.dts is not None and packet.pts != packet.dts:
                reordered = True
            for frame in packet.decode():
                if frame.key_frame:
                    keyframes.append(count)
                pict_types.add(PictureType(frame.pict_type).name)
                count += 1
        for frame in stream.decode(None):
            pict_types.add(PictureType(frame.pict_type).name)
            count += 1
    info.update(
        count=count,
        keyframes=keyframes,
        pict_types=pict_types,
        slices=slices_per_frame,
        reordered=reordered,
    )
    return info


def test_render_is_deterministic_textured_and_noisy() -> None:
    spec = dataclasses.replace(SMALL, objects=(CROSSER,))
    a = list(render_frames(spec))
    b = list(render_frames(spec))
    assert len(a) == spec.frame_count == 50
    assert all(x.shape == (108, 192, 3) and x.dtype == np.uint8 for x in a)
    assert all(np.array_equal(x, y) for x, y in zip(a, b, strict=True))
    other = next(render_frames(dataclasses.replace(spec, seed=4)))
    assert not np.array_equal(a[0], other)
    gray = cv2.cvtColor(a[0], cv2.COLOR_BGR2GRAY)
    # Textured, not flat: strong local gradients across the frame.
    assert float(np.abs(np.diff(gray.astype(np.int16), axis=1)).mean()) > 3.0
    # Fresh sensor noise each frame: consecutive quiet frames differ by about sigma*sqrt(2).
    diff = a[1].astype(np.int16) - a[0].astype(np.int16)
    assert 2.0 < float(diff.std()) < 5.0


def test_objects_appear_exactly_in_their_windows() -> None:
    quiet = list(render_frames(SMALL))
    busy = list(render_frames(dataclasses.replace(SMALL, objects=(CROSSER,))))
    for i, (q, b) in enumerate(zip(quiet, busy, strict=True)):
        t = i / SMALL.fps
        changed = np.argwhere(np.any(q != b, axis=2))
        if not CROSSER.active_at(t):
            # Objects draw no random numbers, so the rest of the clip is identical to the quiet scene.
            assert changed.size == 0, t
            continue
        cx, cy = CROSSER.centre_at(t)
        ys, xs = changed[:, 0], changed[:, 1]
        assert abs(xs.mean() / SMALL.width - cx) < 0.03, t
        assert abs(ys.mean() / SMALL.height - cy) < 0.05, t
        assert (xs.max() - xs.min() + 1) <= round(CROSSER.w * SMALL.width) + 1
        # Textured object, not a flat patch.
        patch = b[ys.min() : ys.max() + 1, xs.min() : xs.max() + 1].astype(np.float32)
        assert float(patch.std()) > 5.0


def test_motion_windows() -> None:
    assert motion_windows(standard_recipe("walker").scene) == [(4.0, 9.0)]
    assert motion_windows(standard_recipe("quiet").scene) == []
    # Entering and leaving through the frame edges: visible while the box overlaps the frame.
    enter = MovingObject(0.0, 10.0, -0.2, 0.5, 1.2, 0.5, 0.1, 0.2)
    spec = dataclasses.replace(SMALL, duration_s=20.0, objects=(enter,))
    [(lo, hi)] = motion_windows(spec)
    assert lo == pytest.approx((0.15 / 1.4) * 10) and hi == pytest.approx((1.25 / 1.4) * 10)
    # Overlapping objects merge; one fully outside the frame never counts; clipped to the duration.
    a = MovingObject(1.0, 3.0, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1)
    b = MovingObject(2.0, 4.0, 0.2, 0.2, 0.8, 0.8, 0.1, 0.1)
    gone = MovingObject(5.0, 6.0, 1.5, 0.5, 1.6, 0.5, 0.1, 0.1)
    late = MovingObject(18.0, 30.0, 0.5, 0.5, 0.5, 0.5, 0.1, 0.1)
    assert motion_windows(dataclasses.replace(spec, objects=(late, gone, b, a))) == [(1.0, 4.0), (18.0, 20.0)]


def test_render_speed_640x360() -> None:
    spec = standard_recipe("busy").scene
    frames = render_frames(dataclasses.replace(spec, duration_s=4.0))
    start = time.perf_counter()
    n = sum(1 for _ in frames)
    fps = n / (time.perf_counter() - start)
    # ~380 fps measured on the 2-core dev VM; the floor leaves room for a busy CI machine.
    assert fps > 100, f"{fps:.0f} fps"


@pytest.mark.parametrize("container", ["mp4", "h264"])
def test_encode_is_camera_like(tmp_path: Path, container: str) -> None:
    spec = dataclasses.replace(SMALL, objects=(CROSSER,))
    path = tmp_path / f"clip.{container}"
    n = encode_h264(render_frames(spec), path, 192, 108, 25, 10, 300, container)  # type: ignore[arg-type]
    assert n == 50
    info = _analyse(path)
    assert info["count"] == 50
    assert (info["width"], info["height"], info["pix_fmt"]) == (192, 108, "yuv420p")
    assert info["keyframes"] == list(range(0, 50, 10))
    assert info["pict_types"] <= {"I", "P"}  # type: ignore[operator]
    assert info["slices"] == {1}
    assert info["profile"] == "Main"
    assert not info["has_b_frames"]
    assert not info["reordered"]
    if container == "h264":
        assert path.read_bytes()[:4] == b"\x00\x00\x00\x01"


def test_walker_clip_matches_ground_truth(walker_mp4: Path) -> None:
    recipe = standard_recipe("walker")
    info = _analyse(walker_mp4)
    assert info["count"] == 300
    assert info["keyframes"] == list(range(0, 300, 25))
    kbps = walker_mp4.stat().st_size * 8 / 1000 / recipe.scene.duration_s
    assert 450 < kbps < 750, kbps
    # Frame differencing on the decoded luma sees motion exactly inside the ground-truth window.
    [(lo, hi)] = motion_windows(recipe.scene)
    prev = None
    with av.open(str(walker_mp4)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            luma = frame.to_ndarray(format="gray", threads=1)
            if prev is not None:
                moving = int((cv2.absdiff(luma, prev) > 25).sum())
                t = i / recipe.scene.fps
                if lo + 0.1 < t < hi - 0.1:
                    assert moving > 200, (t, moving)
                elif t < lo - 0.05 or t > hi + 0.1:
                    assert moving < 20, (t, moving)
            prev = luma


def test_standard_clip_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A tiny recipe keeps the three encodes below fast; the cache logic is the same for every kind.
    monkeypatch.setitem(synthetic._STANDARD, "quiet", StandardClip(SMALL, keyint=25, bitrate_kbps=200))
    target = tmp_path / "quiet.h264"
    path = standard_clip("quiet", target)
    sidecar = tmp_path / "quiet.h264.json"
    assert path == target and sidecar.is_file()
    mtime = path.stat().st_mtime_ns
    assert standard_clip("quiet", target) == target
    assert path.stat().st_mtime_ns == mtime, "re-encoded although the spec did not change"
    sidecar.write_text(json.dumps({"hash": "stale"}))
    standard_clip("quiet", target)
    assert json.loads(sidecar.read_text())["hash"] != "stale"
    # Directory mode: the hash is in the name.
    in_dir = standard_clip("quiet", tmp_path)
    assert re.fullmatch(r"quiet-[0-9a-f]{12}\.mp4", in_dir.name)
    assert standard_clip("quiet", tmp_path) == in_dir
    assert not list(tmp_path.glob(".*.tmp")), "temporary file left behind"
    with pytest.raises(ValueError, match="unknown clip kind"):
        standard_clip("nope", tmp_path)


def test_write_clip_roundtrip(tmp_path: Path) -> None:
    path = write_clip(SMALL, tmp_path / "sub" / "small.mp4", keyint=25, bitrate_kbps=200)
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.average_rate == 25
        assert sum(1 for _ in container.decode(stream)) == SMALL.frame_count


def test_demo_vtest_excerpt_is_camera_like() -> None:
    path = Path(__file__).resolve().parent.parent / "demo" / "vtest-excerpt.mp4"
    if not path.is_file():
        pytest.skip("demo/vtest-excerpt.mp4 not built (python -m demo.make_vtest_excerpt)")
    assert path.stat().st_size < 4 * 1024 * 1024
    info = _analyse(path)
    assert (info["width"], info["height"], info["count"]) == (768, 576, 300)
    assert info["keyframes"] == list(range(0, 300, 10))
    assert info["pict_types"] <= {"I", "P"}  # type: ignore[operator]
    assert info["slices"] == {1} and not info["has_b_frames"] and not info["reordered"]
