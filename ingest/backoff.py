"""Reconnect discipline: capped exponential backoff with full jitter, and a per-worker open budget."""

from __future__ import annotations

import random
import threading
import time
from dataclasses import dataclass, field

# The first retry of a transient failure waits up to 1 s: most RTSP drops are a camera rebooting its
# encoder or a switch port flapping, and they are back within seconds.
BASE_DELAY_S = 1.0
# Transient failures are retried at least every 60 s: an operator looking at the wall expects a camera
# that came back to show up within a minute.
TRANSIENT_CAP_S = 60.0
# Permanent failures (401, 404) need a change on the camera or in the registry; a registry change restarts
# the camera at once, so this only bounds how long a fix made on the camera itself goes unnoticed.
PERMANENT_CAP_S = 300.0
# A worker opens at most this many streams per second. av.open costs 4 ms (360p) to 25 ms (1080p) of CPU,
# so 20/s is at most half a core even at 1080p, and 2,000 cameras of a district that comes back online
# reconnect over 100 s instead of in the same second.
OPENS_PER_SECOND = 20.0
OPEN_BURST = 20


def backoff_delay(attempt: int, permanent: bool, rng: random.Random) -> float:
    """Seconds to wait before reconnect ``attempt`` (0-based), full jitter: uniform in [0, cap]."""
    cap = PERMANENT_CAP_S if permanent else TRANSIENT_CAP_S
    ceiling = min(cap, BASE_DELAY_S * (2 ** min(attempt, 16)))
    if permanent:
        # Never hammer a camera with bad credentials: lockout policies on cameras count failed logins.
        ceiling = max(ceiling, 30.0)
    return rng.uniform(0.0, ceiling)


@dataclass
class OpenBudget:
    """A token bucket shared by all cameras of one worker process; thread-safe."""

    rate: float = OPENS_PER_SECOND
    burst: int = OPEN_BURST
    _tokens: float = field(init=False)
    _stamp: float = field(init=False, default_factory=time.monotonic)
    _lock: threading.Lock = field(init=False, default_factory=threading.Lock)
    opens: int = field(init=False, default=0)
    waited_s: float = field(init=False, default=0.0)

    def __post_init__(self) -> None:
        self._tokens = float(self.burst)

    def acquire(self, stop: threading.Event) -> bool:
        """Take one open token, waiting for it; returns False if ``stop`` was set while waiting."""
        while True:
            with self._lock:
                now = time.monotonic()
                self._tokens = min(self.burst, self._tokens + (now - self._stamp) * self.rate)
                self._stamp = now
                if self._tokens >= 1.0:
                    self._tokens -= 1.0
                    self.opens += 1
                    return True
                wait = (1.0 - self._tokens) / self.rate
                self.waited_s += wait
            if stop.wait(wait):
                return False
