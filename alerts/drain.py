"""The drain: one thread per worker moving alerts from the outbox into Redis, in order, losing none.

Failure policy:

- Redis unreachable, timing out, loading, read-only, out of memory (transient): wait (0.2 s doubling to 5 s,
  about one failover's length), then republish everything not yet confirmed, in order. The outbox grows
  meanwhile, up to its quota.
- Redis refuses one message as malformed (permanent): that record moves to the outbox's quarantine table,
  logged, and the rest go on. A poison message never blocks the queue.

A record leaves the outbox only once Redis has it durably: ``WAITAOF 1 0`` (Redis 7.2+, Valkey) on the
connection that published it returns once the append-only file holds everything that connection wrote. The
wait runs on a second thread while publishing goes on over another connection (``alerts/confirm.py``). So
even a Redis killed with ``appendfsync everysec`` loses nothing: what it lost is still in the outbox and gets
republished. Without persistence WAITAOF is refused and records are deleted once published (what Redis loses
in a restart is then lost; see docs/case-queue.md).

Besides draining, the thread adopts outboxes of dead workers on the same machine, closes due clusters,
reports the outbox to ``/metrics`` and runs housekeeping (snapshot and clip retention).
"""

from __future__ import annotations

import logging
import os
import socket
import sqlite3
import threading
import time
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from pathlib import Path

import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from alerts.aggregation import ClusterCloser
from alerts.confirm import Confirmer
from alerts.metrics import LatencyHistogram, WorkerReport, report_worker
from alerts.outbox import Outbox, OutboxRecord
from alerts.publisher import AlertPublisher, Envelope, PublishStatus

log = logging.getLogger(__name__)

# Error replies that mean "Redis cannot take writes right now", not "this message is wrong".
_TRANSIENT_REPLIES = ("OOM", "BUSY", "LOADING", "MASTERDOWN", "READONLY", "NOREPLICAS", "TRYAGAIN", "CLUSTERDOWN")


def worker_id() -> str:
    """host:pid, how metrics and logs name a worker process."""
    return f"{socket.gethostname()}:{os.getpid()}"


@dataclass(frozen=True, slots=True)
class DrainConfig:
    """Batching, confirmation and retry timing of the drain."""

    batch: int = 500  # one pipeline round trip; a 5-minute backlog drains in a few hundred of them
    confirm_every_s: float = 0.2  # under load, one WAITAOF per this interval (everysec fsyncs once a second)
    waitaof_timeout_ms: int = 2000  # two everysec periods: longer means the disk of Redis is in trouble
    retry_first_s: float = 0.2  # first wait after a failure: a dropped connection usually reconnects at once
    retry_max_s: float = 5.0  # longest wait: Redis comes back within this of its restart finishing
    report_every_s: float = 5.0  # metrics keys expire after 30 s, so a live worker is never shown as gone
    adopt_every_s: float = 10.0  # a dead worker's outbox is picked up within this
    cluster_every_s: float = 0.5  # a due cluster is published within this of its window closing
    housekeeping_every_s: float = 3600.0  # retention purges: hourly is plenty for a 30-day limit


@dataclass(eq=False, slots=True)
class _Lane:
    outbox: Outbox
    adopted: bool
    cursor: int = 0  # last seq published in the current epoch


@dataclass(slots=True)
class DrainStats:
    """What the drain has done since it started."""

    published: Counter[str] = field(default_factory=Counter)
    quarantined: int = 0
    adopted: int = 0
    outages: int = 0


def dedicated_client(client: redis.Redis, socket_timeout_s: float = 10.0) -> redis.Redis:
    """A client with one connection of its own, with the settings of ``client``.

    WAITAOF covers the writes of the connection it runs on, so publishing and confirming must share one, and
    the client must not retry on its own: redis-py's default silently reconnects, and a WAITAOF answered on a
    fresh connection confirms nothing that was written on the lost one. The drain retries itself, republishing.
    The socket timeout bounds a hung Redis (paused, partitioned); it exceeds the WAITAOF timeout.
    """
    pool = client.connection_pool
    kwargs = dict(pool.connection_kwargs)
    kwargs["retry"] = Retry(NoBackoff(), 0)
    kwargs["socket_timeout"] = kwargs.get("socket_timeout") or socket_timeout_s
    kwargs["socket_connect_timeout"] = kwargs.get("socket_connect_timeout") or 5.0
    own = redis.BlockingConnectionPool(  # type: ignore[no-untyped-call]
        connection_class=pool.connection_class, max_connections=1, timeout=30, **kwargs
    )
    return redis.Redis(connection_pool=own)


