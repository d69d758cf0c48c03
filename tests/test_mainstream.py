"""Main-stream keyframes for snapshots: one full-resolution keyframe per grab over real RTSP, failures without
credentials in their messages, and a pool bounded in threads, queue and waiting time."""

from __future__ import annotations

import threading
from pathlib import Path

import av
import pytest

from ingest.cameras import stream_url_with_credentials
from ingest.mainstream import MAX_WAITERS, FailureCallback, FrameCallback, GrabError, MainStreamGrabber, grab_keyframe
from ingest.reader import ReaderOptions
from tests.ingest_fixtures import wait_for
from tests.mainstream_fixtures import main_clip
from tests.peers import RtspServer, free_port

# Short timeouts: the failure tests wait for them.
FAST = ReaderOptions(open_timeout_s=1.0, read_timeout_s=1.0)
PASSWORD = "pa ss:wörd/@"


class Results:
    """What a grabber's callbacks received, per request."""

    def __init__(self) -> None:
        self.frames: list[tuple[str, av.VideoFrame]] = []
        self.failures: list[tuple[str, str]] = []
        self._lock = threading.Lock()

    def callbacks(self, name: str) -> tuple[FrameCallback, FailureCallback]:
        def on_frame(frame: av.VideoFrame) -> None:
            with self._lock:
                self.frames.append((name, frame))

        def on_failure(message: str) -> None:
            with self._lock:
                self.failures.append((name, message))

        return on_frame, on_failure

    def count(self) -> int:
        with self._lock:
            return len(self.frames) + len(self.failures)


def test_a_grab_returns_the_first_keyframe_at_the_main_streams_resolution(need_gst: None, clip_dir: Path) -> None:
    with RtspServer({"main": main_clip(clip_dir)}, user="viewer", password=PASSWORD) as rtsp:
        url = stream_url_with_credentials(rtsp.url("main"), "viewer", PASSWORD)
        assert url is not None
        frame = grab_keyframe(url, FAST)
        assert (frame.width, frame.height) == (1280, 720)
        assert frame.key_frame and not frame.is_corrupt

        grabber = MainStreamGrabber(FAST)
        results = Results()
        assert grabber.submit("cam_1", url, *results.callbacks("cam_1"))
        wait_for(lambda: results.count() == 1, 15, "the grab to finish")
        grabber.close()
    assert [(name, f.width, f.height) for name, f in results.frames] == [("cam_1", 1280, 720)]
    stats = grabber.stats()
    assert (stats.submitted, stats.grabbed, stats.failed, stats.pending, stats.running) == (1, 1, 0, 0, 0)


def test_failures_say_what_went_wrong_and_never_the_password(need_gst: None, clip_dir: Path, black_hole: int) -> None:
    with RtspServer({"main": main_clip(clip_dir)}, user="viewer", password=PASSWORD) as rtsp:
        with pytest.raises(GrabError) as wrong:
            grab_keyframe(rtsp.url("main", "viewer", "not-the-password"), FAST)
        with pytest.raises(GrabError) as missing:
            grab_keyframe(rtsp.url("nope", "viewer", "pw-secret"), FAST)
    with pytest.raises(GrabError) as refused:
        grab_keyframe(f"rtsp://viewer:pw-secret@127.0.0.1:{free_port()}/main", FAST)
    with pytest.raises(GrabError) as silent:
        grab_keyframe(f"rtsp://viewer:pw-secret@127.0.0.1:{black_hole}/main", FAST)
    assert "401" in str(wrong.value)
    assert "404" in str(missing.value)
    assert "refused" in str(refused.value)
    assert "no RTSP answer" in str(silent.value) or "open timeout" in str(silent.value)
    for exc in (wrong, missing, refused, silent):
        text = str(exc.value)
        assert "not-the-password" not in text and "pw-secret" not in text
        assert exc.value.__cause__ is None  # FFmpeg's own error (it names the URL) is not chained


def test_the_queue_is_bounded_and_drops_are_counted(black_hole: int) -> None:
    # One thread, room for one queued camera, and a queue wait of 0.2 s: the hung camera's open (about 0.5 s,
    # the socket timeout) holds the thread long enough for the queued grab to expire.
    grabber = MainStreamGrabber(FAST, threads=1, queue_size=1, max_wait_s=0.2)
    results = Results()
    hung = f"rtsp://127.0.0.1:{black_hole}/main"
    assert grabber.submit("cam_a", hung, *results.callbacks("a1"))
    wait_for(lambda: grabber.stats().running == 1, 10, "the first grab to start")
    assert grabber.submit("cam_b", hung, *results.callbacks("b1"))  # queued
    assert not grabber.submit("cam_c", hung, *results.callbacks("c1"))  # queue full
    # Another alert of a camera already queued or running shares its grab: one grab in flight per camera.
    assert grabber.submit("cam_a", hung, *results.callbacks("a2"))
    for i in range(MAX_WAITERS - 1):
        assert grabber.submit("cam_b", hung, *results.callbacks(f"b{i + 2}"))
    assert not grabber.submit("cam_b", hung, *results.callbacks("b-too-many"))
    stats = grabber.stats()
    assert (stats.submitted, stats.joined, stats.dropped, stats.pending) == (2, MAX_WAITERS, 2, 2)

    wait_for(lambda: results.count() == 2 + MAX_WAITERS, 15, "every accepted request to be answered")
    grabber.close()
    assert not results.frames
    failed = dict(results.failures)
    assert set(failed) == {"a1", "a2", *(f"b{i + 1}" for i in range(MAX_WAITERS))}
    assert "open timeout" in failed["a1"] or "no RTSP answer" in failed["a1"]
    assert "waiting" in failed["b1"]  # expired in the queue, never opened
    stats = grabber.stats()
    assert (stats.failed, stats.expired, stats.grabbed, stats.pending, stats.running) == (1, 1, 0, 0, 0)


def test_close_drops_what_is_queued_and_refuses_more(black_hole: int) -> None:
    # A 2 s socket timeout: the hung open is certainly still running when close() comes.
    grabber = MainStreamGrabber(ReaderOptions(open_timeout_s=2.0, read_timeout_s=4.0), threads=1, queue_size=4)
    results = Results()
    hung = f"rtsp://127.0.0.1:{black_hole}/main"
    assert grabber.submit("cam_a", hung, *results.callbacks("a"))
    wait_for(lambda: grabber.stats().running == 1, 10, "the first grab to start")
    assert grabber.submit("cam_b", hung, *results.callbacks("b"))
    grabber.close(timeout=5)
    assert not grabber.submit("cam_c", hung, *results.callbacks("c"))
    stats = grabber.stats()
    assert (stats.pending, stats.running, stats.dropped) == (0, 0, 1)
    assert results.count() == 0  # nobody is told about grabs cut short by closing
