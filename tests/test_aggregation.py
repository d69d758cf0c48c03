"""Clusters: events of cameras within a radius and a time window become one incident listing them all."""

from __future__ import annotations

import threading

import redis

from alerts.aggregation import ClusterCloser, cluster_incident
from alerts.models import Alert
from alerts.publisher import CLUSTER_DUE, INCIDENTS_STREAM, AlertPublisher, IncidentPolicy, PublishStatus
from tests.incident_fixtures import event, make_camera

T0 = 1_700_000_000.0
# One degree of latitude is about 111 km: 0.0009 deg is about 100 m.
POLICY = IncidentPolicy(cluster_radius_m=500, cluster_window_s=30, cluster_grace_ms=0, merge_window_s=300)


def _alert(camera_id: str, start: float, lat: float, lon: float = 13.4) -> Alert:
    cam = make_camera(camera_id, name=f"Camera {camera_id}", lat=lat, lon=lon)
    return Alert.from_event(event(camera_id, start), cam, "default", snapshot=True)


def _make_due(client: redis.Redis) -> None:
    for cid in client.zrange(CLUSTER_DUE, 0, -1):
        client.zadd(CLUSTER_DUE, {cid: 0})


def test_nearby_events_form_one_incident_far_ones_another(rclient: redis.Redis) -> None:
    pub = AlertPublisher(rclient, 1000, POLICY)
    a = _alert("cam_a", T0, 52.5000)
    b = _alert("cam_b", T0 + 3, 52.5009)  # ~100 m north, 3 s later
    c = _alert("cam_c", T0 + 4, 52.5500)  # ~5.5 km away
    d = _alert("cam_d", T0 + 40, 52.5001)  # near a, but outside the 30 s window
    outcomes = [pub.publish_one(x) for x in (a, b, c, d)]
    assert [o.status for o in outcomes] == [PublishStatus.CLUSTERED] * 4
    assert outcomes[0].ref == outcomes[1].ref == a.id
    assert len({o.ref for o in outcomes}) == 3
    closer = ClusterCloser(rclient, POLICY)
    assert closer.close_due() == []  # windows still open
    assert rclient.xlen(INCIDENTS_STREAM) == 0
    _make_due(rclient)
    closed = closer.close_due()
    assert sorted(c.events for c in closed) == [1, 1, 2]
    assert rclient.xlen(INCIDENTS_STREAM) == 3
    incidents = {}
    for _sid, fields in rclient.xrange(INCIDENTS_STREAM):
        incident = Alert.model_validate_json(fields[b"alert"])
        incidents[incident.id] = (incident, fields)
    pair, fields = incidents[a.id]
    assert fields[b"kind"] == b"cluster" and fields[b"events"] == b"2"
    assert [r.id for r in pair.related] == [b.id]
    assert pair.related[0].camera_name == "Camera cam_b"
    assert pair.related[0].location.coordinates == (13.4, 52.5009)
    assert pair.related[0].snapshot == f"/api/v1/alerts/{b.id}/snapshot"
    assert closer.close_due() == []  # nothing left, nothing twice


def test_racing_closers_publish_a_cluster_once(rclient: redis.Redis) -> None:
    pub = AlertPublisher(rclient, 1000, POLICY)
    for i in range(5):
        pub.publish_one(_alert(f"cam_{i}", T0 + i, 52.5 + i * 0.0001))
    _make_due(rclient)
    results: list[int] = []
    barrier = threading.Barrier(4)

    def close() -> None:
        barrier.wait()
        results.extend(
            c.events for c in ClusterCloser(redis.Redis(connection_pool=rclient.connection_pool), POLICY).close_due()
        )

    threads = [threading.Thread(target=close) for _ in range(4)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert results == [5]
    assert rclient.xlen(INCIDENTS_STREAM) == 1


def test_a_member_joining_while_closing_is_not_lost(rclient: redis.Redis) -> None:
    pub = AlertPublisher(rclient, 1000, POLICY)
    pub.publish_one(_alert("cam_a", T0, 52.5))
    _make_due(rclient)
    closer = ClusterCloser(rclient, POLICY)
    [cluster_id] = closer.due()
    real_lrange = rclient.lrange

    def lrange_then_join(*args: object, **kw: object) -> object:
        members = real_lrange(*args, **kw)  # type: ignore[arg-type]
        pub.publish_one(_alert("cam_b", T0 + 1, 52.5001))  # joins after the closer read the members
        return members

    rclient.lrange = lrange_then_join  # type: ignore[method-assign]
    assert closer.close(cluster_id) is None  # the script saw the change and refused
    rclient.lrange = real_lrange  # type: ignore[method-assign]
    [closed] = closer.close_due()
    assert closed.events == 2


def test_cluster_incident_is_the_earliest_event() -> None:
    late = _alert("cam_b", T0 + 5, 52.5)
    early = _alert("cam_a", T0, 52.5)
    incident = cluster_incident([late, early])
    assert incident.id == early.id and [r.id for r in incident.related] == [late.id]


def test_storm_control_applies_before_clustering(rclient: redis.Redis) -> None:
    pub = AlertPublisher(rclient, 1000, POLICY)
    first = pub.publish_one(_alert("cam_a", T0, 52.5))
    again = pub.publish_one(_alert("cam_a", T0 + 100, 52.5))
    assert first.status is PublishStatus.CLUSTERED
    assert again.status is PublishStatus.MERGED
    assert rclient.zcard(CLUSTER_DUE) == 1
