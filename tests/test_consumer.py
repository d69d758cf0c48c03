"""The reference consumer: deliver, acknowledge, retry, reclaim, dead-letter, redrive."""

from __future__ import annotations

import io
import json
import time
from collections.abc import Callable, Iterator
from typing import Any

import pytest
import redis

from alerts.consumer import (
    INCIDENTS,
    CaseConsumer,
    ConsumerConfig,
    StreamDelivery,
    WebhookDelivery,
    dead_letter_stream,
    group_status,
    parse_incident,
)
from alerts.models import Alert
from alerts.publisher import AlertPublisher
from tests.incident_fixtures import Webhook, event, make_camera, running_webhook

T0 = 1_700_000_000.0


@pytest.fixture
def webhook() -> Iterator[Webhook]:
    yield from running_webhook()


def _publish(client: redis.Redis, count: int, camera: str = "cam_1") -> list[str]:
    pub = AlertPublisher(client, 1000)
    keys = []
    for i in range(count):
        alert = Alert.from_event(event(camera, T0 + i), make_camera(camera), "default", False)
        pub.publish(alert)
        keys.append(alert.idempotency_key)
    return keys


def _consumer(client: redis.Redis, hook: Webhook, name: str = "c1", **kw: Any) -> CaseConsumer:
    config = ConsumerConfig(group="cases", consumer=name, max_tries=3, retry_s=0.15, block_ms=20, **kw)
    consumer = CaseConsumer(client, WebhookDelivery(hook.url, timeout_s=2), config)
    consumer.ensure_group()
    return consumer


def _run(consumers: list[CaseConsumer], until: Callable[[], bool], timeout: float = 10) -> None:
    deadline = time.monotonic() + timeout
    while not until():
        assert time.monotonic() < deadline, "consumer did not get there in time"
        for c in consumers:
            c.step()


def _pending(client: redis.Redis) -> int:
    return int(client.xpending(INCIDENTS, "cases")["pending"])


def test_delivers_each_incident_once_and_acknowledges(rclient: redis.Redis, webhook: Webhook) -> None:
    keys = _publish(rclient, 5)
    consumer = _consumer(rclient, webhook)
    _run([consumer], lambda: len(webhook.received) == 5)
    assert webhook.keys() == keys
    assert {r["schema"] for r in webhook.received} == {"1"}
    assert [b["idempotency_key"] for b in webhook.bodies()] == keys
    assert _pending(rclient) == 0 and not rclient.exists("sharpeyes:cases:cases:tries")
    [status] = group_status(rclient)
    assert status["lag"] == 0 and status["pending"] == 0 and status["dead_letters"] == 0


def test_endpoint_down_retries_then_dead_letters_then_redrives(rclient: redis.Redis, webhook: Webhook) -> None:
    keys = _publish(rclient, 4)
    webhook.status = 503
    consumer = _consumer(rclient, webhook)
    dead = dead_letter_stream("cases")
    _run([consumer], lambda: rclient.xlen(dead) == 4)
    assert webhook.attempts >= 4 * 3  # max_tries each (plus redrive probes), never acknowledged as delivered
    assert webhook.received == []
    entry = rclient.xrange(dead, count=1)[0][1]
    assert entry[b"tries"] == b"3" and entry[b"transient"] == b"1" and entry[b"error"].startswith(b"HTTP 503")
    webhook.status = 200
    _run([consumer], lambda: rclient.xlen(dead) == 0)  # redriven on its own once the endpoint answers
    assert sorted(webhook.keys()) == sorted(keys)
    assert _pending(rclient) == 0


def test_permanent_refusal_waits_for_a_manual_redrive(rclient: redis.Redis, webhook: Webhook) -> None:
    [key] = _publish(rclient, 1)
    webhook.status = 400
    consumer = _consumer(rclient, webhook)
    dead = dead_letter_stream("cases")
    _run([consumer], lambda: rclient.xlen(dead) == 1)
    webhook.status = 200
    for _ in range(5):
        consumer.step()
    assert rclient.xlen(dead) == 1  # not transient: a person decides
    assert consumer.redrive() == 1
    assert webhook.keys() == [key] and rclient.xlen(dead) == 0


