"""video_loss events from camera state: grace period, recovery, disabled cameras."""

from __future__ import annotations

import pytest

from detectors.events import CAMERA_ZONE, EventPhase, EventType
from detectors.videoloss import VideoLossTracker
from ingest.cameras import CameraState as S


@pytest.mark.parametrize(
    ("steps", "expected"),
    [
        ([(S.ONLINE, 0), (S.STALLED, 5), (S.ONLINE, 9)], []),  # back within the grace period
        ([(S.ONLINE, 0), (S.STALLED, 5), (S.STALLED, 16)], [("start", 5.0)]),
        ([(S.ONLINE, 0), (S.OFFLINE, 5), (S.CONNECTING, 20), (S.ONLINE, 30)], [("start", 5.0), ("end", 5.0)]),
        ([(S.CONNECTING, 0), (S.NOT_FOUND, 12)], [("start", 0.0)]),  # never came online at all
        ([(S.ONLINE, 0), (S.STALLED, 5), (S.STALLED, 16), (S.DISABLED, 20)], [("start", 5.0), ("end", 5.0)]),
        ([(S.DISABLED, 0), (S.DISABLED, 100)], []),
        ([(S.UNKNOWN, 0), (S.UNKNOWN, 100)], []),
        ([(S.ONLINE, 0), (S.DEGRADED, 50)], []),
    ],
    ids=["blip", "stall", "offline-then-back", "never-online", "disabled-ends", "disabled", "unknown", "degraded"],
)
def test_transitions(steps: list[tuple[S, float]], expected: list[tuple[str, float]]) -> None:
    tracker = VideoLossTracker("cam", grace_s=10.0)
    events = [e for state, t in steps for e in tracker.update(state, t)]
    assert [(e.phase.value, e.start_s) for e in events] == expected
    assert all(e.type is EventType.VIDEO_LOSS and e.zone == CAMERA_ZONE for e in events)


def test_poll_starts_a_loss_without_a_new_state() -> None:
    tracker = VideoLossTracker("cam", grace_s=10.0)
    assert tracker.update(S.STALLED, 0.0) == []
    assert tracker.poll(5.0) == []
    (start,) = tracker.poll(10.0)
    assert start.phase is EventPhase.START and tracker.active
    (end,) = tracker.flush(20.0)
    assert end.phase is EventPhase.END and end.end_s == 20.0 and not tracker.active


def test_negative_grace_is_refused() -> None:
    with pytest.raises(ValueError, match="grace_s"):
        VideoLossTracker("cam", grace_s=-1)
