"""Confirmation: rows leave the outbox only once Redis has them durably; failures void older hand-overs."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from alerts.confirm import Confirmer
from alerts.drain import dedicated_client
from alerts.outbox import Outbox
from tests.incident_fixtures import aof_redis
from tests.peers import RedisServerProcess


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServerProcess]:
    yield from aof_redis(tmp_path)


def _outbox(tmp_path: Path, rows: int) -> Outbox:
    box = Outbox.claim(tmp_path / "outbox", 1 << 20)
    for i in range(rows):
        box.append(f"row {i}")
    return box


def test_deletes_after_waitaof(tmp_path: Path, persistent_redis: RedisServerProcess) -> None:
    client = dedicated_client(redis.Redis.from_url(persistent_redis.url))
    box = _outbox(tmp_path, 5)
    confirmer = Confirmer([client], waitaof_timeout_ms=2000)
    published = confirmer.take()
    assert published is client and confirmer.take() is None  # one connection: it is in use
    published.set("written", "on this connection")
    confirmer.hand_over(published, confirmer.epoch, [(box, 3)])
    confirmer.join()
    assert confirmer.persistent is True
    assert [r.payload for r in box.peek(0, 10)] == ["row 3", "row 4"]
    assert confirmer.take() is client  # back for publishing
    confirmer.stop()
    box.close()


def test_without_persistence_deletes_at_once(tmp_path: Path, redis_url: str) -> None:
    client = dedicated_client(redis.Redis.from_url(redis_url))
    box = _outbox(tmp_path, 3)
    confirmer = Confirmer([client], waitaof_timeout_ms=2000)
    confirmer.hand_over(client, confirmer.epoch, [(box, 3)])
    confirmer.join()
    assert confirmer.persistent is False and box.depth == 0
    confirmer.stop()
    box.close()


def test_a_failure_voids_older_hand_overs(tmp_path: Path, persistent_redis: RedisServerProcess) -> None:
    client = dedicated_client(redis.Redis.from_url(persistent_redis.url))
    box = _outbox(tmp_path, 3)
    confirmer = Confirmer([client], waitaof_timeout_ms=2000)
    epoch = confirmer.epoch
    confirmer.fail()  # the drain lost its connection after publishing
    confirmer.hand_over(client, epoch, [(box, 3)])
    confirmer.join()
    assert box.depth == 3  # kept: the drain republishes them in the new epoch
    persistent_redis.kill()
    confirmer.hand_over(client, confirmer.epoch, [(box, 3)])
    confirmer.join()
    assert box.depth == 3 and confirmer.epoch == epoch + 2  # WAITAOF failed: a new epoch, nothing deleted
    confirmer.stop()
    box.close()
