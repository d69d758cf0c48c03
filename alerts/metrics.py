"""Incident-path metrics: counted where they happen, kept in Redis, rendered as Prometheus text by the API.

- Counters (alerts per type and phase, incidents, merges, dedup hits) are incremented by the publish scripts
  themselves, so they count what Redis accepted, once, whichever worker sent it.
- Each worker's drain reports its outbox (depth, bytes, quota, alarm) under a key that expires when the worker
  stops reporting, and adds its publish-latency histogram to a shared one.
- Consumer lag and pending counts per group come from ``XINFO GROUPS`` at scrape time.
"""

from __future__ import annotations

import bisect
import json
import math
import threading
from collections.abc import Iterable
from dataclasses import asdict, dataclass
from typing import Any, cast

import redis

from alerts.consumer import dead_letter_stream
from alerts.publisher import ALERTS_STREAM, COUNTERS, INCIDENTS_STREAM

WORKER_KEY = "sharpeyes:metrics:outbox:{worker}"
WORKER_PATTERN = "sharpeyes:metrics:outbox:*"
LATENCY_KEY = "sharpeyes:metrics:publish_latency"
# A worker that has not reported for three report intervals is gone: its figures disappear with it.
REPORT_TTL_S = 30
# From a millisecond (Redis up, drain awake) to an hour (a long outage drained): both ends matter to on-call.
LATENCY_BUCKETS_S: tuple[float, ...] = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0)
LATENCY_BUCKETS_S += (10.0, 30.0, 60.0, 300.0, 900.0, 3600.0)
CONTENT_TYPE = "text/plain; version=0.0.4; charset=utf-8"


class LatencyHistogram:
    """A local Prometheus-style histogram whose increments are shipped to Redis in batches. Thread-safe."""

    def __init__(self, buckets: tuple[float, ...] = LATENCY_BUCKETS_S) -> None:
        self.buckets = buckets
        self._lock = threading.Lock()
        self._counts = [0] * (len(buckets) + 1)
        self._sum = 0.0

    def observe(self, seconds: float) -> None:
        """Count one observation."""
        index = bisect.bisect_left(self.buckets, seconds)
        with self._lock:
            self._counts[index] += 1
            self._sum += seconds

    def take(self) -> tuple[list[int], float]:
        """The counts per bucket (not cumulative, last one is +Inf) and the sum since the last take; resets."""
        with self._lock:
            counts, total = self._counts, self._sum
            self._counts = [0] * (len(self.buckets) + 1)
            self._sum = 0.0
        return counts, total

    def give_back(self, counts: list[int], total: float) -> None:
        """Return a take that could not be shipped (Redis down), so nothing is lost."""
        with self._lock:
            for i, c in enumerate(counts):
                self._counts[i] += c
            self._sum += total


@dataclass(frozen=True, slots=True)
class WorkerReport:
    """One worker's outbox, as its drain last saw it."""

    worker: str
    depth: int
    bytes: int
    quota_bytes: int
    full: bool
    rejected: int
    quarantined: int
    adopted: int
    published: int


def report_worker(client: redis.Redis, report: WorkerReport, histogram: LatencyHistogram) -> None:
    """Write a worker's report and ship its latency observations. Raises ``redis.RedisError``."""
    counts, total = histogram.take()
    try:
        with client.pipeline(transaction=True) as pipe:
            pipe.set(WORKER_KEY.format(worker=report.worker), json.dumps(asdict(report)), ex=REPORT_TTL_S)
            for bucket, count in zip((*histogram.buckets, math.inf), counts, strict=True):
                if count:
                    pipe.hincrby(LATENCY_KEY, _le(bucket), count)
            if any(counts):
                pipe.hincrby(LATENCY_KEY, "count", sum(counts))
                pipe.hincrbyfloat(LATENCY_KEY, "sum", total)
            pipe.execute()
    except redis.RedisError:
        histogram.give_back(counts, total)
        raise


def _le(bucket: float) -> str:
    return "+Inf" if math.isinf(bucket) else repr(bucket)


def _escape(value: str) -> str:
    return value.replace("\\", "\\\\").replace('"', '\\"').replace("\n", "\\n")


def _labels(labels: dict[str, str]) -> str:
    if not labels:
        return ""
    return "{" + ",".join(f'{k}="{_escape(v)}"' for k, v in labels.items()) + "}"


class _Text:
    def __init__(self) -> None:
        self.lines: list[str] = []

    def family(self, name: str, kind: str, help_text: str, samples: Iterable[tuple[dict[str, str], float]]) -> None:
        self.lines.append(f"# HELP {name} {help_text}")
        self.lines.append(f"# TYPE {name} {kind}")
        for labels, value in samples:
            self.lines.append(f"{name}{_labels(labels)} {_number(value)}")


def _number(value: float) -> str:
    if isinstance(value, int) or (isinstance(value, float) and value.is_integer() and abs(value) < 1e15):
        return str(int(value))
    return repr(float(value))


def _decode_hash(raw: Any) -> dict[str, str]:
    return {k.decode(): v.decode() for k, v in cast(dict[bytes, bytes], raw).items()}


