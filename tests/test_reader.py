"""The stream reader: packets with media time, looped real-time files, credentials, luma helpers."""

from __future__ import annotations

import time
from pathlib import Path

import av
import numpy as np
import pytest

from ingest.reader import (
    ReaderOptions,
    StreamReader,
    detect_size,
    downscale,
    file_path,
    luma_view,
    with_credentials,
)
from ingest.synthetic import SceneSpec, write_clip
from tests.peers import RtspServer


@pytest.fixture(scope="module")
def one_second_mp4(tmp_path_factory: pytest.TempPathFactory) -> Path:
    path = tmp_path_factory.mktemp("clips") / "one second.mp4"
    return write_clip(SceneSpec(width=160, height=90, fps=25, duration_s=1.0, seed=3), path, keyint=25)


def test_a_file_is_read_once_as_fast_as_possible_when_not_real_time(walker_h264: Path) -> None:
    with StreamReader(str(walker_h264), ReaderOptions(realtime_files=False)) as reader:
        assert reader.declared_fps == 25.0 and reader.is_file
        items = list(reader.packets())
    assert len(items) == 300
    times = [t for _, t in items]
    assert times[0] == 0.0 and times[-1] == pytest.approx(11.96)
    assert sum(p.is_keyframe for p, _ in items) == 12


def test_real_time_files_loop_with_continuous_media_time(one_second_mp4: Path) -> None:
    reader = StreamReader(one_second_mp4.as_uri(), ReaderOptions(realtime_files=True))
    start = time.monotonic()
    with reader:
        items = []
        for packet, media_s in reader.packets():
            items.append((packet.is_keyframe, media_s))
            if len(items) == 40:  # 1.6 s of a 1 s clip: it looped once
                break
    elapsed = time.monotonic() - start
    times = [t for _, t in items]
    assert times == sorted(times) and times[39] == pytest.approx(1.56)
    assert [k for k, _ in items].count(True) == 2 and items[25][0]
    assert reader.opens == 2
    assert elapsed > 1.0  # paced like a camera, not read at decode speed (a lower bound, not a speed claim)


def test_file_urls_with_spaces_open(one_second_mp4: Path) -> None:
    assert file_path(one_second_mp4.as_uri()) == str(one_second_mp4)
    with StreamReader(one_second_mp4.as_uri(), ReaderOptions(realtime_files=False)) as reader:
        assert sum(1 for _ in reader.frames()) == 25


def test_rtsp_packets_arrive_with_media_time_and_the_container_is_closed(need_gst: None, walker_h264: Path) -> None:
    with RtspServer({"cam": walker_h264}, user="u", password="p w/é") as rtsp:
        reader = StreamReader(rtsp.url("cam"), ReaderOptions(open_timeout_s=3, read_timeout_s=3), "u", "p w/é")
        with reader:
            assert reader.declared_fps == 25.0 and not reader.is_file
            items = []
            for _packet, media_s in reader.packets():
                items.append(media_s)
                if len(items) == 30:
                    break
        with pytest.raises(RuntimeError, match="closed"):
            _ = reader.video
    steps = np.diff(items)
    assert np.allclose(steps, 0.04, atol=1e-3)


def test_credentials_are_percent_encoded_into_rtsp_urls_only() -> None:
    assert with_credentials("rtsp://cam:554/s", "ad min", "p@ss:w/rd") == "rtsp://ad%20min:p%40ss%3Aw%2Frd@cam:554/s"
    assert with_credentials("rtsp://cam/s", "u", None) == "rtsp://u@cam/s"
    assert with_credentials("rtsp://cam/s", None, "x") == "rtsp://cam/s"
    assert with_credentials("file:///a.mp4", "u", "p") == "file:///a.mp4"


def test_luma_is_a_view_of_the_y_plane_and_downscale_never_aliases_it(walker_h264: Path) -> None:
    with StreamReader(str(walker_h264), ReaderOptions(realtime_files=False)) as reader:
        frame = next(reader.frames())
    assert isinstance(frame, av.VideoFrame)
    luma = luma_view(frame)
    assert luma.shape == (360, 640) and luma.base is not None
    assert detect_size(640, 360, 320) == (320, 180) and detect_size(768, 576, 320) == (320, 240)
    assert detect_size(160, 90, 320) == (160, 90)
    small = downscale(luma, 320, 180)
    assert small.shape == (180, 320) and small.flags.c_contiguous and not np.shares_memory(small, luma)
    out = np.empty((90, 160), np.uint8)
    assert downscale(luma, 160, 90, out) is out
    same = downscale(luma, 640, 360)
    assert not np.shares_memory(same, luma) and np.array_equal(same, luma)
    with pytest.raises(ValueError, match="out_hw must be"):
        downscale(luma, 320, 180, out)
