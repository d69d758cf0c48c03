"""The event lifecycle: motion that persists becomes an event with a start, updates and an end."""

from __future__ import annotations

from dataclasses import dataclass, field
from enum import StrEnum

from detectors.motion import BBox, MotionResult


class EventType(StrEnum):
    """Kinds of event a camera can raise."""

    MOTION = "motion"
    LOITERING = "loitering"
    TAMPER_COVERED = "tamper_covered"
    TAMPER_DEFOCUS = "tamper_defocus"
    TAMPER_MOVED = "tamper_moved"
    VIDEO_LOSS = "video_loss"


class EventPhase(StrEnum):
    """Where an event is in its life."""

    START = "start"
    UPDATE = "update"
    END = "end"


@dataclass(frozen=True, slots=True)
class Event:
    """One lifecycle message of one event. Times are in the clock of the frames (see ``LumaFrame.t_s``)."""

    camera_id: str
    zone: str
    type: EventType
    phase: EventPhase
    start_s: float
    t_s: float
    end_s: float | None
    peak_fraction: float
    bbox: BBox | None


@dataclass(frozen=True, slots=True)
class EventParams:
    """Timing rules of the lifecycle."""

    min_duration_s: float = 0.4
    end_quiet_s: float = 4.0
    cooldown_s: float = 30.0
    zone_min_fraction: float = 0.01
    # An update at most this often keeps the wall's box and peak current without flooding it.
    update_interval_s: float = 5.0


@dataclass(slots=True)
class _ZoneState:
    candidate_since: float | None = None
    active: bool = False
    start_s: float = 0.0
    last_motion_s: float = 0.0
    last_update_s: float = 0.0
    peak: float = 0.0
    bbox: BBox | None = None
    cooldown_until: float = field(default=float("-inf"))


class EventTracker:
    """Turns a camera's stream of :class:`MotionResult` into :class:`Event` messages, per zone."""

    def __init__(self, camera_id: str, params: EventParams) -> None:
        self.camera_id = camera_id
        self.params = params
        self._zones: dict[str, _ZoneState] = {}

    def _event(self, zone: str, st: _ZoneState, phase: EventPhase, t_s: float) -> Event:
        end = st.last_motion_s if phase is EventPhase.END else None
        return Event(self.camera_id, zone, EventType.MOTION, phase, st.start_s, t_s, end, st.peak, st.bbox)

    def update(self, result: MotionResult) -> list[Event]:
        """Feed one frame's motion result; returns the lifecycle messages it caused."""
        p, t = self.params, result.t_s
        out: list[Event] = []
        moving = {a.zone: a for a in result.zones if a.fraction >= p.zone_min_fraction}
        for name, act in moving.items():
            st = self._zones.setdefault(name, _ZoneState())
            if st.active:
                st.last_motion_s = t
                if act.fraction > st.peak:
                    st.peak, st.bbox = act.fraction, act.bbox
                if t - st.last_update_s >= p.update_interval_s:
                    st.last_update_s = t
                    out.append(self._event(name, st, EventPhase.UPDATE, t))
                continue
            if st.candidate_since is None:
                st.candidate_since = t
                st.peak, st.bbox = act.fraction, act.bbox
            elif act.fraction > st.peak:
                st.peak, st.bbox = act.fraction, act.bbox
            if t - st.candidate_since >= p.min_duration_s and t >= st.cooldown_until:
                st.active = True
                st.start_s = st.candidate_since
                st.last_motion_s = st.last_update_s = t
                out.append(self._event(name, st, EventPhase.START, t))
        for name, st in self._zones.items():
            if name in moving or result.recalibrating:
                continue  # a recalibrating frame says nothing about the zone: neither start nor end on it
            st.candidate_since = None
            if st.active and t - st.last_motion_s >= p.end_quiet_s:
                out.append(self._end(name, st, t))
        return out

    def _end(self, name: str, st: _ZoneState, t: float) -> Event:
        st.active = False
        # The cooldown runs from the last motion, so a flickering zone cannot re-alert every few seconds.
        st.cooldown_until = st.last_motion_s + self.params.cooldown_s
        event = self._event(name, st, EventPhase.END, t)
        st.peak, st.bbox = 0.0, None
        return event

    def flush(self, t_s: float) -> list[Event]:
        """End every open event (the stream ended or the camera was removed)."""
        return [self._end(name, st, t_s) for name, st in self._zones.items() if st.active]
