"""Publishing alerts: lifecycle messages to the wall feed, one incident per event to the case queue.

Everything one message changes in Redis happens in one Lua script, so a worker that dies mid-publish leaves
either all of it or none of it, and a republished message is recognised by its idempotency key:

- the wall message (``sharpeyes:alerts``) and the alert's latest state, unless a message of this event at the
  same or a later point of its life was published already (a republish after a crash);
- on an event's first start: storm control (another event of the same camera and zone within the merge
  window is folded into that incident), then either a cluster (nearby cameras, see ``alerts/aggregation.py``)
  or one incident on ``sharpeyes:incidents``;
- counters for ``/metrics`` (alerts per type and phase, incidents, merges, dedup hits).

The script derives a few key names from values (the storm owner's incident, the cluster found nearby), which
is fine on a standalone Redis/Valkey; Redis Cluster would need hash tags.
"""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from enum import StrEnum
from string import Template
from typing import TYPE_CHECKING, Any, cast

import redis

from alerts.models import SCHEMA_VERSION, Alert

if TYPE_CHECKING:
    from config.settings import Settings

ALERTS_STREAM = "sharpeyes:alerts"
INCIDENTS_STREAM = "sharpeyes:incidents"
ALERT_KEY = "sharpeyes:alert:{id}"
DEDUP_KEY = "sharpeyes:dedup:{key}"
STORM_KEY = "sharpeyes:storm:{camera_zone}"
INCIDENT_PREFIX = "sharpeyes:incident:"
CLUSTER_PREFIX = "sharpeyes:cluster:"
CLUSTER_GEO = "sharpeyes:clusters:geo"
CLUSTER_DUE = "sharpeyes:clusters:due"
COUNTERS = "sharpeyes:metrics:counters"
# A republished event is recognised for this long: far longer than any outbox backlog or worker restart.
DEDUP_TTL_S = 7 * 24 * 3600
# The latest state of each alert is kept for the snapshot retention's default, 30 days.
ALERT_TTL_S = 30 * 24 * 3600
# A cluster is closed this long after its window ends: the last member's publish may still be on its way.
CLUSTER_GRACE_MS = 2000
# A full cluster takes no more members (the next event nearby opens a new one): an incident listing hundreds of
# cameras is a city-wide event that needs a person already, and its message must stay a few hundred KB at most.
CLUSTER_MAX_MEMBERS = 200
# Redis GEO cannot index latitudes beyond +-85.05112878 (Web Mercator): cameras there are clustered at the edge.
_GEO_LAT_LIMIT = 85.05

# KEYS: alert state, wall stream, dedup mark, incidents stream, storm mark, counters, cluster geo, cluster due.
# ARGV: payload, phase, order, idempotency key, type, lon, lat, start ms, MINID ('' = no age trim).
# $-placeholders are the policy's constants, filled in once per publisher (fewer arguments to send per call).
_PUBLISH = Template("""
local payload, phase, order, key = ARGV[1], ARGV[2], tonumber(ARGV[3]), ARGV[4]
local last = redis.call('GET', KEYS[3])
if last and tonumber(last) >= order then
  -- a republish: written anyway (a counter), so WAITAOF on this connection also covers the first publish
  redis.call('HINCRBY', KEYS[6], 'dedup_hits', 1)
  return {'duplicate', ''}
end
redis.call('SET', KEYS[3], ARGV[3], 'EX', $dedup_ttl)
redis.call('XADD', KEYS[2], 'MAXLEN', '~', $wall_maxlen, '*', 'alert', payload, 'schema_version', '$schema')
redis.call('SET', KEYS[1], payload, 'EX', $alert_ttl)
redis.call('HINCRBY', KEYS[6], 'alerts:' .. ARGV[5] .. ':' .. phase, 1)
if phase ~= 'start' or last then
  return {'wall', ''}
end
if $merge_window_ms > 0 then
  local owner = redis.call('GET', KEYS[5])
  if owner then
    local meta = '$incident_prefix' .. owner
    redis.call('HINCRBY', meta, 'merged', 1)
    redis.call('RPUSH', meta .. ':merged', key)
    redis.call('LTRIM', meta .. ':merged', -1000, -1)
    redis.call('EXPIRE', meta, $dedup_ttl)
    redis.call('EXPIRE', meta .. ':merged', $dedup_ttl)
    redis.call('HINCRBY', KEYS[6], 'merged', 1)
    return {'merged', owner}
  end
  redis.call('SET', KEYS[5], key, 'PX', $merge_window_ms)
end
if $radius > 0 then
  local start_ms = tonumber(ARGV[8])
  local window_ms = $cluster_window * 1000
  local near = redis.call('GEOSEARCH', KEYS[7], 'FROMLONLAT', ARGV[6], ARGV[7], 'BYRADIUS', $radius, 'm', 'ASC')
  for _, cid in ipairs(near) do
    local ck = '$cluster_prefix' .. cid
    local anchor = redis.call('HGET', ck, 'start_ms')
    if not anchor then
      redis.call('ZREM', KEYS[7], cid)
    elseif math.abs(start_ms - tonumber(anchor)) <= window_ms
        and redis.call('LLEN', ck .. ':members') < $max_members then
      redis.call('RPUSH', ck .. ':members', payload)
      redis.call('HINCRBY', KEYS[6], 'clustered', 1)
      return {'clustered', cid}
    end
  end
  local now = redis.call('TIME')
  local now_ms = tonumber(now[1]) * 1000 + math.floor(tonumber(now[2]) / 1000)
  local ck = '$cluster_prefix' .. key
  redis.call('HSET', ck, 'start_ms', ARGV[8], 'opened_ms', now_ms)
  redis.call('RPUSH', ck .. ':members', payload)
  redis.call('GEOADD', KEYS[7], ARGV[6], ARGV[7], key)
  redis.call('ZADD', KEYS[8], now_ms + window_ms + $grace_ms, key)
  redis.call('HINCRBY', KEYS[6], 'clustered', 1)
  return {'clustered', key}
end
local sid = redis.call('XADD', KEYS[4], 'MAXLEN', '~', $incidents_maxlen, '*',
  'alert', payload, 'schema_version', '$schema', 'idempotency_key', key, 'kind', 'event')
if ARGV[9] ~= '' then
  redis.call('XTRIM', KEYS[4], 'MINID', '~', ARGV[9])
end
redis.call('HSET', '$incident_prefix' .. key, 'stream_id', sid)
redis.call('EXPIRE', '$incident_prefix' .. key, $dedup_ttl)
redis.call('HINCRBY', KEYS[6], 'incidents:event', 1)
return {'incident', sid}
""")


