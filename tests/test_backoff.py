"""Reconnect discipline: the backoff policy's ceilings and jitter, and the per-worker open budget."""

from __future__ import annotations

import random
import threading

import pytest

from ingest.backoff import BackoffPolicy, OpenBudget, backoff_delay


def test_transient_ceiling_doubles_from_base_up_to_cap() -> None:
    policy = BackoffPolicy(base_s=1.0, transient_cap_s=60.0)
    assert [policy.ceiling(n, permanent=False) for n in range(8)] == [1, 2, 4, 8, 16, 32, 60, 60]
    assert policy.ceiling(10_000, permanent=False) == 60.0  # no overflow for a camera down for months


def test_permanent_failures_wait_long_and_never_retry_quickly() -> None:
    policy = BackoffPolicy()
    rng = random.Random(1)
    assert policy.ceiling(0, permanent=True) == policy.permanent_floor_s
    assert policy.ceiling(20, permanent=True) == policy.permanent_cap_s
    delays = [policy.delay(n % 12, True, rng) for n in range(2000)]
    assert min(delays) >= policy.permanent_floor_s / 2
    assert max(delays) <= policy.permanent_cap_s


def test_full_jitter_spreads_a_synchronised_fleet_over_the_whole_window() -> None:
    rng = random.Random(7)
    delays = [backoff_delay(3, False, rng) for _ in range(4000)]
    assert 0.0 <= min(delays) < 0.1 and 7.9 < max(delays) <= 8.0
    # Uniform over [0, 8]: each second of the window gets about an eighth of the retries.
    buckets = [sum(1 for d in delays if k <= d < k + 1) for k in range(8)]
    assert all(400 <= b <= 600 for b in buckets), buckets


def test_policy_rejects_nonsense() -> None:
    with pytest.raises(ValueError, match="base_s"):
        BackoffPolicy(base_s=0)
    with pytest.raises(ValueError, match="permanent_floor_s"):
        BackoffPolicy(permanent_floor_s=500, permanent_cap_s=300)
    with pytest.raises(ValueError, match="at least 1"):
        OpenBudget(0)


def test_open_budget_never_grants_more_than_its_rate_in_any_second() -> None:
    budget = OpenBudget(per_second=25)
    stop = threading.Event()
    granted: list[int] = []
    lock = threading.Lock()

    def camera() -> None:
        if budget.acquire(stop):
            with lock:
                granted.append(1)

    threads = [threading.Thread(target=camera) for _ in range(60)]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=10)
    assert len(granted) == 60 == budget.opens
    assert budget.max_in_window(1.0) <= 25
    assert budget.waits >= 60 - 25  # the rest had to wait for the window to move on


def test_open_budget_wait_ends_when_the_worker_stops() -> None:
    budget = OpenBudget(per_second=1)
    stop = threading.Event()
    assert budget.acquire(stop)
    stop.set()
    assert budget.acquire(stop) is False
    assert budget.try_acquire() > 0
