"""The drain on its own: publishing in order, confirming through WAITAOF, reporting, no hidden retries."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from alerts.drain import DrainConfig, Drainer, dedicated_client
from alerts.metrics import WORKER_KEY
from alerts.models import Alert
from alerts.outbox import Outbox
from alerts.publisher import INCIDENTS_STREAM, AlertPublisher
from tests.incident_fixtures import aof_redis, event, make_camera
from tests.peers import RedisServerProcess

T0 = 1_700_000_000.0


@pytest.fixture
def persistent_redis(tmp_path: Path) -> Iterator[RedisServerProcess]:
    yield from aof_redis(tmp_path)


def _fill(box: Outbox, n: int) -> list[str]:
    cam = make_camera("cam_1")
    alerts = [Alert.from_event(event("cam_1", T0 + i), cam, "default", False) for i in range(n)]
    for a in alerts:
        box.append(a.model_dump_json())
    return [a.idempotency_key for a in alerts]


def test_drains_in_order_and_confirms_with_waitaof(tmp_path: Path, persistent_redis: RedisServerProcess) -> None:
    client = redis.Redis.from_url(persistent_redis.url)
    box = Outbox.claim(tmp_path, 1 << 24)
    keys = _fill(box, 1200)  # more than two batches
    drainer = Drainer(box, AlertPublisher(client, 10_000), client, worker="w1", config=DrainConfig(batch=500))
    drainer.start()
    assert drainer.wait_empty(30)
    assert drainer.redis_persistent is True
    assert [f[b"idempotency_key"].decode() for _, f in client.xrange(INCIDENTS_STREAM)] == keys
    report = drainer.report()
    assert (report.worker, report.depth, report.published) == ("w1", 0, 1200)
    drainer.stop()
    assert client.exists(WORKER_KEY.format(worker="w1"))  # the last report went out on the way down
    drainer.close_outboxes()


def test_dedicated_client_does_not_retry_behind_our_back(redis_url: str) -> None:
    shared = redis.Redis.from_url(redis_url, socket_timeout=3)
    own = dedicated_client(shared)
    kwargs = own.connection_pool.connection_kwargs
    assert kwargs["retry"].get_retries() == 0 and kwargs["socket_timeout"] == 3
    assert own.connection_pool.max_connections == 1
    assert own.ping()