def worker_reports(client: redis.Redis) -> list[WorkerReport]:
    """Every live worker's last report."""
    keys = sorted(cast(list[bytes], list(client.scan_iter(match=WORKER_PATTERN, count=500))))
    if not keys:
        return []
    out = []
    for raw in cast(list[bytes | None], client.mget(keys)):
        if raw is None:
            continue
        try:
            out.append(WorkerReport(**json.loads(raw)))
        except (ValueError, TypeError):
            continue  # a report from another version: skip rather than fail the scrape
    return out


def consumer_groups(client: redis.Redis) -> list[dict[str, Any]]:
    """``XINFO GROUPS`` of the incidents stream (empty when the stream does not exist yet)."""
    try:
        groups: list[dict[str, Any]] = client.xinfo_groups(INCIDENTS_STREAM)
    except redis.ResponseError:
        return []
    return groups


def render(client: redis.Redis) -> str:
    """All incident-path metrics in the Prometheus text exposition format. Raises ``redis.RedisError``."""
    counters = _decode_hash(client.hgetall(COUNTERS))
    text = _Text()
    alerts = []
    incidents = []
    for field, value in sorted(counters.items()):
        parts = field.split(":")
        if parts[0] == "alerts" and len(parts) == 3:
            alerts.append(({"type": parts[1], "phase": parts[2]}, float(value)))
        elif parts[0] == "incidents" and len(parts) == 2:
            incidents.append(({"kind": parts[1]}, float(value)))
    text.family("sharpeyes_alerts_total", "counter", "Alert lifecycle messages published, per type and phase.", alerts)
    text.family("sharpeyes_incidents_total", "counter", "Incidents put on the case queue, per kind.", incidents)
    text.family(
        "sharpeyes_incidents_merged_total",
        "counter",
        "Events folded into an earlier incident of the same camera and zone (storm control).",
        [({}, float(counters.get("merged", 0)))],
    )
    text.family(
        "sharpeyes_events_clustered_total",
        "counter",
        "Events put into a cluster of nearby cameras.",
        [({}, float(counters.get("clustered", 0)))],
    )
    text.family(
        "sharpeyes_dedup_hits_total",
        "counter",
        "Republished messages recognised by their idempotency key and dropped.",
        [({}, float(counters.get("dedup_hits", 0)))],
    )
    reports = worker_reports(client)
    for name, attr, help_text in (
        ("sharpeyes_outbox_depth", "depth", "Alerts in a worker's outbox not yet confirmed by Redis."),
        ("sharpeyes_outbox_bytes", "bytes", "Bytes a worker's outbox holds."),
        ("sharpeyes_outbox_quota_bytes", "quota_bytes", "A worker's outbox disk quota."),
        ("sharpeyes_outbox_full", "full", "1 while a worker's outbox is at its quota and refuses alerts (alarm)."),
    ):
        text.family(name, "gauge", help_text, [({"worker": r.worker}, float(getattr(r, attr))) for r in reports])
    text.family(
        "sharpeyes_outbox_rejected_total",
        "counter",
        "Alerts a worker could not store because its outbox was full (since the worker started).",
        [({"worker": r.worker}, float(r.rejected)) for r in reports],
    )
    text.family(
        "sharpeyes_outbox_quarantined",
        "gauge",
        "Alerts Redis refused as malformed, kept in the outbox's quarantine table for an operator.",
        [({"worker": r.worker}, float(r.quarantined)) for r in reports],
    )
    _latency(text, _decode_hash(client.hgetall(LATENCY_KEY)))
    groups = consumer_groups(client)
    lag, pending, dead = [], [], []
    for g in groups:
        name = g["name"].decode() if isinstance(g["name"], bytes) else str(g["name"])
        # ``lag`` is None when Redis cannot tell (entries were deleted): report the stream length instead.
        lag_value = g.get("lag")
        lag_n = lag_value if lag_value is not None else client.xlen(INCIDENTS_STREAM)
        lag.append(({"group": name}, float(lag_n)))
        pending.append(({"group": name}, float(g.get("pending", 0))))
        dead.append(({"group": name}, float(client.xlen(dead_letter_stream(name)))))
    text.family("sharpeyes_consumer_lag", "gauge", "Incidents not yet read by a consumer group.", lag)
    text.family("sharpeyes_consumer_pending", "gauge", "Incidents read but not acknowledged, per group.", pending)
    text.family("sharpeyes_dead_letters", "gauge", "Incidents in a group's dead-letter stream.", dead)
    text.family(
        "sharpeyes_stream_length",
        "gauge",
        "Entries in the wall feed and the case queue.",
        [({"stream": s}, float(client.xlen(s))) for s in (ALERTS_STREAM, INCIDENTS_STREAM)],
    )
    return "\n".join(text.lines) + "\n"


def _latency(text: _Text, raw: dict[str, str]) -> None:
    name = "sharpeyes_publish_latency_seconds"
    text.lines.append(f"# HELP {name} Time from an alert's outbox write to its publication in Redis.")
    text.lines.append(f"# TYPE {name} histogram")
    cumulative = 0
    for bucket in (*LATENCY_BUCKETS_S, math.inf):
        cumulative += int(raw.get(_le(bucket), 0))
        text.lines.append(f'{name}_bucket{{le="{_le(bucket)}"}} {cumulative}')
    text.lines.append(f"{name}_sum {_number(float(raw.get('sum', 0)))}")
    text.lines.append(f"{name}_count {int(raw.get('count', 0))}")