def test_conflict_means_the_case_system_has_it(rclient: redis.Redis, webhook: Webhook) -> None:
    _publish(rclient, 1)
    webhook.status = 409
    consumer = _consumer(rclient, webhook)
    _run([consumer], lambda: consumer.stats.delivered == 1)
    assert _pending(rclient) == 0 and rclient.xlen(dead_letter_stream("cases")) == 0


def test_poison_messages_are_dead_lettered_at_once(rclient: redis.Redis, webhook: Webhook) -> None:
    rclient.xadd(INCIDENTS, {"something": "else"})
    rclient.xadd(INCIDENTS, {"alert": b"\xff\xfe not json \x00"})
    rclient.xadd(INCIDENTS, {"alert": json.dumps({"schema_version": 99})})
    keys = _publish(rclient, 1)
    consumer = _consumer(rclient, webhook)
    _run([consumer], lambda: len(webhook.received) == 1)
    assert webhook.keys() == keys
    dead = rclient.xrange(dead_letter_stream("cases"))
    assert [f[b"transient"] for _, f in dead] == [b"0"] * 3
    assert b"no 'alert' field" in dead[0][1][b"error"]
    assert _pending(rclient) == 0


def test_a_dead_consumers_incidents_are_reclaimed(rclient: redis.Redis, webhook: Webhook) -> None:
    keys = _publish(rclient, 3)
    rclient.xgroup_create(INCIDENTS, "cases", id="0")
    rclient.xreadgroup("cases", "crashed", {INCIDENTS: ">"}, count=10)  # read, never acknowledged
    survivor = _consumer(rclient, webhook, name="survivor")
    _run([survivor], lambda: len(webhook.received) == 3)
    assert survivor.stats.reclaimed == 3 and sorted(webhook.keys()) == sorted(keys)
    assert _pending(rclient) == 0


def test_two_consumers_share_the_work_without_duplicates(rclient: redis.Redis, webhook: Webhook) -> None:
    keys = _publish(rclient, 20)
    a, b = _consumer(rclient, webhook, name="a", batch=3), _consumer(rclient, webhook, name="b", batch=3)
    _run([a, b], lambda: len(webhook.received) == 20)
    assert sorted(webhook.keys()) == sorted(keys)
    assert a.stats.delivered > 0 and b.stats.delivered > 0


def test_an_incident_trimmed_before_delivery_is_recorded(rclient: redis.Redis, webhook: Webhook) -> None:
    _publish(rclient, 1)
    rclient.xgroup_create(INCIDENTS, "cases", id="0")
    [[_, [(sid, _)]]] = rclient.xreadgroup("cases", "crashed", {INCIDENTS: ">"}, count=1)
    rclient.xdel(INCIDENTS, sid)  # retention took it while it was pending
    consumer = _consumer(rclient, webhook)
    _run([consumer], lambda: rclient.xlen(dead_letter_stream("cases")) == 1)
    [(_, entry)] = rclient.xrange(dead_letter_stream("cases"))
    assert entry[b"source_id"] == sid and b"trimmed" in entry[b"error"]


def test_stdout_delivery_prints_json_lines(rclient: redis.Redis) -> None:
    keys = _publish(rclient, 2)
    out = io.StringIO()
    config = ConsumerConfig(group="printer", consumer="p", block_ms=20)
    consumer = CaseConsumer(rclient, StreamDelivery(out), config)
    consumer.ensure_group()
    consumer.step()
    assert [json.loads(line)["idempotency_key"] for line in out.getvalue().splitlines()] == keys


def test_bad_configuration_is_named() -> None:
    with pytest.raises(ValueError, match="consumer group 'two words'"):
        ConsumerConfig(group="two words", consumer="c")
    with pytest.raises(ValueError, match="must start with http"):
        WebhookDelivery("ftp://x", 1)
    with pytest.raises(ValueError, match="no 'alert' field"):
        parse_incident("1-0", {b"x": b"y"})
