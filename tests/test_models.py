"""The alert schema: versioned, generated JSON Schema in the repo, stable idempotency keys, safe labels."""

from __future__ import annotations

import json

from alerts.models import SCHEMA_PATH, SCHEMA_VERSION, Alert, alert_json_schema, idempotency_key, render_schema
from detectors.events import EventPhase, EventType
from tests.incident_fixtures import event, make_camera


def test_schema_file_matches_the_model() -> None:
    assert SCHEMA_PATH.read_text() == render_schema(), (
        "alerts/alert.schema.json drifted from alerts.models.Alert: regenerate it with "
        "`.venv/bin/python -m alerts.models > alerts/alert.schema.json` (and bump SCHEMA_VERSION if a consumer "
        "could notice)"
    )


def test_schema_lists_every_field_the_issue_asks_for() -> None:
    schema = alert_json_schema()
    required_fields = {
        "schema_version", "id", "idempotency_key", "camera_id", "camera_name", "location", "district", "grid_cell",
        "zone", "type", "severity", "started_at", "updated_at", "ended_at", "peak_fraction", "bbox", "snapshot",
        "clip", "params",
    }  # fmt: skip
    assert required_fields <= set(schema["properties"])
    assert schema["additionalProperties"] is False
    assert schema["properties"]["schema_version"]["const"] == SCHEMA_VERSION


def test_every_message_carries_the_schema_version() -> None:
    alert = Alert.from_event(event("cam_1", 1_700_000_000.0), make_camera("cam_1"), "default", snapshot=False)
    assert json.loads(alert.model_dump_json())["schema_version"] == SCHEMA_VERSION


def test_location_is_a_geojson_point_lon_lat() -> None:
    alert = Alert.from_event(event("cam_1", 1e9), make_camera("cam_1", lat=52.5, lon=13.4), "default", snapshot=True)
    dumped = json.loads(alert.model_dump_json())
    assert dumped["location"] == {"type": "Point", "coordinates": [13.4, 52.5]}
    assert dumped["district"] == "Downtown" and dumped["grid_cell"] == "G7"
    assert dumped["snapshot"] == f"/api/v1/alerts/{alert.id}/snapshot"


def test_same_event_same_key_across_phases_and_retries() -> None:
    cam = make_camera("cam_1")
    start = Alert.from_event(event("cam_1", 1_700_000_000.123), cam, "default", snapshot=False)
    end = Alert.from_event(event("cam_1", 1_700_000_000.123, EventPhase.END, t_s=1_700_000_030.0), cam, "d", False)
    again = Alert.from_event(event("cam_1", 1_700_000_000.1234), cam, "default", snapshot=False)
    assert start.idempotency_key == end.idempotency_key == again.idempotency_key == start.id
    other_zone = idempotency_key("cam_1", "other", EventType.MOTION, 1_700_000_000.123)
    other_type = idempotency_key("cam_1", "crosswalk", EventType.TAMPER_COVERED, 1_700_000_000.123)
    later = idempotency_key("cam_1", "crosswalk", EventType.MOTION, 1_700_000_000.125)
    assert len({start.id, other_zone, other_type, later}) == 4
    # Pinned: a change to the key derivation would duplicate every incident in flight during an upgrade.
    assert idempotency_key("cam_1", "z", EventType.MOTION, 1.5) == "5c905ddc41a18769be6665b325f30f37"


def test_message_order_grows_through_the_lifecycle() -> None:
    cam = make_camera("cam_1")
    t0 = 1_700_000_000.0
    start = Alert.from_event(event("cam_1", t0), cam, "d", False)
    update = Alert.from_event(event("cam_1", t0, EventPhase.UPDATE, t_s=t0 + 5), cam, "d", False)
    end = Alert.from_event(event("cam_1", t0, EventPhase.END, t_s=t0 + 5), cam, "d", False)
    assert start.order() < update.order() < end.order()


def test_hostile_labels_are_made_safe_not_lost() -> None:
    name = 'Bad "cam"\x00\x1b[31m\x7f\x85\udcff' + "x" * 10_000
    cam = make_camera("cam_1", name=name, district="D\nE", validate=False)
    alert = Alert.from_event(event("cam_1", 1e9), cam, "default", snapshot=False)
    text = alert.model_dump_json()  # a lone surrogate would make this raise
    back = Alert.model_validate_json(text)
    assert back.camera_name.startswith('Bad "cam"\ufffd\ufffd[31m\ufffd\ufffd\ufffd')
    assert len(back.camera_name) == 256 and back.camera_name.endswith("\u2026")
    assert back.district == "D\ufffdE"
    assert back == alert
