"""The camera registry on a real Redis-protocol server: writes, audit, passwords, concurrency, probes."""

from __future__ import annotations

import json
import threading
from datetime import UTC, datetime
from typing import Any

import pytest
import redis
from cryptography.fernet import Fernet

from api.audit import AUDIT_STREAM, read_audit
from ingest.cameras import CameraSpec
from ingest.probe_result import ProbeResult, StreamProfile
from ingest.registry import (
    CAMERA_KEY,
    CameraRegistry,
    DuplicateExternalId,
    RowChange,
    RowStatus,
    StreamPolicy,
)
from ingest.secretbox import SecretBox


@pytest.fixture
def registry(rclient: redis.Redis) -> CameraRegistry:
    return CameraRegistry(rclient, SecretBox(Fernet.generate_key()))


def spec(**fields: Any) -> CameraSpec:
    base: dict[str, Any] = {"name": "Gate", "stream_url": "rtsp://10.0.0.5/s", "location": {"lat": 52.0, "lon": 4.0}}
    return CameraSpec.model_validate({**base, **fields})


def test_create_get_update_delete_each_audited(registry: CameraRegistry, rclient: redis.Redis) -> None:
    v0 = registry.version()
    camera = registry.create(spec(external_id="E-1"), "alice")
    assert registry.get(camera.id) == camera and registry.by_external_id("E-1") == camera
    assert registry.version() == v0 + 1
    before, after = registry.update(camera.id, spec(external_id="E-2", name="Gate 2"), "bob") or (None, None)
    assert before == camera and after is not None and after.name == "Gate 2" and after.updated_by == "bob"
    assert after.created_by == "alice" and registry.by_external_id("E-1") is None
    assert registry.delete(camera.id, "carol") == after
    assert registry.get(camera.id) is None and registry.ids() == [] and registry.by_external_id("E-2") is None
    entries = list(reversed(read_audit(rclient, 10, None)))
    assert [(e["actor"], e["action"], e["target"]) for e in entries] == [
        ("alice", "camera.create", camera.id),
        ("bob", "camera.update", camera.id),
        ("carol", "camera.delete", camera.id),
    ]
    assert entries[1]["before"]["name"] == "Gate" and entries[1]["after"]["name"] == "Gate 2"
    assert entries[2]["before"]["external_id"] == "E-2" and entries[2]["after"] is None


def test_an_update_that_changes_nothing_writes_nothing(registry: CameraRegistry, rclient: redis.Redis) -> None:
    camera = registry.create(spec(), "alice")
    version, audited = registry.version(), rclient.xlen(AUDIT_STREAM)
    before, after = registry.update(camera.id, spec(), "bob") or (None, None)
    assert after is before is not None and after.updated_by == "alice"
    assert (registry.version(), rclient.xlen(AUDIT_STREAM)) == (version, audited)


def test_passwords_are_encrypted_kept_changed_and_removed(registry: CameraRegistry, rclient: redis.Redis) -> None:
    camera = registry.create(spec(username="admin", password="first pw"), "alice")
    raw = rclient.get(CAMERA_KEY.format(id=camera.id))
    assert raw is not None and b"first pw" not in raw
    assert registry.password(camera) == "first pw"
    assert registry.reader_url(camera) == "rtsp://admin:first%20pw@10.0.0.5/s"
    # No password in an update keeps it; the same one again changes nothing.
    kept = registry.update(camera.id, spec(username="admin", name="Renamed"), "bob")
    assert kept is not None and registry.password(kept[1]) == "first pw"
    same = registry.update(camera.id, spec(username="admin", name="Renamed", password="first pw"), "bob")
    assert same is not None and same[0] is same[1]
    changed = registry.update(camera.id, spec(username="admin", name="Renamed", password="second"), "bob")
    assert changed is not None and registry.password(changed[1]) == "second"
    assert changed[1].password_updated_at is not None
    cleared = registry.update(camera.id, spec(username="admin", name="Renamed", password=""), "bob")
    assert cleared is not None and cleared[1].password_enc is None and registry.reader_url(cleared[1]).count("@") == 1
    audit_text = json.dumps(read_audit(rclient, 100, None))
    assert "first pw" not in audit_text and "second" not in audit_text and "password_enc" not in audit_text
    assert '"has_password": true' in audit_text and '"has_password": false' in audit_text


def test_external_ids_are_unique(registry: CameraRegistry) -> None:
    registry.create(spec(external_id="E-1"), "alice")
    with pytest.raises(DuplicateExternalId, match="'E-1' already belongs to camera cam_"):
        registry.create(spec(external_id="E-1"), "bob")
    other = registry.create(spec(external_id="E-2"), "bob")
    with pytest.raises(DuplicateExternalId):
        registry.update(other.id, spec(external_id="E-1"), "bob")
    assert len(registry.ids()) == 2


def test_concurrent_writers_lose_nothing(rclient: redis.Redis, redis_url: str) -> None:
    """Eight threads, each with its own connection, create and rename cameras at once."""
    box = SecretBox(Fernet.generate_key())
    errors: list[BaseException] = []

    def work(n: int) -> None:
        reg = CameraRegistry(redis.Redis.from_url(redis_url), box)
        try:
            for i in range(25):
                camera = reg.create(spec(external_id=f"T{n}-{i}"), f"t{n}")
                reg.update(camera.id, spec(external_id=f"T{n}-{i}", name=f"renamed {n}-{i}"), f"t{n}")
        except BaseException as exc:  # collected, then asserted empty in the test thread
            errors.append(exc)

    threads = [threading.Thread(target=work, args=(n,)) for n in range(8)]
    for t in threads:
        t.start()
    for t in threads:
        t.join()
    assert not errors
    registry = CameraRegistry(rclient, box)
    cameras = registry.all()
    assert len(cameras) == 200 and all(c.name.startswith("renamed") for c in cameras)
    assert registry.version() == 400 and rclient.xlen(AUDIT_STREAM) == 400
    assert len(set(registry.ids_of_external([c.external_id or "" for c in cameras]))) == 200


