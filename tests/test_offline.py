"""`detectors.offline` on real H.264: the walker is found in its zone, the quiet clip stays quiet."""

from __future__ import annotations

import itertools
from pathlib import Path

import av
import pytest

from detectors.analyzer import AnalyzerConfig
from detectors.events import EventPhase, EventType
from detectors.offline import OfflineOptions, detect_file, ended, event_record, luma_frames
from detectors.zones import Zone, ZoneKind

MIDDLE = Zone(name="middle", polygon=((0.05, 0.35), (0.95, 0.35), (0.95, 0.9), (0.05, 0.9)))
TOP = Zone(name="top", polygon=((0.0, 0.0), (1.0, 0.0), (1.0, 0.2), (0.0, 0.2)))
CONFIG = AnalyzerConfig()


@pytest.mark.parametrize("keyframes_only", [False, True], ids=["every-frame", "keyframes-only"])
def test_walker_found_in_its_zone_only(walker_h264: Path, keyframes_only: bool) -> None:
    events = list(ended(detect_file(walker_h264, (MIDDLE, TOP), CONFIG, OfflineOptions(keyframes_only=keyframes_only))))
    assert [(e.type, e.zone) for e in events] == [(EventType.MOTION, "middle")]
    (e,) = events
    assert 4.0 <= e.start_s <= 6.0 and 7.5 <= (e.end_s or 0) <= 9.5  # the walker crosses from 4 s to 9 s
    record = event_record(e)
    assert set(record) == {"type", "zone", "start_s", "end_s", "peak_fraction", "bbox"}
    x0, y0, x1, y1 = record["bbox"]  # type: ignore[misc]
    assert 0 <= x0 < x1 <= 1 and 0.3 <= y0 < y1 <= 0.9


def test_quiet_clip_raises_nothing(quiet_h264: Path) -> None:
    assert list(detect_file(quiet_h264, (MIDDLE,), CONFIG, OfflineOptions())) == []


@pytest.mark.parametrize(
    ("fps", "keyframes_only", "low", "high"), [(5.0, False, 55, 62), (None, False, 295, 301), (5.0, True, 11, 13)]
)
def test_pacing_and_media_time(walker_h264: Path, fps: float | None, keyframes_only: bool, low: int, high: int) -> None:
    frames = list(luma_frames(walker_h264, (MIDDLE,), OfflineOptions(fps=fps, keyframes_only=keyframes_only)))
    assert low <= len(frames) <= high
    assert frames[0].t_s == 0.0 and frames[-1].t_s <= 12.0
    assert all(b.t_s > a.t_s for a, b in itertools.pairwise(frames))
    assert frames[0].luma_hw.shape == (180, 320)


def test_privacy_zone_is_black_before_detection(walker_h264: Path) -> None:
    privacy = Zone(name="p", kind=ZoneKind.PRIVACY, polygon=((0.0, 0.3), (1.0, 0.3), (1.0, 1.0), (0.0, 1.0)))
    frames = list(luma_frames(walker_h264, (MIDDLE, privacy), OfflineOptions(fps=1.0)))
    assert all((f.luma_hw[60:, :] == 0).all() for f in frames)
    # With the walker's whole path masked, nothing can be detected.
    assert list(detect_file(walker_h264, (MIDDLE, privacy), CONFIG, OfflineOptions())) == []


def test_unreadable_file_raises_ffmpeg_error(tmp_path: Path) -> None:
    bad = tmp_path / "bad.mp4"
    bad.write_bytes(b"not a video at all" * 100)
    with pytest.raises(av.FFmpegError):
        list(luma_frames(bad, (MIDDLE,), OfflineOptions()))


def test_every_start_has_an_end(walker_h264: Path) -> None:
    events = list(detect_file(walker_h264, (MIDDLE,), CONFIG, OfflineOptions()))
    assert [e.phase for e in events if e.phase is not EventPhase.UPDATE] == [EventPhase.START, EventPhase.END]
