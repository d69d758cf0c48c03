"""video_loss events from the ingest engine's camera state: no video for longer than a grace period.

The ingest engine owns the camera state (connecting, online, stalled, ...). It calls :meth:`VideoLossTracker.update`
on every state change and periodically (each health report), and publishes the events it returns like any other.
A camera that reconnects within the grace period raises nothing; a disabled camera is not a loss.
"""

from __future__ import annotations

from detectors.events import CAMERA_ZONE, Event, EventPhase, EventType
from ingest.cameras import CameraState

# States in which the camera delivers no video. CONNECTING counts: a reconnect that takes longer than the
# grace period is a loss, whatever the reason.
LOSS_STATES = frozenset(
    {CameraState.CONNECTING, CameraState.STALLED, CameraState.OFFLINE, CameraState.AUTH_FAILED, CameraState.NOT_FOUND}
)
VIDEO_STATES = frozenset({CameraState.ONLINE, CameraState.DEGRADED})


class VideoLossTracker:
    """One camera's video_loss lifecycle. Times are Unix seconds (the health clock)."""

    def __init__(self, camera_id: str, grace_s: float = 10.0) -> None:
        if grace_s < 0:
            raise ValueError(f"grace_s must be >= 0, got {grace_s!r}")
        self.camera_id = camera_id
        self.grace_s = grace_s
        self._lost_since: float | None = None
        self._active = False
        self._state: CameraState | None = None

    @property
    def active(self) -> bool:
        """True while a video_loss event is open."""
        return self._active

    def _event(self, phase: EventPhase, t_s: float) -> Event:
        start = self._lost_since if self._lost_since is not None else t_s
        end = t_s if phase is EventPhase.END else None
        return Event(self.camera_id, CAMERA_ZONE, EventType.VIDEO_LOSS, phase, start, t_s, end, 1.0, None)

    def update(self, state: CameraState, t_s: float) -> list[Event]:
        """Observe the camera's state at ``t_s``; returns the start or end of its video_loss event, if any."""
        self._state = state
        if state in VIDEO_STATES or state is CameraState.DISABLED:
            out = [self._event(EventPhase.END, t_s)] if self._active else []
            self._lost_since, self._active = None, False
            return out
        if state not in LOSS_STATES:
            return []  # UNKNOWN: nobody has reported yet, so nothing is known to be lost
        if self._lost_since is None:
            self._lost_since = t_s
        if not self._active and t_s - self._lost_since >= self.grace_s:
            self._active = True
            return [self._event(EventPhase.START, t_s)]
        return []

    def poll(self, t_s: float) -> list[Event]:
        """Re-check the last state at ``t_s`` (a stalled camera reports no new state to trigger on)."""
        return self.update(self._state, t_s) if self._state is not None else []

    def flush(self, t_s: float) -> list[Event]:
        """End an open event (the camera is removed or the worker stops watching it)."""
        if not self._active:
            return []
        self._active = False
        out = [self._event(EventPhase.END, t_s)]
        self._lost_since = None
        return out
