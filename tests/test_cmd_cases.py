"""`sharpeyes cases ...`: status, dead letters and redrive from the command line."""

from __future__ import annotations

import json

import pytest
import redis

from alerts.consumer import INCIDENTS, CaseConsumer, ConsumerConfig, StreamDelivery, dead_letter_stream
from alerts.models import Alert
from alerts.publisher import AlertPublisher
from sharpeyes.cli import main
from tests.incident_fixtures import event, make_camera


@pytest.fixture
def env(redis_url: str, monkeypatch: pytest.MonkeyPatch) -> None:
    for var in [v for v in __import__("os").environ if v.startswith("SHARPEYES_")]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("SHARPEYES_REDIS_URL", redis_url)


def _incidents(client: redis.Redis, n: int) -> list[str]:
    pub = AlertPublisher(client, 1000)
    alerts = [Alert.from_event(event("cam_1", 1e9 + i), make_camera("cam_1"), "d", False) for i in range(n)]
    for a in alerts:
        pub.publish(a)
    return [a.idempotency_key for a in alerts]


def test_status_lists_groups(env: None, rclient: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["cases", "status"]) == 0
    assert "no consumer groups" in capsys.readouterr().out
    _incidents(rclient, 3)
    rclient.xgroup_create(INCIDENTS, "cases", id="0")
    rclient.xreadgroup("cases", "c", {INCIDENTS: ">"}, count=1)
    assert main(["cases", "status", "--json"]) == 0
    [row] = json.loads(capsys.readouterr().out)
    assert (row["group"], row["pending"], row["lag"], row["dead_letters"]) == ("cases", 1, 2, 0)


def test_dead_letters_listed_and_redriven_to_stdout(
    env: None, rclient: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    keys = _incidents(rclient, 2)
    rclient.xadd(INCIDENTS, {"junk": "1"})
    consumer = CaseConsumer(rclient, StreamDelivery(), ConsumerConfig(group="cases", consumer="c", block_ms=10))
    consumer.ensure_group()
    consumer.step()  # the junk entry goes to the dead letters at once
    capsys.readouterr()
    # Put a real incident there too, as if the endpoint had refused it ten times.
    rclient.xadd(dead_letter_stream("cases"), {"source_id": "1-1", "alert": rclient.xrange(INCIDENTS)[0][1][b"alert"],
                                               "tries": "10", "error": "HTTP 400", "transient": "0"})  # fmt: skip
    assert main(["cases", "dead", "--group", "cases"]) == 0
    listed = capsys.readouterr().out.splitlines()
    assert len(listed) == 2 and "permanent" in listed[0] and "HTTP 400" in listed[1]
    assert main(["cases", "redrive", "--group", "cases"]) == 1  # the junk cannot be redriven: exit 1
    out = capsys.readouterr().out.splitlines()
    assert json.loads(out[0])["idempotency_key"] == keys[0]
    assert "redrove 1 incident(s); 1 dead letter(s) left" in out[-1]


def test_bad_arguments_are_named(env: None) -> None:
    with pytest.raises(SystemExit, match="--webhook: webhook URL 'ftp://x'"):
        main(["cases", "consume", "--group", "g", "--webhook", "ftp://x"])
    with pytest.raises(SystemExit, match="consumer group 'a b'"):
        main(["cases", "consume", "--group", "a b"])
    with pytest.raises(SystemExit, match="VAR_THAT_IS_NOT_SET"):
        main(["cases", "consume", "--group", "g", "--webhook", "http://127.0.0.1:1/", "--webhook-token-env",
              "VAR_THAT_IS_NOT_SET"])  # fmt: skip
