"""Publishing alerts: lifecycle messages to the wall feed, one incident per event to the case queue."""

from __future__ import annotations

from typing import cast

import redis

from alerts.models import Alert
from detectors.events import EventPhase

ALERTS_STREAM = "sharpeyes:alerts"
INCIDENTS_STREAM = "sharpeyes:incidents"
ALERT_KEY = "sharpeyes:alert:{id}"
DEDUP_KEY = "sharpeyes:dedup:{key}"
# A republished event is recognised for this long: far longer than any outbox backlog or worker restart.
DEDUP_TTL_S = 7 * 24 * 3600
# The latest state of each alert is kept for the snapshot retention's default, 30 days.
ALERT_TTL_S = 30 * 24 * 3600

# One script, so the wall message, the alert's latest state, the dedup mark and the incident are written
# together or not at all: a worker that dies between two of them cannot leave an incident half-published.
_PUBLISH = """
local incident_id = false
if ARGV[4] == '1' then
  if redis.call('SET', KEYS[3], '1', 'NX', 'EX', ARGV[3]) then
    incident_id = redis.call('XADD', KEYS[4], 'MAXLEN', '~', ARGV[2], '*', 'alert', ARGV[1])
  end
end
redis.call('XADD', KEYS[2], 'MAXLEN', '~', ARGV[2], '*', 'alert', ARGV[1])
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[5])
return incident_id
"""


class AlertPublisher:
    """Writes alerts to Redis. Raises ``redis.RedisError`` when Redis is unreachable: the caller retries."""

    def __init__(self, client: redis.Redis, maxlen: int) -> None:
        self._client = client
        self._maxlen = maxlen
        self._script = client.register_script(_PUBLISH)

    def publish(self, alert: Alert) -> str | None:
        """Publish one lifecycle message; returns the incident's stream id when this call created it."""
        payload = alert.model_dump_json()
        keys = [
            ALERT_KEY.format(id=alert.id),
            ALERTS_STREAM,
            DEDUP_KEY.format(key=alert.idempotency_key),
            INCIDENTS_STREAM,
        ]
        is_incident = "1" if alert.phase is EventPhase.START else "0"
        result = self._script(keys=keys, args=[payload, self._maxlen, DEDUP_TTL_S, is_incident, ALERT_TTL_S])
        return cast(bytes, result).decode() if result else None
