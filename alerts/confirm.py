"""Confirming that Redis holds published alerts durably, without holding up publishing.

``WAITAOF 1 0 <timeout>`` returns once Redis's append-only file is fsynced past everything the *calling
connection* wrote. With ``appendfsync everysec`` that takes up to a second, far too long to block the drain.
So the drain rotates connections: it publishes on one; every confirm interval it hands that connection, with
the outbox positions it reached, to this module's thread and continues on a free one. The thread waits with
``WAITAOF`` on the handed-over connection and then deletes those rows from the outboxes.

Epochs keep this safe across failures. Any connection error (on either side) starts a new epoch: the drain
then republishes everything still in its outboxes (dedup drops what Redis has), and hand-overs of older
epochs are dropped without deleting anything. Hand-overs are confirmed in order, so a later one never
deletes rows whose earlier connection failed.

Without persistence Redis refuses WAITAOF; rows are then deleted as soon as they are handed over (and a Redis
restart loses what it held; see docs/case-queue.md).
"""

from __future__ import annotations

import logging
import queue
import sqlite3
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from typing import cast

import redis

from alerts.outbox import Outbox

log = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class HandOver:
    """A connection the drain stopped publishing on, and the outbox positions published on it."""

    client: redis.Redis
    epoch: int
    positions: tuple[tuple[Outbox, int], ...]


class Confirmer:
    """Waits for durability on handed-over connections and deletes what is durable. One thread."""

    def __init__(self, clients: Sequence[redis.Redis], waitaof_timeout_ms: int) -> None:
        self._free: queue.Queue[redis.Redis] = queue.Queue()
        for client in clients:
            self._free.put(client)
        self._timeout_ms = waitaof_timeout_ms
        self._queue: queue.Queue[HandOver | None] = queue.Queue()
        self._lock = threading.Lock()
        self._epoch = 0
        self._clients = list(clients)
        self.persistent: bool | None = None  # None until Redis has answered a WAITAOF
        self.confirmed = 0
        self._warned_volatile = False
        self._thread = threading.Thread(target=self._run, name="alert-confirm", daemon=True)
        self._thread.start()

    @property
    def epoch(self) -> int:
        """Bumped by every connection failure; the drain republishes when it moves."""
        return self._epoch

    def fail(self) -> None:
        """A connection failed: nothing published so far counts as confirmed."""
        with self._lock:
            self._epoch += 1
            self.persistent = None

    def take(self, block: bool = False) -> redis.Redis | None:
        """A free connection to publish on, or None if both are still being confirmed."""
        try:
            return self._free.get(block=block, timeout=30 if block else None)
        except queue.Empty:
            return None

    def hand_over(self, client: redis.Redis, epoch: int, positions: Sequence[tuple[Outbox, int]]) -> None:
        """Confirm and delete ``positions`` once ``client``'s writes are durable; ``client`` then comes back."""
        self._queue.put(HandOver(client, epoch, tuple(positions)))

    def idle(self) -> bool:
        """True when nothing waits to be confirmed."""
        return self._queue.unfinished_tasks == 0

    def join(self) -> None:
        """Wait until every hand-over so far is processed."""
        self._queue.join()

    def stop(self, timeout: float = 5.0) -> None:
        """Process what was handed over (within ``timeout``), then stop."""
        self._queue.put(None)
        self._thread.join(timeout)
        if not self._thread.is_alive():
            for client in self._clients:
                client.close()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            try:
                if item is None:
                    return
                self._confirm(item)
            finally:
                self._queue.task_done()

    def _confirm(self, item: HandOver) -> None:
        try:
            if item.epoch != self._epoch:
                return  # published before a failure: the drain republishes those rows anyway
            if not self._durable(item):
                return
            for outbox, seq in item.positions:
                try:
                    self.confirmed += outbox.remove_through(seq)
                except sqlite3.Error as exc:  # the rows stay: republished later, dedup drops them
                    log.warning("could not delete confirmed alerts from %s: %s", outbox.path.name, exc)
        finally:
            self._free.put(item.client)

    def _durable(self, item: HandOver) -> bool:
        if self.persistent is False:
            return True
        while item.epoch == self._epoch:
            try:
                raw = item.client.execute_command("WAITAOF", 1, 0, self._timeout_ms)  # type: ignore[no-untyped-call]
            except redis.ResponseError as exc:
                text = str(exc).lower()
                if "appendonly" in text:
                    why = "Redis runs without append-only persistence (run it with --appendonly yes)"
                elif "unknown command" in text:
                    why = "Redis is older than 7.2 and cannot report durability (WAITAOF); upgrade it"
                else:
                    log.error("WAITAOF refused, alerts kept in the outbox and republished: %s", exc)
                    self._fail_with(item)
                    return False
                if self._warned_volatile is False:
                    self._warned_volatile = True
                    log.warning(
                        "%s: alerts leave the outbox once published, and a Redis crash or restart loses what it "
                        "held (see docs/case-queue.md)",
                        why,
                    )
                self.persistent = False
                return True
            except redis.RedisError as exc:
                log.warning("connection lost while confirming; the drain republishes: %s", exc)
                self._fail_with(item)
                return False
            if cast(list[int], raw)[0] >= 1:
                self.persistent = True
                return True
            log.warning("Redis has not fsynced its append-only file within %d ms; waiting", self._timeout_ms)
        return False

    def _fail_with(self, item: HandOver) -> None:
        with self._lock:
            if item.epoch == self._epoch:
                self._epoch += 1
                self.persistent = None
        item.client.connection_pool.disconnect()
