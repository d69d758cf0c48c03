"""Reconnect discipline: capped exponential backoff with full jitter per camera, and a per-worker budget
of stream opens per second shared by all of its cameras.

Why both: jitter alone spreads one camera's retries, but when a whole district's network comes back,
2,000 cameras whose backoff happens to expire in the same second would all call ``av.open`` at once
(4 ms of CPU each at 360p, 25 ms at 1080p, and a burst of RTSP handshakes on the uplink). The budget
turns that into a steady ramp.
"""

from __future__ import annotations

import random
import threading
import time
from collections import deque
from dataclasses import dataclass

# The first retry of a transient failure waits up to 1 s: most RTSP drops are a camera rebooting its
# encoder or a switch port flapping, and they are back within seconds.
BASE_DELAY_S = 1.0
# Transient failures are retried at least every 60 s: an operator looking at the wall expects a camera
# that came back to show up within a minute.
TRANSIENT_CAP_S = 60.0
# Permanent failures (401, 404) have a ceiling of at least 30 s and draw from its upper half, so they are
# retried at most every 15 s: cameras count failed logins and some lock the account after a handful
# within minutes; a wrong path does not fix itself either.
PERMANENT_FLOOR_S = 30.0
# ... and at most 300 s: a registry change restarts the camera at once, so this only bounds how long a fix
# made on the camera itself (password reset, stream re-created) goes unnoticed.
PERMANENT_CAP_S = 300.0
# The exponent stops growing here; 2**16 s is far past every cap, and larger powers only risk overflow.
_MAX_DOUBLINGS = 16
# A worker opens at most this many streams per second. av.open costs 4 ms (360p) to 25 ms (1080p) of CPU,
# so 20/s is at most half a core even at 1080p, and 2,000 cameras of a district that comes back online
# reconnect over 100 s instead of in the same second.
OPENS_PER_SECOND = 20
# How many grant times the budget remembers, for the counters operators and tests read.
_GRANT_LOG = 4096


@dataclass(frozen=True, slots=True)
class BackoffPolicy:
    """Capped exponential backoff with full jitter: attempt ``n`` waits uniform in ``[0, ceiling(n)]``."""

    base_s: float = BASE_DELAY_S
    transient_cap_s: float = TRANSIENT_CAP_S
    permanent_floor_s: float = PERMANENT_FLOOR_S
    permanent_cap_s: float = PERMANENT_CAP_S

    def __post_init__(self) -> None:
        if not 0 < self.base_s <= self.transient_cap_s:
            raise ValueError(f"base_s must be in (0, transient_cap_s], got {self.base_s}")
        if not 0 <= self.permanent_floor_s <= self.permanent_cap_s:
            raise ValueError(f"permanent_floor_s must be in [0, permanent_cap_s], got {self.permanent_floor_s}")

    def ceiling(self, attempt: int, permanent: bool) -> float:
        """The largest delay attempt ``attempt`` (0-based: the first retry after a failure) may draw."""
        exp = self.base_s * float(1 << min(max(attempt, 0), _MAX_DOUBLINGS))
        if permanent:
            return min(self.permanent_cap_s, max(exp, self.permanent_floor_s))
        return min(self.transient_cap_s, exp)

    def delay(self, attempt: int, permanent: bool, rng: random.Random) -> float:
        """Seconds to wait before reconnect ``attempt``: full jitter, uniform in ``[0, ceiling]``.

        Full jitter (not "half" or "equal" jitter) spreads a synchronised fleet the most: after one shared
        failure, the retries of N cameras are uniform over the whole window instead of bunched at its end.
        """
        ceiling = self.ceiling(attempt, permanent)
        if permanent:
            # Permanent failures draw from the upper half only ("equal jitter"): still spread, but never a
            # quick retry of a password the camera has just refused.
            return rng.uniform(ceiling / 2, ceiling)
        return rng.uniform(0.0, ceiling)


def backoff_delay(attempt: int, permanent: bool, rng: random.Random) -> float:
    """The default policy's delay before reconnect ``attempt`` (0-based)."""
    return BackoffPolicy().delay(attempt, permanent, rng)


class OpenBudget:
    """At most ``per_second`` stream opens in any one-second window, for all cameras of a worker process.

    A sliding window (the time of the last ``per_second`` grants), not a token bucket: a full bucket lets a
    burst of ``burst + rate`` through in one second, and the point is a hard per-second limit. Thread-safe;
    waiters sleep on the caller's stop event, so a stopping worker never hangs here.
    """

    def __init__(self, per_second: int = OPENS_PER_SECOND) -> None:
        if per_second < 1:
            raise ValueError(f"opens per second must be at least 1, got {per_second}")
        self.per_second = per_second
        self._window: deque[float] = deque(maxlen=per_second)
        self._log: deque[float] = deque(maxlen=_GRANT_LOG)
        self._lock = threading.Lock()
        self.opens = 0
        self.waits = 0
        self.waited_s = 0.0

    def try_acquire(self) -> float:
        """Take a grant if one is free now (returns 0.0), else return how long to wait before asking again."""
        with self._lock:
            now = time.monotonic()
            if len(self._window) == self.per_second:
                wait = self._window[0] + 1.0 - now
                if wait > 0:
                    return wait
            self._window.append(now)
            self._log.append(now)
            self.opens += 1
            return 0.0

    def acquire(self, stop: threading.Event) -> bool:
        """Take one open grant, waiting for it; False if ``stop`` was set while waiting."""
        waited = False
        while True:
            wait = self.try_acquire()
            if wait == 0.0:
                return True
            if not waited:
                waited = True
                with self._lock:
                    self.waits += 1
            with self._lock:
                self.waited_s += wait
            if stop.wait(wait):
                return False

    def grants(self) -> list[float]:
        """Monotonic times of the most recent grants (up to 4,096), oldest first."""
        with self._lock:
            return list(self._log)

    def max_in_window(self, window_s: float = 1.0) -> int:
        """The most grants any ``window_s``-long window held, over the remembered grants."""
        times = self.grants()
        best = lo = 0
        for hi, t in enumerate(times):
            while t - times[lo] >= window_s:
                lo += 1
            best = max(best, hi - lo + 1)
        return best
