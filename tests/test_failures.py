"""The failure policy: real PyAV errors from real peers, classified into states, messages and permanence."""

from __future__ import annotations

import time
from pathlib import Path

import av
import pytest

from ingest.cameras import CameraState
from ingest.failures import ENDED, Failure, FailureKind, classify, redact
from ingest.reader import ReaderOptions, StreamReader
from tests.peers import RtspServer, free_port

OPTS = ReaderOptions(open_timeout_s=1.0, read_timeout_s=1.0)


def open_failure(url: str, user: str | None = None, password: str | None = None) -> Failure:
    reader = StreamReader(url, OPTS, user, password)
    started = time.monotonic()
    try:
        reader.open()
    except av.error.FFmpegError as exc:
        return classify(exc, opening=True, elapsed_s=time.monotonic() - started, open_timeout_s=OPTS.socket_timeout_s)
    finally:
        reader.close()
    pytest.fail(f"{url} opened")


def test_each_stream_failure_gets_its_state_permanence_and_a_message(
    need_gst: None, walker_h264: Path, http_port: int, black_hole: int
) -> None:
    with RtspServer({"cam": walker_h264}, user="viewer", password="s3cret-pw") as rtsp:
        base = f"rtsp://127.0.0.1:{rtsp.port}"
        wrong_password = open_failure(f"{base}/cam", "viewer", "wrong-pw")
        no_password = open_failure(f"{base}/cam")
        wrong_path = open_failure(f"{base}/nope", "viewer", "s3cret-pw")
    refused = open_failure(f"rtsp://127.0.0.1:{free_port()}/cam")
    not_rtsp = open_failure(f"rtsp://127.0.0.1:{http_port}/cam")
    silent = open_failure(f"rtsp://127.0.0.1:{black_hole}/cam")

    assert (wrong_password.kind, wrong_password.state, wrong_password.permanent) == (
        FailureKind.AUTH,
        CameraState.AUTH_FAILED,
        True,
    )
    assert "401" in wrong_password.message and "wrong-pw" not in wrong_password.message
    assert no_password.kind is FailureKind.AUTH
    assert (wrong_path.kind, wrong_path.state, wrong_path.permanent) == (
        FailureKind.NOT_FOUND,
        CameraState.NOT_FOUND,
        True,
    )
    assert "404" in wrong_path.message and "s3cret-pw" not in wrong_path.message
    assert (refused.kind, refused.state, refused.permanent) == (FailureKind.REFUSED, CameraState.OFFLINE, False)
    assert "refused" in refused.message
    assert (not_rtsp.kind, not_rtsp.state) == (FailureKind.PROTOCOL, CameraState.OFFLINE)
    assert "not a video stream" in not_rtsp.message
    assert (silent.kind, silent.state, silent.permanent) == (FailureKind.OPEN_TIMEOUT, CameraState.OFFLINE, False)
    assert "does not respond" in silent.message


def test_missing_local_file_is_not_found(tmp_path: Path) -> None:
    failure = open_failure((tmp_path / "gone.mp4").as_uri())
    assert failure.state is CameraState.NOT_FOUND and failure.permanent


def test_timeouts_while_reading_are_stalls_and_eof_is_a_transient_drop() -> None:
    stall = classify(av.error.ExitError(-1414092869, "Immediate exit requested"))
    assert (stall.kind, stall.state, stall.permanent) == (FailureKind.STALL, CameraState.STALLED, False)
    assert classify(TimeoutError(110, "timed out")).state is CameraState.STALLED
    assert classify(TimeoutError(110, "timed out"), opening=True).kind is FailureKind.OPEN_TIMEOUT
    assert (ENDED.state, ENDED.permanent) == (CameraState.OFFLINE, False)
    corrupt = classify(av.error.InvalidDataError(1094995529, "Invalid data found when processing input"))
    assert corrupt.kind is FailureKind.PROTOCOL and "corrupt" in corrupt.message


def test_redact_hides_passwords_in_any_url_of_a_message() -> None:
    text = "Server returned 401: 'rtsp://admin:hunter2@10.0.0.7:554/live' and rtsps://u@h/x"
    out = redact(text)
    assert "hunter2" not in out and "admin" not in out
    assert "rtsp://***@10.0.0.7:554/live" in out and "rtsps://***@h/x" in out
