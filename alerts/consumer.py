"""The reference case-queue consumer: ``sharpeyes:incidents`` to an HTTP endpoint, at least once, no loss.

The contract it implements is written up in docs/case-queue.md; in short, per consumer group:

- read new incidents with ``XREADGROUP``; acknowledge with ``XACK`` only after the endpoint accepted it (2xx,
  or 409 "already have it");
- an incident that was read but not acknowledged (endpoint down, consumer crashed) is taken again with
  ``XAUTOCLAIM`` once it has been idle for ``retry_s``, by whichever consumer of the group gets there;
- every delivery attempt is counted in Redis (``sharpeyes:cases:<group>:tries``); after ``max_tries`` failed
  attempts the incident moves to the group's dead-letter stream ``sharpeyes:incidents:dead:<group>`` (with the
  last error) and is acknowledged, atomically. A message that is not a valid incident goes there at once;
- dead letters of transient failures (connection refused, timeout, 5xx, 429) are redriven automatically once
  the endpoint answers again; the others by ``sharpeyes cases redrive``.

Delivery is at least once: a consumer killed between the endpoint's 2xx and its ``XACK`` delivers again, with
the same ``Idempotency-Key`` header, so the case system's dedup on that key gives exactly one case.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import threading
import time
from dataclasses import dataclass
from typing import Any, cast

import redis

# Where incidents go, and how one is read: alerts/delivery.py. Re-exported, the CLI and tests import them here.
from alerts.delivery import Delivery as Delivery
from alerts.delivery import DeliveryError as DeliveryError
from alerts.delivery import Incident as Incident
from alerts.delivery import StreamDelivery as StreamDelivery
from alerts.delivery import WebhookDelivery as WebhookDelivery
from alerts.delivery import parse_incident as parse_incident

INCIDENTS = "sharpeyes:incidents"  # == alerts.publisher.INCIDENTS_STREAM (no import: keeps this module light)
DEAD_LETTERS = "sharpeyes:incidents:dead:{group}"
TRIES_KEY = "sharpeyes:cases:{group}:tries"
REDRIVE_LOCK = "sharpeyes:cases:{group}:redrive"
# Dead letters are few and precious (each one is an incident nobody acted on): keep up to this many.
DEAD_LETTER_MAXLEN = 1_000_000
# A redrive holds its lock at most this long; a crashed consumer's lock expires so another can take over.
REDRIVE_LOCK_S = 120
# Consumers with nothing pending and idle this long are removed from the group (restarted consumers leave
# their old name behind).
STALE_CONSUMER_MS = 24 * 3600 * 1000

log = logging.getLogger(__name__)


def dead_letter_stream(group: str) -> str:
    """The dead-letter stream of a consumer group."""
    return DEAD_LETTERS.format(group=group)


@dataclass(frozen=True, slots=True)
class ConsumerConfig:
    """A consumer's identity and its retry policy."""

    group: str
    consumer: str
    max_tries: int = 10
    retry_s: float = 30.0
    batch: int = 50  # per read; a failing endpoint costs at most this many attempts per round
    block_ms: int = 1000  # XREADGROUP BLOCK: how long an idle consumer waits before its periodic work
    start: str = "0"  # where a new group starts: "0" = every incident still retained, "$" = only new ones

    def __post_init__(self) -> None:
        if not self.group or len(self.group) > 128 or any(c.isspace() for c in self.group):
            raise ValueError(f"consumer group {self.group!r}: 1 to 128 characters, no spaces")
        if self.max_tries < 1:
            raise ValueError(f"max_tries must be at least 1, got {self.max_tries}")
        if self.retry_s <= 0:
            raise ValueError(f"retry_s must be positive, got {self.retry_s}")


def default_consumer_name() -> str:
    """host-pid: unique per process, so two consumers never share a pending list by accident."""
    return f"{socket.gethostname()}-{os.getpid()}"


@dataclass(slots=True)
class ConsumerStats:
    """What a consumer has done."""

    delivered: int = 0
    failed_attempts: int = 0
    dead_lettered: int = 0
    redriven: int = 0
    reclaimed: int = 0


