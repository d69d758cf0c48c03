"""Incident aggregation across cameras: events of cameras within a radius and a time window become one incident.

How it works (all state in Redis, so any worker's drain can close any cluster, and a crash loses nothing):

1. The publish script (``alerts/publisher.py``) looks for an open cluster whose anchor (its first event's
   camera) lies within ``radius`` metres (``GEOSEARCH``) and whose first event started within ``window``
   seconds of this one. It appends the event there, or opens a new cluster anchored on this event, due to
   close ``window`` seconds (plus a short grace) later by Redis's clock.
2. Every drain thread polls the due set. :meth:`ClusterCloser.close_due` reads a due cluster's members, builds
   the incident in Python (the first event, listing the others in ``related``) and hands it to a script that
   publishes it only if the cluster is still due and no member joined meanwhile: the check and the ``XADD``
   are atomic, so two drains racing publish it exactly once, and a drain that dies mid-way leaves the
   cluster due for the next.

Storm control (same camera and zone, one incident per merge window) lives entirely in the publish script.
"""

from __future__ import annotations

import logging
from dataclasses import dataclass
from typing import cast

import redis
from pydantic import ValidationError

from alerts.models import SCHEMA_VERSION, Alert
from alerts.publisher import (
    CLUSTER_DUE,
    CLUSTER_GEO,
    CLUSTER_PREFIX,
    COUNTERS,
    DEDUP_TTL_S,
    INCIDENT_PREFIX,
    INCIDENTS_STREAM,
    IncidentPolicy,
)

log = logging.getLogger(__name__)

# Clusters closed per poll: enough for a storm, small enough that one poll never stalls the drain for long.
CLOSE_BATCH = 50

_CLOSE = """
if not redis.call('ZSCORE', KEYS[1], ARGV[1]) then
  return {'gone', ''}
end
if redis.call('LLEN', KEYS[4]) ~= tonumber(ARGV[2]) then
  return {'changed', ''}
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('DEL', KEYS[3], KEYS[4])
local sid = redis.call('XADD', KEYS[5], 'MAXLEN', '~', ARGV[4], '*',
  'alert', ARGV[3], 'schema_version', ARGV[6], 'idempotency_key', ARGV[1], 'kind', 'cluster', 'events', ARGV[2])
if ARGV[5] ~= '' then
  redis.call('XTRIM', KEYS[5], 'MINID', '~', ARGV[5])
end
redis.call('HSET', KEYS[7], 'stream_id', sid, 'events', ARGV[2])
redis.call('EXPIRE', KEYS[7], ARGV[7])
redis.call('HINCRBY', KEYS[6], 'incidents:cluster', 1)
return {'published', sid}
"""


@dataclass(frozen=True, slots=True)
class ClosedCluster:
    """A cluster published as one incident."""

    incident_id: str
    stream_id: str
    events: int


def cluster_incident(members: list[Alert]) -> Alert:
    """The incident of a cluster: its first event (by start), listing every other member in ``related``."""
    ordered = sorted(members, key=lambda a: (a.started_at, a.id))
    first = ordered[0]
    return first.model_copy(update={"related": tuple(m.related_view() for m in ordered[1:])})


class ClusterCloser:
    """Publishes clusters whose window has closed. Safe to run in every worker at once."""

    def __init__(self, client: redis.Redis, policy: IncidentPolicy) -> None:
        self._client = client
        self.policy = policy
        self._script = client.register_script(_CLOSE)

    def due(self) -> list[str]:
        """Ids of clusters whose window (plus grace) has passed, by Redis's clock."""
        sec, usec = self._client.time()
        now_ms = sec * 1000 + usec // 1000
        ids = cast(list[bytes], self._client.zrangebyscore(CLUSTER_DUE, "-inf", now_ms, start=0, num=CLOSE_BATCH))
        return [i.decode() for i in ids]

    def close(self, cluster_id: str) -> ClosedCluster | None:
        """Publish one cluster as an incident; None if another drain did, or it changed (try again)."""
        members_key = f"{CLUSTER_PREFIX}{cluster_id}:members"
        raw = cast(list[bytes], self._client.lrange(members_key, 0, -1))
        members: list[Alert] = []
        for item in raw:
            try:
                members.append(Alert.model_validate_json(item))
            except ValidationError as exc:
                log.error("cluster %s: skipping a member that is not a valid alert: %s", cluster_id, exc)
        if not members:
            # Nothing valid to publish: drop the cluster so it does not come due forever.
            self._client.zrem(CLUSTER_DUE, cluster_id)
            self._client.zrem(CLUSTER_GEO, cluster_id)
            self._client.delete(f"{CLUSTER_PREFIX}{cluster_id}", members_key)
            return None
        incident = cluster_incident(members)
        keys = [
            CLUSTER_DUE,
            CLUSTER_GEO,
            f"{CLUSTER_PREFIX}{cluster_id}",
            members_key,
            INCIDENTS_STREAM,
            COUNTERS,
            f"{INCIDENT_PREFIX}{cluster_id}",
        ]
        args: list[str | int | float] = [
            cluster_id,
            len(raw),
            incident.model_dump_json(),
            self.policy.incidents_maxlen,
            self.policy.minid(),
            SCHEMA_VERSION,
            DEDUP_TTL_S,
        ]
        status, ref = cast(list[bytes], self._script(keys=keys, args=args))
        if status != b"published":
            return None
        return ClosedCluster(cluster_id, ref.decode(), len(members))

    def close_due(self) -> list[ClosedCluster]:
        """Close every due cluster; returns those this call published."""
        closed = []
        for cluster_id in self.due():
            result = self.close(cluster_id)
            if result is not None:
                closed.append(result)
        return closed
