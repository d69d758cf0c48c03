"""Publishing: one incident per event, lifecycle messages on the wall, dedup, storm control, retention."""

from __future__ import annotations

from typing import Any, cast

import pytest
import redis
from redis.backoff import NoBackoff
from redis.retry import Retry

from alerts.models import Alert
from alerts.publisher import (
    ALERT_KEY,
    ALERTS_STREAM,
    COUNTERS,
    INCIDENTS_STREAM,
    AlertPublisher,
    Envelope,
    IncidentPolicy,
    PublishOutcome,
    PublishStatus,
)
from detectors.events import EventPhase
from tests.incident_fixtures import event, make_camera

T0 = 1_700_000_000.0


def _alert(
    camera_id: str, start: float, phase: EventPhase = EventPhase.START, t: float | None = None, **kw: Any
) -> Alert:
    cam = make_camera(camera_id, **{k: v for k, v in kw.items() if k in ("lat", "lon", "validate", "name")})
    ev = event(camera_id, start, phase, t_s=t, zone=kw.get("zone", "crosswalk"))
    return Alert.from_event(ev, cam, "default", snapshot=False)


def _incidents(client: redis.Redis) -> list[tuple[str, dict[bytes, bytes]]]:
    return [(sid.decode(), f) for sid, f in cast(list[Any], client.xrange(INCIDENTS_STREAM))]


def test_lifecycle_one_incident_many_wall_messages(rclient: redis.Redis) -> None:
    pub = AlertPublisher(rclient, maxlen=1000)
    start = _alert("cam_1", T0)
    assert pub.publish_one(start).status is PublishStatus.INCIDENT
    assert pub.publish_one(_alert("cam_1", T0, EventPhase.UPDATE, T0 + 5)).status is PublishStatus.WALL
    end = _alert("cam_1", T0, EventPhase.END, T0 + 9)
    assert pub.publish_one(end).status is PublishStatus.WALL
    [(_, fields)] = _incidents(rclient)
    assert fields[b"idempotency_key"] == start.idempotency_key.encode()
    assert fields[b"schema_version"] == b"1" and fields[b"kind"] == b"event"
    assert Alert.model_validate_json(fields[b"alert"]) == start
    assert rclient.xlen(ALERTS_STREAM) == 3
    assert Alert.model_validate_json(cast(bytes, rclient.get(ALERT_KEY.format(id=start.id)))) == end


def test_republish_is_deduplicated_by_idempotency_key(rclient: redis.Redis) -> None:
    pub = AlertPublisher(rclient, maxlen=1000)
    start = _alert("cam_1", T0)
    update = _alert("cam_1", T0, EventPhase.UPDATE, T0 + 5)
    assert pub.publish(start) is not None
    pub.publish_one(update)
    # A worker that crashed after publishing sends everything again, in order: nothing new is written.
    assert [o.status for o in cast(list[PublishOutcome], pub.publish_batch([Envelope.of(start)]))] == [
        PublishStatus.DUPLICATE
    ]
    assert pub.publish_one(update).status is PublishStatus.DUPLICATE
    assert pub.publish(start) is None
    assert rclient.xlen(INCIDENTS_STREAM) == 1 and rclient.xlen(ALERTS_STREAM) == 2
    assert rclient.hget(COUNTERS, "dedup_hits") == b"3"
    assert rclient.hget(COUNTERS, "alerts:motion:start") == b"1"


def test_storm_control_merges_same_camera_and_zone(rclient: redis.Redis) -> None:
    pub = AlertPublisher(rclient, 1000, IncidentPolicy(merge_window_s=300))
    first = _alert("cam_1", T0)
    assert pub.publish_one(first).status is PublishStatus.INCIDENT
    merged = pub.publish_one(_alert("cam_1", T0 + 60))
    assert merged == PublishOutcome(PublishStatus.MERGED, first.id)
    assert pub.publish_one(_alert("cam_1", T0 + 61, zone="gate")).status is PublishStatus.INCIDENT
    assert pub.publish_one(_alert("cam_2", T0 + 62)).status is PublishStatus.INCIDENT
    assert rclient.xlen(INCIDENTS_STREAM) == 3
    assert rclient.xlen(ALERTS_STREAM) == 4  # the wall still shows every event
    assert rclient.hget(f"sharpeyes:incident:{first.id}", "merged") == b"1"


def test_merge_off_gives_every_event_its_incident(rclient: redis.Redis) -> None:
    pub = AlertPublisher(rclient, 1000, IncidentPolicy(merge_window_s=0))
    for i in range(5):
        assert pub.publish_one(_alert("cam_1", T0 + i)).status is PublishStatus.INCIDENT
    assert rclient.xlen(INCIDENTS_STREAM) == 5


def test_incidents_are_trimmed_by_age_and_length(rclient: redis.Redis) -> None:
    for i in range(1, 151):  # 150 incidents from 1970: older than any retention
        rclient.xadd(INCIDENTS_STREAM, {"alert": b"{}"}, id=f"{i}-0")
    pub = AlertPublisher(rclient, 1000, IncidentPolicy(incidents_retention_s=86400))
    pub.publish_one(_alert("cam_1", T0))
    # MINID ~ drops whole stream nodes (100 entries each): the first node went, the new incident stayed.
    assert rclient.xlen(INCIDENTS_STREAM) == 51
    assert _incidents(rclient)[-1][1][b"kind"] == b"event"
    assert IncidentPolicy().minid() == ""
    assert IncidentPolicy(incidents_retention_s=10).minid(now_s=100.0) == "90000-0"


def test_a_message_redis_refuses_does_not_stop_the_batch(rclient: redis.Redis) -> None:
    pub = AlertPublisher(rclient, 1000, IncidentPolicy(cluster_radius_m=100))
    good = _alert("cam_1", T0)
    bad = _alert("cam_2", T0, lon=500.0, validate=False)  # no such longitude: GEOSEARCH refuses it
    results = pub.publish_batch([Envelope.of(good), Envelope.of(bad)])
    assert isinstance(results[0], PublishOutcome) and results[0].status is PublishStatus.CLUSTERED
    assert isinstance(results[1], redis.ResponseError)


def test_connection_failure_raises(rclient: redis.Redis) -> None:
    dead = redis.Redis(port=1, socket_connect_timeout=0.5, retry=Retry(NoBackoff(), 0))
    with pytest.raises(redis.ConnectionError):
        AlertPublisher(dead, 1000).publish_batch([Envelope.of(_alert("cam_1", T0))])


def test_envelope_of_a_stored_payload_matches_the_model() -> None:
    for phase in EventPhase:
        alert = _alert("cam_1", T0 + 0.123456, phase, T0 + 7.654321)
        assert Envelope.parse(alert.model_dump_json()) == Envelope.of(alert)


def test_envelope_refuses_what_is_not_an_alert() -> None:
    for bad in ("{}", '{"schema_version": 1}', "[1]", '{"schema_version": 2}', "not json"):
        with pytest.raises(ValueError):
            Envelope.parse(bad)
