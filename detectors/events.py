"""The event lifecycle: start, updates, end; minimum duration, cooldown per zone, loitering, and a cap per hour.

Zone events (motion, loitering) are per detect zone. Camera-wide events (tamper, video loss, and the
summary sent when the hourly cap is hit) carry the zone :data:`CAMERA_ZONE`, which no real zone can be named.
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass, field
from enum import StrEnum

from detectors.motion import BBox, MotionResult

# Zone names start with a letter, digit or underscore (detectors.zones), so "*" never clashes with one.
CAMERA_ZONE = "*"
HOUR_S = 3600.0
# Frame times are sums of float steps (70.9 + 0.4 is 71.29999...): durations are compared with this slack.
_EPS_S = 1e-6


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
    """One lifecycle message of one event. Times are in the clock of the frames (see ``LumaFrame.t_s``).

    ``suppressed`` is non-zero only on the cap summary (zone ``"*"``): how many event starts the hourly
    cap has held back so far.
    """

    camera_id: str
    zone: str
    type: EventType
    phase: EventPhase
    start_s: float
    t_s: float
    end_s: float | None
    peak_fraction: float
    bbox: BBox | None
    suppressed: int = 0


@dataclass(frozen=True, slots=True)
class EventParams:
    """Timing rules of the lifecycle."""

    # Activity must persist this long before an event starts (several analysed frames at 5 fps)...
    min_duration_s: float = 0.6
    # ... where a gap shorter than this does not break it: an object at the edge of visibility flickers
    # around the zone threshold from frame to frame. A small person whose brightness matches the ground is
    # seen in every second or third analysed frame, with up to four misses in a row (0.8 s at 5 fps); noise
    # and weather that survive the kernel give isolated sightings seconds apart, so a second bridges the one
    # without chaining the other (bench_accuracy: 0.5 s missed such people, 1 s no nuisance alert more).
    persistence_gap_s: float = 1.0
    end_quiet_s: float = 4.0
    cooldown_s: float = 30.0
    zone_min_fraction: float = 0.01
    # An update at most this often keeps the wall's box and peak current without flooding it.
    update_interval_s: float = 5.0
    # Activity in one zone for longer than this (without a gap of end_quiet_s) is also loitering.
    loiter_s: float = 60.0
    # Zone event starts per camera in any hour; beyond it one summary replaces them (0 = no cap).
    max_alerts_per_hour: int = 30
    tamper_cooldown_s: float = 300.0

    def __post_init__(self) -> None:
        for name in ("min_duration_s", "persistence_gap_s", "cooldown_s", "loiter_s", "tamper_cooldown_s"):
            if getattr(self, name) < 0:
                raise ValueError(f"EventParams.{name} must be >= 0, got {getattr(self, name)!r}")
        if self.end_quiet_s <= 0 or self.update_interval_s <= 0:
            raise ValueError("EventParams.end_quiet_s and update_interval_s must be > 0")
        if self.max_alerts_per_hour < 0:
            raise ValueError(f"EventParams.max_alerts_per_hour must be >= 0, got {self.max_alerts_per_hour!r}")


@dataclass(slots=True)
class _ZoneState:
    candidate_since: float | None = None
    last_seen: float = 0.0
    active: bool = False
    silent: bool = False  # started while the cap was hit: its messages are held back
    loitering: bool = False
    start_s: float = 0.0
    last_motion_s: float = 0.0
    last_update_s: float = 0.0
    peak: float = 0.0
    bbox: BBox | None = None
    cooldown_until: float = field(default=float("-inf"))
    loiter_cooldown_until: float = field(default=float("-inf"))


@dataclass(slots=True)
class _Condition:
    active: bool = False
    start_s: float = 0.0
    peak: float = 0.0
    cooldown_until: float = field(default=float("-inf"))


class EventTracker:
    """Turns a camera's :class:`MotionResult` stream and tamper conditions into :class:`Event` messages."""

    def __init__(self, camera_id: str, params: EventParams) -> None:
        self.camera_id = camera_id
        self.params = params
        self._zones: dict[str, _ZoneState] = {}
        self._conditions: dict[EventType, _Condition] = {}
        self._starts: deque[float] = deque()
        self._capped_since: float | None = None
        self._suppressed = 0

    def _event(self, zone: str, st: _ZoneState, kind: EventType, phase: EventPhase, t_s: float) -> Event:
        end = st.last_motion_s if phase is EventPhase.END else None
        return Event(self.camera_id, zone, kind, phase, st.start_s, t_s, end, st.peak, st.bbox)

    def _admit(self, t: float, out: list[Event]) -> bool:
        """Count a zone event start against the hourly cap; False (and a summary) when it is used up."""
        cap = self.params.max_alerts_per_hour
        while self._starts and self._starts[0] <= t - HOUR_S:
            self._starts.popleft()
        if cap == 0 or len(self._starts) < cap:
            self._starts.append(t)
            return True
        self._suppressed += 1
        if self._capped_since is None:
            self._capped_since = t
            out.append(self._summary(EventPhase.START, t))
        return False

    def _summary(self, phase: EventPhase, t: float) -> Event:
        start = self._capped_since if self._capped_since is not None else t
        end = t if phase is EventPhase.END else None
        return Event(self.camera_id, CAMERA_ZONE, EventType.MOTION, phase, start, t, end, 0.0, None, self._suppressed)

    def _check_cap_end(self, t: float, out: list[Event]) -> None:
        if self._capped_since is None:
            return
        while self._starts and self._starts[0] <= t - HOUR_S:
            self._starts.popleft()
        if len(self._starts) < self.params.max_alerts_per_hour:
            out.append(self._summary(EventPhase.END, t))
            self._capped_since, self._suppressed = None, 0

    def update(self, result: MotionResult) -> list[Event]:
        """Feed one frame's motion result; returns the lifecycle messages it caused."""
        p, t = self.params, result.t_s
        out: list[Event] = []
        self._check_cap_end(t, out)
        moving = {a.zone: a for a in result.zones if a.fraction >= p.zone_min_fraction}
        for name, act in moving.items():
            st = self._zones.setdefault(name, _ZoneState())
            st.last_seen = t
            if st.active:
                st.last_motion_s = t
                if act.fraction > st.peak:
                    st.peak, st.bbox = act.fraction, act.bbox
                self._loiter(name, st, t, out)
                if t - st.last_update_s >= p.update_interval_s and not st.silent:
                    st.last_update_s = t
                    out.append(self._event(name, st, EventType.MOTION, EventPhase.UPDATE, t))
                continue
            if st.candidate_since is None:
                st.candidate_since = t
                st.peak, st.bbox = act.fraction, act.bbox
            elif act.fraction > st.peak:
                st.peak, st.bbox = act.fraction, act.bbox
            if t - st.candidate_since >= p.min_duration_s - _EPS_S and t >= st.cooldown_until:
                st.active = True
                st.start_s = st.candidate_since
                st.last_motion_s = st.last_update_s = t
                st.silent = not self._admit(t, out)
                if not st.silent:
                    out.append(self._event(name, st, EventType.MOTION, EventPhase.START, t))
        for name, st in self._zones.items():
            if name in moving or result.recalibrating:
                continue  # a recalibrating frame says nothing about the zone: neither start nor end on it
            if t - st.last_seen >= p.persistence_gap_s - _EPS_S:
                st.candidate_since = None
            if st.active and t - st.last_motion_s >= p.end_quiet_s - _EPS_S:
                out.extend(self._end(name, st, t))
        return out

    def _loiter(self, name: str, st: _ZoneState, t: float, out: list[Event]) -> None:
        if st.loitering or t - st.start_s < self.params.loiter_s or t < st.loiter_cooldown_until:
            return
        st.loitering = True
        if not st.silent and self._admit(t, out):
            out.append(self._event(name, st, EventType.LOITERING, EventPhase.START, t))
        else:
            st.silent = True

    def _end(self, name: str, st: _ZoneState, t: float) -> list[Event]:
        st.active = False
        # The cooldown runs from the last motion, so a flickering zone cannot re-alert every few seconds.
        st.cooldown_until = st.last_motion_s + self.params.cooldown_s
        events = []
        if not st.silent:
            events.append(self._event(name, st, EventType.MOTION, EventPhase.END, t))
            if st.loitering:
                st.loiter_cooldown_until = st.cooldown_until
                events.append(self._event(name, st, EventType.LOITERING, EventPhase.END, t))
        st.peak, st.bbox, st.silent, st.loitering = 0.0, None, False, False
        return events

    def condition(self, kind: EventType, present: bool, t: float, level: float = 0.0) -> list[Event]:
        """Camera-wide condition (a tamper kind), already confirmed by its detector: start or end its event."""
        c = self._conditions.setdefault(kind, _Condition())
        if present and not c.active:
            if t < c.cooldown_until:
                return []
            c.active, c.start_s, c.peak = True, t, level
            return [Event(self.camera_id, CAMERA_ZONE, kind, EventPhase.START, t, t, None, level, None)]
        if present:
            c.peak = max(c.peak, level)
            return []
        if c.active:
            c.active = False
            c.cooldown_until = t + self.params.tamper_cooldown_s
            return [Event(self.camera_id, CAMERA_ZONE, kind, EventPhase.END, c.start_s, t, t, c.peak, None)]
        return []

    def flush(self, t_s: float) -> list[Event]:
        """End every open event (the stream ended or the camera was removed)."""
        out = [e for name, st in self._zones.items() if st.active for e in self._end(name, st, t_s)]
        for kind in [k for k, c in self._conditions.items() if c.active]:
            out.extend(self.condition(kind, False, t_s))
        if self._capped_since is not None:
            out.append(self._summary(EventPhase.END, t_s))
            self._capped_since, self._suppressed = None, 0
        return out
