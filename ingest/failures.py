"""The failure policy: which stream errors are permanent until someone changes something, which transient.

Permanent (bad credentials, missing path) are retried slowly, because a fix on the camera side is not
announced to us; transient (refused, unreachable, timeouts, stalls, garbage data, a dropped connection)
back off exponentially from one second. Each failure names the camera state it shows as and a message
that tells the operator what to check. Messages never carry a password: FFmpeg puts the URL, credentials
included, into its error text, so every message goes through :func:`redact`.

How PyAV reports each situation is tabled in ``tests/peers.py``; a server killed while streaming ends the
demuxer with a plain EOF (no exception), which the runner maps to :data:`ENDED`.
"""

from __future__ import annotations

import errno
import re
from dataclasses import dataclass
from enum import StrEnum

import av

from ingest.cameras import CameraState

# An open that fails with "invalid data" after this fraction of the open timeout timed out: the TCP
# connect succeeded (the kernel accepts into the backlog) but nothing answered. A non-RTSP server that
# answers with garbage fails within milliseconds.
_TIMED_OUT_FRACTION = 0.8
_USERINFO = re.compile(r"(?P<scheme>[a-zA-Z][a-zA-Z0-9+.-]*://)[^/@\s'\"]+@")


class FailureKind(StrEnum):
    """What went wrong, as far as the error lets us tell."""

    AUTH = "auth"  # 401/403: credentials refused
    NOT_FOUND = "not_found"  # 404: no such stream path
    REFUSED = "refused"  # nothing listening on that host and port
    UNREACHABLE = "unreachable"  # no route, name not resolved, network down
    OPEN_TIMEOUT = "open_timeout"  # connected, but no RTSP answer within the open timeout
    STALL = "stall"  # no packet within the read timeout while streaming
    PROTOCOL = "protocol"  # not RTSP, not a video stream, or corrupt beyond recovery
    NO_VIDEO = "no_video"  # the stream has no video track
    ENDED = "ended"  # the server closed the stream (a killed server looks like this)
    OTHER = "other"


@dataclass(frozen=True, slots=True)
class Failure:
    """A classified stream failure: the state to show, whether it is permanent, and a message for people."""

    kind: FailureKind
    state: CameraState
    permanent: bool
    message: str


def redact(text: str) -> str:
    """``text`` with the ``user:password@`` part of every URL replaced by ``***@``."""
    return _USERINFO.sub(r"\g<scheme>***@", text)


def _detail(exc: BaseException) -> str:
    # FFmpegError's str() is "[Errno N] message: 'url'"; the errno number means nothing to people.
    strerror = getattr(exc, "strerror", None)
    text = strerror if isinstance(strerror, str) and strerror else str(exc)
    return redact(text)


def classify(
    exc: BaseException, *, opening: bool = False, elapsed_s: float | None = None, open_timeout_s: float | None = None
) -> Failure:
    """Classify an exception raised while opening (``opening``) or reading a stream.

    ``elapsed_s`` (how long the failed open took) and ``open_timeout_s`` tell an open that failed with
    "invalid data" at its timeout (connected, nothing answered) from a server that answered garbage at once.
    A timeout while opening is an unreachable camera (offline); while reading, a stall.
    """
    detail = _detail(exc)
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        return Failure(
            FailureKind.AUTH,
            CameraState.AUTH_FAILED,
            True,
            f"the camera refused the credentials (401/403): check the username and password ({detail})",
        )
    if isinstance(exc, av.error.HTTPNotFoundError | av.error.FileNotFoundError):
        return Failure(
            FailureKind.NOT_FOUND,
            CameraState.NOT_FOUND,
            True,
            f"stream path not found (404): check the path in the stream URL ({detail})",
        )
    if isinstance(exc, ConnectionRefusedError):
        return Failure(
            FailureKind.REFUSED,
            CameraState.OFFLINE,
            False,
            f"connection refused: nothing listens on that host and port; is the camera up and the port right? "
            f"({detail})",
        )
    if isinstance(exc, av.error.ExitError | TimeoutError):  # av.error.TimeoutError is a TimeoutError
        if opening:
            return Failure(
                FailureKind.OPEN_TIMEOUT,
                CameraState.OFFLINE,
                False,
                "no answer within the open timeout: is the host right and reachable?",
            )
        # PyAV's read timeout interrupts FFmpeg with AVERROR_EXIT; the socket timeout raises ETIMEDOUT.
        return Failure(
            FailureKind.STALL, CameraState.STALLED, False, "no data within the read timeout: the stream stalled"
        )
    if isinstance(exc, av.error.InvalidDataError):
        if not opening:
            return Failure(FailureKind.PROTOCOL, CameraState.OFFLINE, False, f"corrupt data in the stream ({detail})")
        if elapsed_s is not None and open_timeout_s is not None and elapsed_s >= _TIMED_OUT_FRACTION * open_timeout_s:
            return Failure(
                FailureKind.OPEN_TIMEOUT,
                CameraState.OFFLINE,
                False,
                f"no RTSP answer within the {open_timeout_s:g} s open timeout: the host accepts connections but "
                "does not respond (wrong host or port, a hung camera, or a firewall)",
            )
        return Failure(
            FailureKind.PROTOCOL,
            CameraState.OFFLINE,
            False,
            f"not a video stream: the server answered, but not with RTSP video; is this an RTSP camera URL? ({detail})",
        )
    if isinstance(exc, OSError) and exc.errno in (errno.EHOSTUNREACH, errno.ENETUNREACH, errno.EIO, errno.ENOENT):
        return Failure(
            FailureKind.UNREACHABLE,
            CameraState.OFFLINE,
            False,
            f"host unreachable or name not resolved: check the host in the stream URL and the network ({detail})",
        )
    if isinstance(exc, av.error.FFmpegError | OSError):
        return Failure(FailureKind.OTHER, CameraState.OFFLINE, False, f"stream error: {detail}")
    return Failure(FailureKind.OTHER, CameraState.OFFLINE, False, f"{type(exc).__name__}: {redact(str(exc))}")


# The server closed the connection mid-stream. A killed server ends PyAV's read with a plain EOF, so this
# is a drop to reconnect from, never "the camera has finished".
ENDED = Failure(FailureKind.ENDED, CameraState.OFFLINE, False, "stream ended: the server closed the connection")
NO_VIDEO = Failure(FailureKind.NO_VIDEO, CameraState.OFFLINE, True, "the stream has no video track")
