"""The failure policy: which stream errors are permanent until someone changes something, which transient.

Permanent (bad credentials, missing path) are retried slowly, because a fix on the camera side is not
announced to us; transient (refused, reset, timeout, unreachable, garbage data) back off exponentially.
"""

from __future__ import annotations

import errno
from dataclasses import dataclass

import av

from ingest.cameras import CameraState


@dataclass(frozen=True, slots=True)
class Failure:
    """A classified stream failure: the state to show, whether it is permanent, and a message for people."""

    state: CameraState
    permanent: bool
    message: str


def classify(exc: BaseException) -> Failure:
    """Classify an exception raised while opening or reading a stream."""
    detail = str(exc)
    if isinstance(exc, av.error.HTTPUnauthorizedError | av.error.HTTPForbiddenError):
        return Failure(CameraState.AUTH_FAILED, True, f"camera refused the credentials (401/403): {detail}")
    if isinstance(exc, av.error.HTTPNotFoundError | av.error.FileNotFoundError):
        return Failure(CameraState.NOT_FOUND, True, f"stream path not found (404): {detail}")
    if isinstance(exc, av.error.ConnectionRefusedError):
        return Failure(CameraState.OFFLINE, False, f"connection refused: is the camera up and the port right? {detail}")
    if isinstance(exc, av.error.TimeoutError | TimeoutError):
        return Failure(CameraState.STALLED, False, f"no data within the read timeout: {detail}")
    if isinstance(exc, av.error.ExitError):
        # PyAV's own read timeout interrupts FFmpeg with AVERROR_EXIT: the stream went silent.
        return Failure(CameraState.STALLED, False, "no data within the read timeout: the stream stalled")
    if isinstance(exc, av.error.InvalidDataError):
        return Failure(CameraState.OFFLINE, False, f"not a valid video stream (wrong URL or corrupt data): {detail}")
    if isinstance(exc, av.error.FFmpegError) and exc.errno == errno.EIO:
        return Failure(CameraState.OFFLINE, False, f"host unreachable or name not resolved: {detail}")
    if isinstance(exc, av.error.FFmpegError | OSError):
        return Failure(CameraState.OFFLINE, False, f"stream error: {detail}")
    return Failure(CameraState.OFFLINE, False, f"{type(exc).__name__}: {detail}")


ENDED = Failure(CameraState.OFFLINE, False, "stream ended (server closed the connection)")
NO_VIDEO = Failure(CameraState.OFFLINE, True, "the stream has no video track")