def test_snapshot_reloads_only_when_the_version_moves(registry: CameraRegistry) -> None:
    a = registry.create(spec(external_id="A"), "t")
    registry.create(spec(external_id="B"), "t")
    first = registry.snapshot()
    assert registry.snapshot() is first and {c.external_id for c in first.cameras} == {"A", "B"}
    registry.update(a.id, spec(external_id="A", name="Renamed"), "t")
    second = registry.snapshot()
    assert second is not first and second.by_id[a.id].name == "Renamed"
    # Unchanged cameras are the very same objects: only changed documents are parsed again.
    unchanged = [c for c in first.cameras if c.id != a.id]
    assert all(second.by_id[c.id] is c for c in unchanged)
    assert second.ids == tuple(sorted(second.ids))


def test_rows_merge_into_existing_cameras_and_report_bad_fields(registry: CameraRegistry) -> None:
    existing = registry.create(spec(external_id="E-1", username="u", password="pw"), "alice")
    rows = [
        RowChange(2, None, "E-1", {"external_id": "E-1", "name": "Merged"}),
        RowChange(3, None, "E-9", {"external_id": "E-9", "name": "New", "location": {"lat": 1, "lon": 2}}),
        RowChange(4, None, "E-8", {"external_id": "E-8", "name": "No place", "stream_url": "rtsp://h/s"}),
        RowChange(5, "cam_000000000000", None, {"name": "x"}),
    ]
    outcomes = registry.apply_rows(rows, "bob")
    assert [o.status for o in outcomes] == [RowStatus.UPDATED, RowStatus.FAILED, RowStatus.FAILED, RowStatus.FAILED]
    assert outcomes[0].camera is not None and outcomes[0].camera.id == existing.id
    assert registry.password(outcomes[0].camera) == "pw"
    assert (outcomes[1].field, outcomes[1].reason) == (
        "stream_url",
        "give stream_url (rtsp://...) or onvif_url (the camera's ONVIF address), or both",
    )
    assert outcomes[2].field == "location"
    assert (outcomes[3].field, outcomes[3].reason) == ("id", "no camera with id 'cam_000000000000'")
    again = registry.apply_rows(rows[:1], "bob")
    assert again[0].status is RowStatus.UNCHANGED


def probe_result(ok: bool = True) -> ProbeResult:
    profiles = (
        StreamProfile(token="main", uri="rtsp://10.0.0.5/main", codec="H264", width=1920, height=1080),
        StreamProfile(token="sub", uri="rtsp://10.0.0.5/sub", codec="H264", width=640, height=360),
    )
    return ProbeResult(
        probed_at=datetime.now(UTC),
        onvif_url="http://10.0.0.5:80/onvif/device_service",
        ok=ok,
        profiles=profiles if ok else (),
        detection_profile="sub" if ok else None,
        main_profile="main" if ok else None,
        error=None if ok else "timeout",
        message=None if ok else "no answer",
    )


def test_probe_results_fill_or_replace_streams_and_are_audited(registry: CameraRegistry, rclient: redis.Redis) -> None:
    by_onvif = registry.create(spec(stream_url=None, onvif_url="10.0.0.5"), "alice")
    by_rtsp = registry.create(spec(stream_url="rtsp://10.0.0.5/custom", onvif_url="10.0.0.5"), "alice")
    version = registry.version()
    stored = registry.record_probes(
        [(by_onvif.id, probe_result()), (by_rtsp.id, probe_result())], StreamPolicy.FILL, "bob"
    )
    assert stored[0] is not None and stored[0].stream_url == "rtsp://10.0.0.5/sub"
    assert stored[0].main_stream_url == "rtsp://10.0.0.5/main"
    assert stored[1] is not None and stored[1].stream_url == "rtsp://10.0.0.5/custom"  # fill keeps what is set
    assert registry.version() == version + 1
    replaced = registry.record_probes([(by_rtsp.id, probe_result())], StreamPolicy.REPLACE, "bob")[0]
    assert replaced is not None and replaced.stream_url == "rtsp://10.0.0.5/sub"
    # A failed probe is stored, changes no stream, and does not move the version (workers need not reload).
    version = registry.version()
    registry.record_probes([(by_rtsp.id, probe_result(ok=False))], StreamPolicy.REPLACE, "bob")
    assert registry.version() == version
    assert registry.probe(by_rtsp.id) == probe_result(ok=False).model_copy(
        update={"probed_at": registry.probe(by_rtsp.id).probed_at}  # type: ignore[union-attr]
    )
    actions = [e["action"] for e in read_audit(rclient, 100, None, action_prefix="camera.probe")]
    assert actions == ["camera.probe"] * 4
    assert registry.record_probes([("cam_000000000000", probe_result())], StreamPolicy.FILL, "bob") == [None]


def test_deleting_a_camera_drops_its_probe(registry: CameraRegistry) -> None:
    camera = registry.create(spec(onvif_url="10.0.0.5"), "alice")
    registry.record_probes([(camera.id, probe_result())], StreamPolicy.KEEP, "alice")
    assert registry.probe(camera.id) is not None
    registry.delete(camera.id, "alice")
    assert registry.probe(camera.id) is None
