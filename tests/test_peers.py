"""The real test peers: the GStreamer RTSP server as PyAV sees it, and the Redis-protocol servers.

Also pins down which PyAV exception each RTSP failure raises (see the table in tests/peers.py).
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Iterator
from pathlib import Path

import av
import av.error
import pytest
import redis

from tests.peers import (
    RedisServerProcess,
    RtspServer,
    free_port,
    gst_available,
    redis_server_url,
)

OPTIONS = {"rtsp_transport": "tcp", "timeout": "5000000", "analyzeduration": "500000"}

# The conftest's need_gst fails (never skips) with the apt-get command when GStreamer is missing.
needs_gst = pytest.mark.usefixtures("need_gst")


@pytest.fixture
def server(walker_h264: Path) -> Iterator[RtspServer]:
    """A server with two mounts of the conftest's cached walker clip (raw H.264)."""
    with RtspServer({"walker": walker_h264, "/second": walker_h264}) as srv:
        yield srv


def _read(url: str, n: int, read_timeout: float = 5.0) -> list[av.VideoFrame]:
    frames: list[av.VideoFrame] = []
    with av.open(url, options=OPTIONS, timeout=(5, read_timeout)) as container:
        for frame in container.decode(video=0):
            frames.append(frame)
            if len(frames) >= n:
                break
    return frames


