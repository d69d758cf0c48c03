"""Event clips: a bytes-bounded packet ring per camera, remuxed (not re-encoded) into an MP4 on an event."""

from __future__ import annotations

import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from alerts.clips import PACKET_OVERHEAD, ClipConfig, ClipRecorders, FileClipStore, PacketRing

FPS = 25  # the walker clip: 640x360, 25 fps, a keyframe every 25 frames, 12 s
T = 1_800_000_000.0
ALERT = "ab" * 16


_OPEN: list[Any] = []


def _packets(path: Path) -> Iterator[Any]:
    """The file's packets, from a demuxer left open like a live reader's (packets name their stream)."""
    container = av.open(str(path))
    _OPEN.append(container)
    for packet in container.demux(video=0):
        if packet.size:
            yield packet


@pytest.fixture(autouse=True)
def _close_demuxers() -> Iterator[None]:
    yield
    while _OPEN:
        _OPEN.pop().close()


@pytest.fixture
def recorders(tmp_path: Path) -> Iterator[ClipRecorders]:
    rec = ClipRecorders(FileClipStore(tmp_path / "clips"), ClipConfig(pre_s=2.0, max_s=60.0, ring_bytes=1 << 20))
    yield rec
    rec.close()


def test_ring_keeps_whole_gops_within_its_byte_cap(walker_h264: Path) -> None:
    # The clip runs at ~80 kB/s, ~64 kB in a 1-s GOP: a 200 kB cap holds two to three GOPs, not keep_s.
    ring = PacketRing(max_bytes=200_000, keep_s=5.0)
    for i, packet in enumerate(_packets(walker_h264)):
        ring.push(packet, arrived=T + i / FPS)
        assert ring.bytes <= ring.max_bytes
    entries = ring.since(0)
    assert entries[0].packet.is_keyframe
    assert ring.bytes == sum(e.size + PACKET_OVERHEAD for e in entries)
    assert 1.0 <= ring.span_s() < 3.0


def test_ring_time_bound_when_bytes_allow(walker_h264: Path) -> None:
    ring = PacketRing(max_bytes=10 << 20, keep_s=2.0)
    for i, packet in enumerate(_packets(walker_h264)):
        ring.push(packet, arrived=T + i / FPS)
    # keep_s plus at most one GOP: the clip must start on a keyframe at or before the pre-roll.
    assert 2.0 <= ring.span_s() <= 3.0


def test_a_gop_bigger_than_the_cap_is_dropped_whole(walker_h264: Path) -> None:
    ring = PacketRing(max_bytes=20_000, keep_s=3.0)
    for i, packet in enumerate(_packets(walker_h264)):
        ring.push(packet, arrived=T + i / FPS)
        assert ring.bytes <= 20_000
        entries = ring.since(0)
        assert not entries or entries[0].packet.is_keyframe
    assert ring.dropped > 0


def _clip_packets(path: Path) -> list[Any]:
    with av.open(str(path)) as container:
        stream = container.streams.video[0]
        assert stream.codec_context.name == "h264" and (stream.width, stream.height) == (640, 360)
        return [p for p in container.demux(stream) if p.size]


def _luma(path: Path, count: int, skip: int = 0) -> list[np.ndarray]:
    out = []
    with av.open(str(path)) as container:
        for i, frame in enumerate(container.decode(video=0)):
            if i >= skip:
                out.append(frame.to_ndarray(format="gray"))
            if len(out) == count:
                break
    return out