class CaseConsumer:
    """One member of a consumer group, delivering incidents until stopped."""

    def __init__(self, client: redis.Redis, delivery: Delivery, config: ConsumerConfig) -> None:
        self._r = client
        self._delivery = delivery
        self.config = config
        self.stats = ConsumerStats()
        self._claim_cursor = "0-0"
        self._tries = TRIES_KEY.format(group=config.group)
        self._dead = dead_letter_stream(config.group)
        self._endpoint_down = False
        self._next_probe = 0.0
        self._next_cleanup = 0.0

    def ensure_group(self) -> bool:
        """Create the consumer group (and the stream) if missing; True if it was created."""
        try:
            self._r.xgroup_create(INCIDENTS, self.config.group, id=self.config.start, mkstream=True)
        except redis.ResponseError as exc:
            if "BUSYGROUP" not in str(exc):
                raise
            return False
        log.info("consumer group %r created on %s, starting at %s", self.config.group, INCIDENTS, self.config.start)
        return True

    def run(self, stop: threading.Event) -> None:
        """Consume until ``stop`` is set; rides out Redis outages (retry every 1-10 s)."""
        self.ensure_group()
        delay = 1.0
        while not stop.is_set():
            try:
                self.step()
                delay = 1.0
            except (redis.ConnectionError, redis.TimeoutError) as exc:
                log.warning("Redis unreachable, retrying in %.0f s: %s", delay, exc)
                stop.wait(delay)
                delay = min(delay * 2, 10.0)  # 10 s: back within seconds of Redis, without hammering it
            except redis.ResponseError as exc:
                if "NOGROUP" in str(exc):  # Redis lost the group (restart without persistence): recreate it
                    log.error("consumer group %r vanished; recreating it: %s", self.config.group, exc)
                    self.ensure_group()
                else:
                    raise

    def step(self) -> int:
        """One round: retry what is due, read what is new, redrive dead letters if the endpoint is back."""
        done = self._reclaim()
        now = time.monotonic()
        if now >= self._next_probe and self._has_transient_dead_letters():
            self._next_probe = now + self.config.retry_s
            self.redrive(transient_only=True)
        reply = cast(
            list[Any],
            self._r.xreadgroup(
                self.config.group,
                self.config.consumer,
                {INCIDENTS: ">"},
                count=self.config.batch,
                block=None if done else self.config.block_ms,
            ),
        )
        for _stream, messages in reply or []:
            for sid, fields in messages:
                self._process(sid.decode(), fields)
                done += 1
        if now >= self._next_cleanup:
            self._next_cleanup = now + 3600
            self._forget_stale_consumers()
        return done

    def _reclaim(self) -> int:
        idle_ms = int(self.config.retry_s * 1000)
        reply: list[Any] = self._r.xautoclaim(
            INCIDENTS,
            self.config.group,
            self.config.consumer,
            min_idle_time=idle_ms,
            start_id=self._claim_cursor,
            count=self.config.batch,
        )
        next_id, messages = reply[0], reply[1]
        deleted = reply[2] if len(reply) > 2 else []
        self._claim_cursor = next_id.decode() if isinstance(next_id, bytes) else str(next_id)
        for sid in deleted:
            self._trimmed(sid.decode())
        for sid, fields in messages:
            self.stats.reclaimed += 1
            self._process(sid.decode(), fields)
        return len(messages) + len(deleted)

    def _process(self, sid: str, fields: dict[bytes, bytes] | None) -> None:
        if not fields:
            self._trimmed(sid)
            return
        try:
            incident = parse_incident(sid, fields)
        except ValueError as exc:
            log.error("incident %s is malformed, dead-lettered at once: %s", sid, exc)
            self._dead_letter(sid, fields, str(exc), tries=0, transient=False)
            return
        tries = int(self._r.hincrby(self._tries, sid, 1))
        try:
            self._delivery.deliver(incident)
        except DeliveryError as exc:
            self.stats.failed_attempts += 1
            self._endpoint_down = exc.transient
            if tries >= self.config.max_tries:
                log.error("incident %s failed %d times, dead-lettered: %s", sid, tries, exc)
                self._dead_letter(sid, fields, str(exc), tries, exc.transient)
            else:
                log.warning("incident %s not delivered (try %d of %d): %s", sid, tries, self.config.max_tries, exc)
            return
        with self._r.pipeline(transaction=True) as pipe:
            pipe.xack(INCIDENTS, self.config.group, sid)
            pipe.hdel(self._tries, sid)
            pipe.execute()
        self.stats.delivered += 1
        if self._endpoint_down:
            self._endpoint_down = False
            self._next_probe = 0.0  # it answers again: redrive the dead letters on the next round

    def _dead_letter(self, sid: str, fields: dict[bytes, bytes], error: str, tries: int, transient: bool) -> None:
        entry: dict[str, str | bytes] = {
            "source_id": sid,
            "group": self.config.group,
            "tries": str(tries),
            "error": error[:2000],
            "transient": "1" if transient else "0",
            "failed_at": f"{time.time():.3f}",
        }
        for name in (b"alert", b"idempotency_key", b"schema_version", b"kind"):
            if name in fields:
                entry[name.decode()] = fields[name]
        with self._r.pipeline(transaction=True) as pipe:
            pipe.xadd(self._dead, entry, maxlen=DEAD_LETTER_MAXLEN, approximate=True)  # type: ignore[arg-type]
            pipe.xack(INCIDENTS, self.config.group, sid)
            pipe.hdel(self._tries, sid)
            pipe.execute()
        self.stats.dead_lettered += 1

    def _trimmed(self, sid: str) -> None:
        log.error(
            "incident %s was trimmed from %s before group %r acknowledged it: raise SHARPEYES_INCIDENTS_MAXLEN / "
            "SHARPEYES_INCIDENTS_RETENTION_DAYS above the longest consumer outage",
            sid,
            INCIDENTS,
            self.config.group,
        )
        self._dead_letter(sid, {}, "trimmed from the stream before delivery", tries=0, transient=False)

    def _has_transient_dead_letters(self) -> bool:
        rows = cast(list[Any], self._r.xrange(self._dead, count=self.config.batch))
        return any(fields.get(b"transient") == b"1" for _, fields in rows)

    def redrive(self, transient_only: bool = False) -> int:
        """Deliver dead letters again, oldest first; stops at the first failure. Returns how many went out."""
        token = f"{self.config.consumer}:{time.time()}"
        lock = REDRIVE_LOCK.format(group=self.config.group)
        if not self._r.set(lock, token, nx=True, ex=REDRIVE_LOCK_S):
            return 0
        sent = 0
        try:
            after = "-"
            while True:
                rows = cast(list[Any], self._r.xrange(self._dead, min=after, count=self.config.batch))
                if not rows:
                    break
                for did, fields in rows:
                    did_s = did.decode()
                    after = f"({did_s}"
                    if transient_only and fields.get(b"transient") != b"1":
                        continue
                    source = fields.get(b"source_id", b"?").decode()
                    try:
                        incident = parse_incident(source, fields)
                    except ValueError:
                        continue  # poison stays for a person to look at
                    try:
                        self._delivery.deliver(incident)
                    except DeliveryError as exc:
                        log.info("redrive paused, the endpoint still fails: %s", exc)
                        return sent
                    self._r.xdel(self._dead, did_s)
                    sent += 1
                    self.stats.redriven += 1
        finally:
            if self._r.get(lock) == token.encode():
                self._r.delete(lock)
        if sent:
            log.warning("redrove %d dead-lettered incident(s) of group %r", sent, self.config.group)
        return sent

    def _forget_stale_consumers(self) -> None:
        try:
            consumers: list[dict[str, Any]] = self._r.xinfo_consumers(INCIDENTS, self.config.group)
        except redis.ResponseError:
            return
        for c in consumers:
            name = c["name"].decode() if isinstance(c["name"], bytes) else str(c["name"])
            idle = int(c.get("idle", 0))
            if name != self.config.consumer and int(c.get("pending", 0)) == 0 and idle > STALE_CONSUMER_MS:
                self._r.xgroup_delconsumer(INCIDENTS, self.config.group, name)


def group_status(client: redis.Redis) -> list[dict[str, Any]]:
    """Each consumer group of the incidents stream: lag, pending, dead letters (for `sharpeyes cases status`)."""
    try:
        groups: list[dict[str, Any]] = client.xinfo_groups(INCIDENTS)
    except redis.ResponseError:
        return []
    out = []
    for g in groups:
        name = g["name"].decode() if isinstance(g["name"], bytes) else str(g["name"])
        out.append(
            {
                "group": name,
                "consumers": int(g.get("consumers", 0)),
                "pending": int(g.get("pending", 0)),
                "lag": g.get("lag"),
                "last_delivered": g["last-delivered-id"].decode()
                if isinstance(g.get("last-delivered-id"), bytes)
                else g.get("last-delivered-id"),
                "dead_letters": int(client.xlen(dead_letter_stream(name))),
            }
        )
    return out


def dump_json(obj: object) -> str:
    """Compact JSON for the CLI."""
    return json.dumps(obj, default=str)