def _refused(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def test_free_port_is_bindable() -> None:
    port = free_port()
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", port))


def test_gst_available_here() -> None:
    # Where GStreamer is missing this names the apt-get command; on the dev image nothing is missing.
    result = gst_available()
    assert result is None or result.startswith("apt-get install")


@needs_gst
def test_read_50_frames(server: RtspServer) -> None:
    assert server.url("walker") == f"rtsp://127.0.0.1:{server.port}/walker"
    frames = _read(server.url("/walker"), 50)
    assert len(frames) == 50
    assert (frames[0].width, frames[0].height) == (640, 360)
    # RTP timestamps advance one frame duration per frame (90 kHz clock, 25 fps); the first is unset.
    pts = [f.pts for f in frames[1:]]
    assert None not in pts
    steps = {b - a for a, b in itertools.pairwise(pts)}  # type: ignore[operator]
    assert steps == {3600}, steps
    # Shared media: a second mount and a second client on the same one both play.
    assert len(_read(server.url("second"), 5)) == 5
    assert len(_read(server.url("walker"), 5)) == 5


@needs_gst
def test_missing_mount_is_404(server: RtspServer) -> None:
    with pytest.raises(av.error.HTTPNotFoundError, match="404"):
        av.open(server.url("nope"), options=OPTIONS, timeout=(5, 5))


@needs_gst
def test_wrong_password_is_401(walker_h264: Path) -> None:
    with RtspServer({"cam": walker_h264}, user="admin", password="s3cret") as srv:
        for url in (srv.url("cam", "admin", "wrong"), srv.url("cam")):
            with pytest.raises(av.error.HTTPUnauthorizedError, match="401"):
                av.open(url, options=OPTIONS, timeout=(5, 5))
        assert len(_read(srv.url("cam", "admin", "s3cret"), 3)) == 3


def test_nothing_listening_is_connection_refused() -> None:
    port = free_port()
    with pytest.raises(av.error.ConnectionRefusedError):
        av.open(f"rtsp://127.0.0.1:{port}/x", options=OPTIONS, timeout=(5, 5))
    # It is also the builtin, so `except ConnectionRefusedError` catches it.
    assert issubclass(av.error.ConnectionRefusedError, ConnectionRefusedError)


@needs_gst
def test_paused_server_times_out_reader_then_resumes(server: RtspServer) -> None:
    url = server.url("walker")
    start = 0.0
    with av.open(url, options=OPTIONS, timeout=(5, 1.0)) as container:
        frames = container.decode(video=0)
        for _ in range(5):
            next(frames)
        server.pause()
        start = time.monotonic()
        # Frames already buffered come out first; then the read blocks until PyAV's read timeout.
        with pytest.raises(av.error.ExitError, match="Immediate exit requested"):
            for _ in range(100):
                next(frames)
    elapsed = time.monotonic() - start
    # Observed: about twice the read timeout (2 s for 1 s).
    assert 0.8 < elapsed < 4.0, elapsed
    server.resume()
    assert len(_read(url, 5)) == 5


@needs_gst
def test_paused_server_trips_socket_timeout_first(server: RtspServer) -> None:
    # With the "timeout" socket option shorter than PyAV's read timeout the error is a TimeoutError.
    options = {**OPTIONS, "timeout": "1000000"}
    with av.open(server.url("walker"), options=options, timeout=(5, 20)) as container:
        frames = container.decode(video=0)
        next(frames)
        server.pause()
        start = time.monotonic()
        with pytest.raises(av.error.TimeoutError) as info:
            for _ in range(100):
                next(frames)
    elapsed = time.monotonic() - start
    assert isinstance(info.value, TimeoutError) and info.value.errno == 110
    assert 0.8 < elapsed < 4.0, elapsed
    server.resume()


@needs_gst
def test_open_against_paused_server_is_invalid_data(server: RtspServer) -> None:
    # The kernel still accepts the TCP connection; the RTSP reply never comes.
    server.pause()
    start = time.monotonic()
    with pytest.raises(av.error.InvalidDataError):
        av.open(server.url("walker"), options=OPTIONS, timeout=(1.0, 1.0))
    assert time.monotonic() - start < 3.0
    server.resume()


@needs_gst
def test_killed_server_ends_stream_and_restarts_on_same_port(server: RtspServer) -> None:
    url = server.url("walker")
    port, old_pid = server.port, server.pid
    count = 0
    with av.open(url, options=OPTIONS, timeout=(5, 5)) as container:
        for _ in container.decode(video=0):
            count += 1
            if count == 5:
                server.kill()
            assert count < 100, "stream went on after the server was killed"
    # No exception: a killed server looks like the end of the stream.
    assert not server.running and _refused(port)
    server.restart()
    assert server.port == port and server.pid != old_pid
    assert len(_read(url, 5)) == 5


@needs_gst
def test_stop_cleans_up(walker_h264: Path) -> None:
    srv = RtspServer({"cam": walker_h264})
    pid, port = srv.pid, srv.port
    srv.pause()
    srv.stop()  # A paused server must still stop.
    assert not srv.running and _refused(port)
    with pytest.raises(ProcessLookupError):
        os.kill(pid, 0)
    srv.close()


@needs_gst
def test_bad_mount_file_reports_error() -> None:
    with pytest.raises(FileNotFoundError):
        RtspServer({"cam": Path("/nonexistent/clip.h264")})


@needs_gst
def test_port_in_use_reports_stderr(walker_h264: Path) -> None:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen()
        port = sock.getsockname()[1]
        with pytest.raises(RuntimeError, match="cannot listen"):
            RtspServer({"cam": walker_h264}, port=port)


def test_redis_server_url() -> None:
    with redis_server_url() as url:
        client = redis.Redis.from_url(url)
        assert client.ping()
        client.xadd("s", {"k": "v"})
        assert client.xlen("s") == 1
        client.close()


def test_redis_server_url_from_env(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARPEYES_TEST_REDIS_URL", "redis://127.0.0.1:1/0")
    with redis_server_url() as url:
        assert url == "redis://127.0.0.1:1/0"


def test_redis_process_restart_keeps_aof_data(tmp_path: Path) -> None:
    with RedisServerProcess(appendonly=True, data_dir=tmp_path, appendfsync="always") as srv:
        client = redis.Redis.from_url(srv.url)
        client.set("a", "1")
        port = srv.port
        srv.stop()
        assert _refused(port)
        srv.start()
        assert srv.port == port and client.get("a") == b"1"
        client.set("b", "2")
        srv.kill()  # A crash: with appendfsync=always every acknowledged write is on disk.
        srv.start()
        assert client.get("b") == b"2"
        client.close()
    assert _refused(port)


def test_redis_process_without_aof_forgets(tmp_path: Path) -> None:
    with RedisServerProcess() as srv:
        client = redis.Redis.from_url(srv.url)
        client.set("a", "1")
        srv.restart()
        assert client.get("a") is None
        client.close()
        data_dir = srv.data_dir
    assert not data_dir.exists()