def test_event_clip_has_the_pre_roll_and_the_event_without_reencoding(
    walker_h264: Path, recorders: ClipRecorders
) -> None:
    packets = list(_packets(walker_h264))
    for i, packet in enumerate(packets[:150]):  # 0 .. 6 s
        recorders.push("cam_1", packet, arrived=T + i / FPS)
    # The event started at 5.0 s; with 2 s of pre-roll the clip starts on the keyframe at 3.0 s.
    assert recorders.event_started("cam_1", ALERT, T + 5.0)
    assert recorders.store.recording(ALERT) and recorders.store.path(ALERT) is None
    for i, packet in enumerate(packets[150:225], start=150):  # until 9 s
        recorders.push("cam_1", packet, arrived=T + i / FPS)
    recorders.event_ended("cam_1", ALERT)
    recorders.drain()
    path = recorders.store.path(ALERT)
    assert path is not None and not recorders.store.recording(ALERT)
    # The reader's packets are untouched: the camera's pipeline may still decode them.
    source = packets[200]
    assert source.stream is packets[0].stream and source.pts is None and source.time_base == packets[0].time_base
    assert len(source.decode()) <= 1
    clip = _clip_packets(path)
    assert len(clip) == 225 - 75
    assert clip[0].is_keyframe
    assert abs(float(clip[-1].pts * clip[-1].time_base) - (149 / FPS)) < 1e-3  # rebased to start at 0
    # Stream copy: the clip decodes to exactly the source's pixels.
    for got, want in zip(_luma(path, 30), _luma(walker_h264, 30, skip=75), strict=True):
        assert np.array_equal(got, want)


def test_clip_stops_at_its_cap(walker_h264: Path, tmp_path: Path) -> None:
    rec = ClipRecorders(FileClipStore(tmp_path), ClipConfig(pre_s=0.0, max_s=2.0, ring_bytes=1 << 20))
    packets = list(_packets(walker_h264))
    for i, packet in enumerate(packets[:25]):
        rec.push("cam_1", packet, arrived=T + i / FPS)
    assert rec.event_started("cam_1", ALERT, T + 0.5)
    for i, packet in enumerate(packets[25:], start=25):
        rec.push("cam_1", packet, arrived=T + i / FPS)
    rec.drain()  # finished at the cap, before the event ended
    path = rec.store.path(ALERT)
    assert path is not None
    assert len(_clip_packets(path)) == 2 * FPS
    rec.event_ended("cam_1", ALERT)  # nothing left to do
    rec.close()


def test_a_reconnect_finishes_the_running_clip(walker_h264: Path, recorders: ClipRecorders) -> None:
    for i, packet in enumerate(_packets(walker_h264)):
        if i == 60:
            break
        recorders.push("cam_1", packet, arrived=T + i / FPS)
    assert recorders.event_started("cam_1", ALERT, T + 2.0)
    second = _packets(walker_h264)  # the camera's stream reopened: a new stream object
    recorders.push("cam_1", next(second), arrived=T + 10)
    recorders.drain()
    assert recorders.store.path(ALERT) is not None


def test_no_clip_without_packets(recorders: ClipRecorders) -> None:
    assert not recorders.event_started("cam_unwired", ALERT, T)
    recorders.event_ended("cam_unwired", ALERT)


def test_memory_is_bounded_per_camera(walker_h264: Path, tmp_path: Path) -> None:
    cap = 100_000
    rec = ClipRecorders(FileClipStore(tmp_path), ClipConfig(pre_s=5.0, ring_bytes=cap))
    for cam in range(3):
        for i, packet in enumerate(_packets(walker_h264)):
            rec.push(f"cam_{cam}", packet, arrived=T + i / FPS)
    assert 0 < rec.memory_bytes() <= 3 * cap
    rec.close()
    assert rec.memory_bytes() == 0


def test_store_retention(tmp_path: Path) -> None:
    store = FileClipStore(tmp_path)
    src = tmp_path / "x.mp4"
    src.write_bytes(b"mp4")
    store.put_file(ALERT, src)
    path = store.path(ALERT)
    assert path is not None
    past = time.time() - 31 * 86400
    os.utime(path, (past, past))
    assert store.purge(30 * 86400) == 1
    assert store.path(ALERT) is None
    with pytest.raises(ValueError, match="not a hex id"):
        store.path("../x")