def _transient(exc: redis.ResponseError) -> bool:
    return str(exc).upper().startswith(_TRANSIENT_REPLIES)


class Drainer:
    """Drains an outbox (and adopted ones) into Redis on its own thread until :meth:`stop`."""

    def __init__(
        self,
        outbox: Outbox,
        publisher: AlertPublisher,
        client: redis.Redis,
        *,
        worker: str | None = None,
        config: DrainConfig | None = None,
        clusters: bool = False,
        housekeeping: Sequence[Callable[[], object]] = (),
    ) -> None:
        self.config = config or DrainConfig()
        self.worker = worker or worker_id()
        timeout_s = self.config.waitaof_timeout_ms / 1000 + 8
        # Two connections: one publishes while the other waits for its writes to be fsynced (alerts/confirm.py).
        clients = [dedicated_client(client, socket_timeout_s=timeout_s) for _ in range(2)]
        self._publishers = {id(c): publisher.with_client(c) for c in clients}
        self._confirmer = Confirmer(clients, self.config.waitaof_timeout_ms)
        first = self._confirmer.take(block=True)
        assert first is not None
        self._client: redis.Redis = first
        self._epoch = self._confirmer.epoch
        self._unconfirmed: dict[int, tuple[_Lane, int]] = {}
        # Housekeeping talks to Redis on its own connection, so it never mixes into a WAITAOF.
        self._side = dedicated_client(client, socket_timeout_s=timeout_s)
        self._closer = ClusterCloser(self._side, publisher.policy) if clusters else None
        self._own = _Lane(outbox, adopted=False)
        self._lanes: list[_Lane] = [self._own]
        self._dir = outbox.path.parent
        self._housekeeping = list(housekeeping)
        self.histogram = LatencyHistogram()
        self.stats = DrainStats()
        self._wake = threading.Event()
        self._stop = threading.Event()
        self._idle = threading.Condition()
        self._thread = threading.Thread(target=self._run, name="alert-drain", daemon=True)
        self._last_handover = 0.0
        self._next: dict[str, float] = {}
        self._outage_since: float | None = None

    # --- control ------------------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the drain thread."""
        self._thread.start()

    def wake(self) -> None:
        """Something was appended: publish it now."""
        self._wake.set()

    def stop(self, timeout: float = 5.0) -> None:
        """Publish and confirm what it can within ``timeout`` (not waiting on a Redis that is away); stop."""
        self._stop.set()
        self._wake.set()
        self._thread.join(timeout)
        self._confirmer.stop(timeout)
        if not self._thread.is_alive():  # a thread stuck on a hung Redis keeps its connection until it gives up
            self._side.close()

    def wait_empty(self, timeout: float) -> bool:
        """Block until every outbox lane is empty (tests, benchmarks, shutdown); False on timeout."""
        deadline = time.monotonic() + timeout
        with self._idle:
            while self.depth() > 0:
                left = deadline - time.monotonic()
                if left <= 0:
                    return False
                self._wake.set()
                self._idle.wait(min(left, 0.05))
        return True

    def depth(self) -> int:
        """Alerts waiting in every lane (published ones stay until Redis has them durably)."""
        return sum(lane.outbox.depth for lane in list(self._lanes))

    @property
    def outage_since(self) -> float | None:
        """Monotonic time Redis became unreachable, None while it is reachable."""
        return self._outage_since

    @property
    def redis_persistent(self) -> bool | None:
        """Whether Redis runs with append-only persistence (None until it has said)."""
        return self._confirmer.persistent

    # --- the loop -----------------------------------------------------------------------------------------

    def _run(self) -> None:
        delay = self.config.retry_first_s
        while not self._stop.is_set():
            self._wake.clear()
            try:
                for lane in list(self._lanes):
                    lane.outbox.maintain()
                busy = self._step()
                self._reachable()
                delay = self.config.retry_first_s
            except (redis.ConnectionError, redis.TimeoutError, redis.ResponseError) as exc:
                if isinstance(exc, redis.ResponseError) and not _transient(exc):
                    log.exception("drain: unexpected reply from Redis")
                self._on_outage(exc)
                self._stop.wait(delay)
                delay = min(delay * 2, self.config.retry_max_s)
                continue
            except sqlite3.Error:
                log.exception("drain: outbox error; retrying")
                self._stop.wait(delay)
                delay = min(delay * 2, self.config.retry_max_s)
                continue
            with self._idle:
                self._idle.notify_all()
            if not busy:
                self._wake.wait(self._idle_wait())
        self._final_flush()

    def _reachable(self) -> None:
        """Redis answered: end the outage, if one was on."""
        if self._outage_since is not None:
            log.warning("Redis reachable again after %.1f s", time.monotonic() - self._outage_since)
            self._outage_since = None

    def _on_outage(self, exc: redis.RedisError) -> None:
        if self._outage_since is None:
            self._outage_since = time.monotonic()
            self.stats.outages += 1
            log.warning("Redis unreachable, alerts stay in the outbox (%d waiting): %s", self.depth(), exc)
        self._client.connection_pool.disconnect()
        self._confirmer.fail()

    def _sync_epoch(self) -> None:
        """After a failure anywhere, nothing sent is known to be durable: send it again, dedup drops repeats."""
        epoch = self._confirmer.epoch
        if epoch != self._epoch:
            self._epoch = epoch
            self._unconfirmed.clear()
            for lane in self._lanes:
                lane.cursor = 0

    def _idle_wait(self) -> float:
        now = time.monotonic()
        waits = [self._next.get(k, now) - now for k in ("report", "adopt", "cluster", "housekeeping")]
        if self._unconfirmed:
            waits.append(self._last_handover + self.config.confirm_every_s - now)
        if not self._confirmer.idle():
            waits.append(0.05)  # rows are being confirmed: look again soon (wait_empty, adopted lanes)
        return max(0.005, min(waits, default=1.0))

    def _due(self, task: str, every: float) -> bool:
        now = time.monotonic()
        if now < self._next.get(task, 0.0):
            return False
        self._next[task] = now + every
        return True

    def _step(self) -> bool:
        """One round: publish a batch, hand over for confirmation, periodic work. True if there may be more."""
        cfg = self.config
        self._sync_epoch()
        busy = False
        for lane in list(self._lanes):
            records = lane.outbox.peek(lane.cursor, cfg.batch)
            if records:
                self._publish(lane, records)
                busy = True
                break
        if self._unconfirmed and time.monotonic() - self._last_handover >= cfg.confirm_every_s:
            self._hand_over()
        self._retire_drained_lanes()
        if self._closer is not None and self._due("cluster", cfg.cluster_every_s):
            self._closer.close_due()
        if self._due("adopt", cfg.adopt_every_s):
            self._adopt()
        if self._due("report", cfg.report_every_s):
            self._report()
        if self._housekeeping and self._due("housekeeping", cfg.housekeeping_every_s):
            for task in self._housekeeping:
                try:
                    task()
                except OSError as exc:
                    log.warning("housekeeping failed: %s", exc)
        return busy

    def _publish(self, lane: _Lane, records: list[OutboxRecord]) -> None:
        items: list[tuple[OutboxRecord, Envelope]] = []
        for rec in records:
            try:
                items.append((rec, Envelope.parse(rec.payload)))
            except ValueError as exc:
                self._quarantine(lane, rec, str(exc))
        publisher = self._publishers[id(self._client)]
        results = publisher.publish_batch([env for _, env in items]) if items else []
        if items:
            # Over as soon as Redis answers, not after the whole step: the outbox can empty (confirmed
            # elsewhere) before this step returns, and its status must not say "outage" with nothing waiting.
            self._reachable()
        now = time.time()
        for (rec, _env), result in zip(items, results, strict=True):
            if isinstance(result, redis.ResponseError):
                if _transient(result):
                    raise result
                self._quarantine(lane, rec, f"refused by Redis: {result}")
                continue
            self.stats.published[result.status.value] += 1
            if result.status is not PublishStatus.DUPLICATE:
                self.histogram.observe(max(0.0, now - rec.enqueued_at))
        lane.cursor = records[-1].seq
        self._unconfirmed[id(lane)] = (lane, lane.cursor)

    def _hand_over(self) -> None:
        """Give the publishing connection to the confirmer with what it published; go on with the other."""
        fresh = self._confirmer.take()
        if fresh is None:
            return  # the other one is still being confirmed: keep publishing here, hand over later
        positions = [(lane.outbox, seq) for lane, seq in self._unconfirmed.values()]
        self._confirmer.hand_over(self._client, self._epoch, positions)
        self._client = fresh
        self._unconfirmed.clear()
        self._last_handover = time.monotonic()

    def _retire_drained_lanes(self) -> None:
        for lane in list(self._lanes):
            if lane.adopted and lane.outbox.depth == 0 and id(lane) not in self._unconfirmed:
                self._confirmer.join()  # its last deletes are done before the file goes
                removed = lane.outbox.close(delete_if_empty=True)
                self._lanes.remove(lane)
                log.info("adopted outbox %s drained%s", lane.outbox.path.name, " and removed" if removed else "")

    def _quarantine(self, lane: _Lane, rec: OutboxRecord, reason: str) -> None:
        log.error("outbox record %d quarantined (kept in %s): %s", rec.seq, lane.outbox.path, reason)
        lane.outbox.quarantine(rec, reason)
        self.stats.quarantined += 1

    def _adopt(self) -> None:
        held = {lane.outbox.path for lane in self._lanes}
        for path in Outbox.orphans(self._dir, self._own.outbox.path):
            if path in held:
                continue
            box = Outbox.adopt(path, self._own.outbox.quota_bytes)
            if box is None:
                continue
            log.warning("adopting outbox %s of a dead worker: %d alert(s) to publish", path.name, box.depth)
            # Older alerts first: the adopted lane goes before our own.
            self._lanes.insert(len(self._lanes) - 1, _Lane(box, adopted=True))
            self.stats.adopted += 1

    def report(self) -> WorkerReport:
        """This worker's outbox figures."""
        own = self._own.outbox.stats()
        stats = [lane.outbox.stats() for lane in list(self._lanes)]
        return WorkerReport(
            worker=self.worker,
            depth=sum(s.depth for s in stats),
            bytes=sum(s.bytes for s in stats),
            quota_bytes=own.quota_bytes,
            full=own.full,
            rejected=own.rejected,
            quarantined=sum(s.quarantined for s in stats),
            adopted=self.stats.adopted,
            published=sum(self.stats.published.values()),
        )

    def _report(self) -> None:
        report_worker(self._side, self.report(), self.histogram)

    def _final_flush(self) -> None:
        """On stop: one last publish and hand-over, without waiting on a Redis that is away."""
        if self._outage_since is not None:
            return
        try:
            self._sync_epoch()
            for lane in self._lanes:
                records = lane.outbox.peek(lane.cursor, self.config.batch * 4)
                if records:
                    self._publish(lane, records)
            if self._unconfirmed:
                positions = [(lane.outbox, seq) for lane, seq in self._unconfirmed.values()]
                self._confirmer.hand_over(self._client, self._epoch, positions)
                self._unconfirmed.clear()
            self._report()
        except (redis.RedisError, sqlite3.Error) as exc:
            log.warning("final flush incomplete, the outbox keeps the rest: %s", exc)

    def close_outboxes(self) -> None:
        """Release every outbox (after :meth:`stop`); drained ones are removed."""
        for lane in self._lanes:
            lane.outbox.close(delete_if_empty=True)
        self._lanes = []


def outbox_dir(data_dir: Path) -> Path:
    """Where the workers of a machine keep their outboxes."""
    return data_dir / "outbox"
