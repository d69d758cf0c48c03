"""Decoders and the GOP buffer: escalating mid-GOP yields exactly the frames a full decode would."""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Any

import av
import numpy as np
import pytest

from ingest.decoding import Decoders, DecoderSettings, GopBuffer
from ingest.reader import ReaderOptions, StreamReader, luma_view


def _digest(frame: av.VideoFrame) -> str:
    return hashlib.sha1(np.ascontiguousarray(luma_view(frame)).tobytes()).hexdigest()


def _packets(path: Path) -> list[av.Packet[Any]]:
    with StreamReader(str(path), ReaderOptions(realtime_files=False)) as reader:
        return [packet for packet, _ in reader.packets()]


@pytest.mark.parametrize("cheap_idle", [True, False])
def test_catch_up_mid_gop_matches_a_full_decode(walker_h264: Path, cheap_idle: bool) -> None:
    packets = _packets(walker_h264)
    with StreamReader(str(walker_h264), ReaderOptions(realtime_files=False)) as reader:
        reference = [_digest(f) for p in packets for f in reader.video.codec_context.decode(p)]
        assert len(reference) == len(packets)
        decoders = Decoders(reader.video, DecoderSettings(cheap_idle=cheap_idle))
        gop = GopBuffer(4_000_000)
        escalate_at = 25 + 13  # the 14th packet of the second GOP
        checked = 0
        for index, packet in enumerate(packets):
            if packet.is_keyframe:
                gop.restart(packet)
            else:
                gop.add(packet)
            if index < escalate_at:
                if packet.is_keyframe:
                    decoders.gop_restarted()
                    decoders.decode_idle(packet)
                continue
            if index == escalate_at:
                frames = decoders.catch_up(gop)
                assert len(frames) == (14 if cheap_idle else 13)
            else:
                frames = decoders.decode_full(packet)
            assert [_digest(f) for f in frames][-1] == reference[index]
            checked += 1
        assert checked == len(packets) - escalate_at


def test_cheap_idle_keyframes_skip_the_loop_filter(walker_h264: Path) -> None:
    packets = _packets(walker_h264)
    with StreamReader(str(walker_h264), ReaderOptions(realtime_files=False)) as reader:
        cheap = Decoders(reader.video, DecoderSettings(cheap_idle=True)).decode_idle(packets[0])[0]
        full = Decoders(reader.video, DecoderSettings(cheap_idle=False)).decode_idle(packets[0])[0]
    a, b = luma_view(cheap).astype(np.int16), luma_view(full).astype(np.int16)
    # Same picture (deblocking moves a few levels at block edges), not the same bytes.
    assert 0 < float(np.abs(a - b).mean()) < 2.0


def test_gop_buffer_is_bounded_and_refuses_catch_up_after_overflow(walker_h264: Path) -> None:
    packets = _packets(walker_h264)
    key, rest = packets[0], packets[1:25]
    gop = GopBuffer(key.size + 2 * max(p.size for p in rest))
    gop.restart(key)
    for p in rest:
        gop.add(p)
    assert not gop.usable and gop.packets == [] and gop.nbytes == 0
    with (
        StreamReader(str(walker_h264), ReaderOptions(realtime_files=False)) as reader,
        pytest.raises(LookupError, match="next keyframe"),
    ):
        Decoders(reader.video, DecoderSettings()).catch_up(gop)
    gop.restart(key)  # the next keyframe makes it usable again
    assert gop.usable and len(gop.packets) == 1
    with pytest.raises(ValueError, match="positive"):
        GopBuffer(0)
