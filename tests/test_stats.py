"""Per-camera counters: keyframe interval, reconnects in the last hour, rates."""

from __future__ import annotations

import time

import pytest

from ingest.stats import CameraStats, RateMeter


def test_keyframe_interval_is_the_median_and_ignores_a_stray_keyframe() -> None:
    st = CameraStats()
    assert st.keyframe_interval_s is None
    for t in (0.0, 2.0, 4.0, 4.5, 6.0, 8.0, 10.0):
        st.keyframe(t)
    assert st.keyframe_interval_s == 2.0
    assert st.seconds_since_keyframe(11.0) == 1.0
    st.new_connection()
    st.keyframe(0.0)  # media time restarted: no negative gap recorded
    assert st.keyframe_interval_s == 2.0 and st.keyframes == 8


def test_reconnects_are_counted_over_the_last_hour() -> None:
    st = CameraStats()
    now = time.time()
    for ago in (4000.0, 3000.0, 10.0, 1.0):
        st.reconnected(now - ago)
    assert st.reconnects_last_hour(now) == 3


def test_rate_meter_reports_per_second_rates_of_the_window() -> None:
    st = CameraStats()
    meter = RateMeter(st)
    st.packets, st.bytes, st.decoded, st.analysed, st.decode_errors = 50, 125_000, 2, 2, 1
    time.sleep(0.2)
    rates = meter.take()
    span = 50 / rates.fps_received
    assert 0.2 <= span < 5
    assert rates.bitrate_kbps == pytest.approx(125_000 * 8 / 1000 / span)
    assert (rates.decoded, rates.decode_errors) == (2, 1)
    assert meter.take().fps_received == 0.0  # a new window


def test_rates_of_batched_packets_do_not_jitter_with_the_window_boundary() -> None:
    st = CameraStats()
    meter = RateMeter(st, now=0.0)
    seen = []
    t = 0.0
    for window_end in (2.0, 4.0, 6.0, 8.0):
        while t + 0.3 <= window_end:  # 25 fps arriving as a batch of 7.5 frames every 0.3 s
            t += 0.3
            st.packets = round(t * 25)  # the batch lands at t, and is read in a burst a little later
            st.last_packet_mono = t + 0.05
            st.last_packet_due = t
        seen.append(meter.take(now=window_end).fps_received)
    assert seen == pytest.approx([25.0] * 4, abs=1.0)  # cut at arbitrary instants: 22.5 to 26.3
    # A stream that went silent shows at once: the window then ends now, not at its last packet.
    assert meter.take(now=t + 1.5).fps_received == 0.0