class PublishStatus(StrEnum):
    """What publishing one lifecycle message did."""

    INCIDENT = "incident"  # the event's start: a new incident on the case queue
    WALL = "wall"  # an update or end (or a start seen before): wall feed only
    DUPLICATE = "duplicate"  # published before (a republish after a crash or outage): nothing written
    MERGED = "merged"  # storm control: folded into an incident of the same camera and zone
    CLUSTERED = "clustered"  # held in a cluster of nearby cameras, published when its window closes


@dataclass(frozen=True, slots=True)
class PublishOutcome:
    """The status and, for incidents, the stream id; for merges and clusters, the incident it joined."""

    status: PublishStatus
    ref: str


@dataclass(frozen=True, slots=True)
class IncidentPolicy:
    """Retention of the two streams and the aggregation rules, from the settings."""

    wall_maxlen: int = 1_000_000
    incidents_maxlen: int = 1_000_000
    incidents_retention_s: float = 0.0  # 0: no MINID trimming
    merge_window_s: float = 0.0  # 0: every event is its own incident
    cluster_radius_m: float = 0.0  # 0: no clustering across cameras
    cluster_window_s: float = 60.0
    cluster_grace_ms: int = CLUSTER_GRACE_MS

    @classmethod
    def from_settings(cls, s: Settings) -> IncidentPolicy:
        """The policy the settings describe."""
        return cls(
            wall_maxlen=s.stream_maxlen,
            incidents_maxlen=s.incidents_maxlen,
            incidents_retention_s=s.incidents_retention_days * 86400.0,
            merge_window_s=s.incident_merge_window_s,
            cluster_radius_m=s.incident_cluster_radius_m,
            cluster_window_s=s.incident_cluster_window_s,
        )

    def minid(self, now_s: float | None = None) -> str:
        """The MINID trim point for the incidents stream, or '' when trimming by age is off."""
        if self.incidents_retention_s <= 0:
            return ""
        now = time.time() if now_s is None else now_s
        return f"{max(0, int((now - self.incidents_retention_s) * 1000))}-0"


def storm_key(camera_id: str, zone: str) -> str:
    """The storm-control key of a camera's zone (hashed: names may hold any character)."""
    digest = hashlib.sha256(f"{camera_id}\x1f{zone}".encode("utf-8", "surrogatepass")).hexdigest()[:24]
    return STORM_KEY.format(camera_zone=digest)


_PHASE_RANK = {"start": 0, "update": 1, "end": 2}


@dataclass(frozen=True, slots=True)
class Envelope:
    """What publishing needs to know about an alert, read from its JSON without a full validation.

    The drain publishes payloads our own model wrote; parsing them into :class:`Alert` again would cost
    more CPU than the publish itself. A payload that lacks a field is refused here (and quarantined).
    """

    payload: str
    key: str
    phase: str
    type: str
    order: int
    camera_id: str
    zone: str
    lon: float
    lat: float
    start_ms: int

    @classmethod
    def of(cls, alert: Alert, payload: str | None = None) -> Envelope:
        """The envelope of a model."""
        lon, lat = alert.location.coordinates
        return cls(
            payload if payload is not None else alert.model_dump_json(),
            alert.idempotency_key,
            alert.phase.value,
            alert.type.value,
            alert.order(),
            alert.camera_id,
            alert.zone,
            lon,
            lat,
            int(alert.started_at.timestamp() * 1000),
        )

    @classmethod
    def parse(cls, payload: str) -> Envelope:
        """The envelope of a stored payload. Raises ``ValueError`` naming what is wrong."""
        try:
            d = json.loads(payload)
            if d.get("schema_version") != SCHEMA_VERSION:
                raise ValueError(f"schema_version {d.get('schema_version')!r}, expected {SCHEMA_VERSION}")
            phase = str(d["phase"])
            updated = datetime.fromisoformat(d["updated_at"]).timestamp()
            lon, lat = (float(v) for v in d["location"]["coordinates"])
            return cls(
                payload,
                str(d["idempotency_key"]),
                phase,
                str(d["type"]),
                int(updated * 1000) * 4 + _PHASE_RANK[phase],
                str(d["camera_id"]),
                str(d["zone"]),
                lon,
                lat,
                int(datetime.fromisoformat(d["started_at"]).timestamp() * 1000),
            )
        except (KeyError, TypeError, AttributeError) as exc:
            raise ValueError(f"not an alert payload: missing or malformed {exc}") from None


