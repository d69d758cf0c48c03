"""Prometheus text: alerts per type, outbox depth, publish latency, consumer lag per group, dedup hits."""

from __future__ import annotations

import re

import redis

from alerts.consumer import INCIDENTS
from alerts.metrics import LatencyHistogram, WorkerReport, render, report_worker
from alerts.models import Alert
from alerts.publisher import AlertPublisher
from detectors.events import EventPhase, EventType
from tests.incident_fixtures import event, make_camera

T0 = 1_700_000_000.0
_SAMPLE = re.compile(r'^[a-z_]+(\{[a-z_]+="(?:[^"\\\n]|\\.)*"(,[a-z_]+="(?:[^"\\\n]|\\.)*")*\})? -?[0-9.e+-]+$')


def _samples(text: str) -> dict[str, float]:
    out = {}
    for line in text.splitlines():
        if line.startswith("#"):
            assert re.match(r"^# (HELP|TYPE) [a-z_]+ ", line), line
            continue
        assert _SAMPLE.match(line), f"not Prometheus text: {line!r}"
        name, value = line.rsplit(" ", 1)
        out[name] = float(value)
    return out


def test_histogram_counts_and_gives_back() -> None:
    hist = LatencyHistogram(buckets=(0.01, 0.1))
    for v in (0.005, 0.05, 0.05, 5.0):
        hist.observe(v)
    counts, total = hist.take()
    assert counts == [1, 2, 1] and abs(total - 5.105) < 1e-9
    hist.give_back(counts, total)
    assert hist.take()[0] == [1, 2, 1]
    assert hist.take()[0] == [0, 0, 0]


def test_render_reports_the_incident_path(rclient: redis.Redis) -> None:
    pub = AlertPublisher(rclient, 1000)
    cam = make_camera("cam_1")
    for i in range(3):
        pub.publish(Alert.from_event(event("cam_1", T0 + i), cam, "default", False))
    start = Alert.from_event(event("cam_1", T0), cam, "default", False)
    pub.publish(start)  # a republish: a dedup hit
    pub.publish(Alert.from_event(event("cam_1", T0, EventPhase.END, t_s=T0 + 9), cam, "default", False))
    tamper = event("cam_1", T0 + 50, kind=EventType.TAMPER_COVERED)
    pub.publish(Alert.from_event(tamper, cam, "default", False))
    hist = LatencyHistogram()
    hist.observe(0.003)
    hist.observe(2.0)
    report = WorkerReport('host"1\\:42', 7, 7000, 10**9, False, 0, 1, 0, 3)
    report_worker(rclient, report, hist)
    rclient.xgroup_create(INCIDENTS, "cases", id="0")
    rclient.xreadgroup("cases", "c", {INCIDENTS: ">"}, count=1)
    text = render(rclient)
    s = _samples(text)
    assert s['sharpeyes_alerts_total{type="motion",phase="start"}'] == 3
    assert s['sharpeyes_alerts_total{type="motion",phase="end"}'] == 1
    assert s['sharpeyes_alerts_total{type="tamper_covered",phase="start"}'] == 1
    assert s['sharpeyes_incidents_total{kind="event"}'] == 4
    assert s["sharpeyes_dedup_hits_total"] == 1
    assert s['sharpeyes_outbox_depth{worker="host\\"1\\\\:42"}'] == 7
    assert s['sharpeyes_outbox_full{worker="host\\"1\\\\:42"}'] == 0
    assert s['sharpeyes_publish_latency_seconds_bucket{le="0.005"}'] == 1
    assert s['sharpeyes_publish_latency_seconds_bucket{le="2.5"}'] == 2
    assert s['sharpeyes_publish_latency_seconds_bucket{le="+Inf"}'] == 2
    assert s["sharpeyes_publish_latency_seconds_count"] == 2
    assert s['sharpeyes_consumer_lag{group="cases"}'] == 3
    assert s['sharpeyes_consumer_pending{group="cases"}'] == 1
    assert s['sharpeyes_dead_letters{group="cases"}'] == 0
    assert s['sharpeyes_stream_length{stream="sharpeyes:incidents"}'] == 4
    assert "# TYPE sharpeyes_publish_latency_seconds histogram" in text


def test_render_on_an_empty_redis(rclient: redis.Redis) -> None:
    s = _samples(render(rclient))
    assert s["sharpeyes_dedup_hits_total"] == 0
    assert not any(k.startswith("sharpeyes_consumer_lag{") for k in s)