def _outcome(raw: Any) -> PublishOutcome:
    status, ref = cast(list[bytes], raw)
    return PublishOutcome(PublishStatus(status.decode()), ref.decode())


class AlertPublisher:
    """Writes alerts to Redis. Raises ``redis.RedisError`` when Redis is unreachable: the caller retries."""

    def __init__(self, client: redis.Redis, maxlen: int, policy: IncidentPolicy | None = None) -> None:
        self._client = client
        self.policy = policy if policy is not None else IncidentPolicy(wall_maxlen=maxlen, incidents_maxlen=maxlen)
        p = self.policy
        script = _PUBLISH.substitute(
            dedup_ttl=DEDUP_TTL_S,
            alert_ttl=ALERT_TTL_S,
            wall_maxlen=int(p.wall_maxlen),
            incidents_maxlen=int(p.incidents_maxlen),
            merge_window_ms=max(0, round(p.merge_window_s * 1000)),
            radius=_lua_number(p.cluster_radius_m),
            cluster_window=_lua_number(p.cluster_window_s),
            grace_ms=int(p.cluster_grace_ms),
            max_members=CLUSTER_MAX_MEMBERS,
            schema=SCHEMA_VERSION,
            incident_prefix=INCIDENT_PREFIX,
            cluster_prefix=CLUSTER_PREFIX,
        )
        self._script = client.register_script(script)

    @classmethod
    def from_settings(cls, settings: Settings, client: redis.Redis) -> AlertPublisher:
        """A publisher with the retention and aggregation the settings ask for."""
        return cls(client, settings.stream_maxlen, IncidentPolicy.from_settings(settings))

    def with_client(self, client: redis.Redis) -> AlertPublisher:
        """The same publisher on another connection (the drain owns one, for WAITAOF)."""
        return AlertPublisher(client, self.policy.wall_maxlen, self.policy)

    @staticmethod
    def _call(env: Envelope, minid: str) -> tuple[list[str], list[str | int | float]]:
        keys = [
            ALERT_KEY.format(id=env.key),
            ALERTS_STREAM,
            DEDUP_KEY.format(key=env.key),
            INCIDENTS_STREAM,
            storm_key(env.camera_id, env.zone),
            COUNTERS,
            CLUSTER_GEO,
            CLUSTER_DUE,
        ]
        lat = max(-_GEO_LAT_LIMIT, min(_GEO_LAT_LIMIT, env.lat))
        args: list[str | int | float] = [env.payload, env.phase, env.order, env.key, env.type, env.lon, lat]
        args += [env.start_ms, minid]
        return keys, args

    def publish(self, alert: Alert) -> str | None:
        """Publish one lifecycle message; returns the incident's stream id when this call created it."""
        outcome = self.publish_one(alert)
        return outcome.ref if outcome.status is PublishStatus.INCIDENT else None

    def publish_one(self, alert: Alert, payload: str | None = None) -> PublishOutcome:
        """Publish one lifecycle message and say what it did."""
        keys, args = self._call(Envelope.of(alert, payload), self.policy.minid())
        return _outcome(self._script(keys=keys, args=args))

    def publish_batch(self, items: Sequence[Envelope]) -> list[PublishOutcome | redis.ResponseError]:
        """Publish envelopes in one round trip, in order.

        A connection failure raises (nothing is known about which ran: republish them all). A message Redis
        refuses comes back as its ``ResponseError`` in its place; the others still ran.
        """
        minid = self.policy.minid()
        # The context manager matters: a pipeline whose script check fails keeps its connection otherwise
        # (redis-py), and the drain's single-connection pool would then block.
        with self._client.pipeline(transaction=False) as pipe:
            for env in items:
                keys, args = self._call(env, minid)
                self._script(keys=keys, args=args, client=pipe)
            results = pipe.execute(raise_on_error=False)
        out: list[PublishOutcome | redis.ResponseError] = []
        for raw in results:
            if isinstance(raw, redis.ConnectionError | redis.TimeoutError):
                raise raw
            if isinstance(raw, redis.ResponseError):
                out.append(raw)
            elif isinstance(raw, Exception):
                raise raw
            else:
                out.append(_outcome(raw))
        return out


def _lua_number(value: float) -> str:
    """A float as a Lua literal."""
    return repr(float(value))
