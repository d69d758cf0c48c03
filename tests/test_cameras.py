"""The camera models: what an operator may send, how the password is kept out of sight."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import pytest
from pydantic import ValidationError

from detectors.zones import ZoneKind
from ingest.cameras import (
    FULL_FRAME_ZONE,
    Camera,
    CameraSpec,
    Location,
    normalise_onvif_url,
    redact_url,
    spec_with,
    stream_url_with_credentials,
)

BASE: dict[str, Any] = {
    "name": "Main St",
    "stream_url": "rtsp://10.0.0.5/stream1",
    "location": {"lat": 52.1, "lon": 4.3},
}


def errors(**fields: Any) -> list[tuple[str, str]]:
    with pytest.raises(ValidationError) as info:
        CameraSpec.model_validate({**BASE, **fields})
    return [(".".join(str(p) for p in e["loc"]), e["msg"]) for e in info.value.errors()]


def test_minimal_spec_gets_a_full_frame_zone() -> None:
    spec = CameraSpec.model_validate(BASE)
    assert spec.zones == (FULL_FRAME_ZONE,)
    assert spec.enabled and spec.schedule is None and spec.password is None


@pytest.mark.parametrize(
    ("fields", "field", "words"),
    [
        ({"location": {"lat": 91, "lon": 0}}, "location.lat", "less than or equal to 90"),
        ({"location": {"lat": 0, "lon": -180.5}}, "location.lon", "greater than or equal to -180"),
        ({"location": {"lat": "north", "lon": 0}}, "location.lat", "valid number"),
        ({"location": {"lat": float("nan"), "lon": 0}}, "location.lat", "finite number"),
        ({"stream_url": "rtsp://admin:pw@10.0.0.5/s"}, "stream_url", "must not embed credentials"),
        ({"main_stream_url": "rtsp://u@10.0.0.5/s"}, "main_stream_url", "must not embed credentials"),
        ({"stream_url": "http://10.0.0.5/video.mjpg"}, "stream_url", "scheme 'http' is not supported"),
        ({"onvif_url": "http://admin:pw@10.0.0.5"}, "onvif_url", "must not embed credentials"),
        ({"onvif_url": "https://10.0.0.5"}, "onvif_url", "scheme 'https' is not supported"),
        ({"onvif_url": "10.0.0.5/cgi-bin/x"}, "onvif_url", "only the standard device service path"),
        ({"name": "  "}, "name", "must not be blank"),
        ({"name": "a\nb"}, "name", "control characters"),
        ({"tags": ["ok", "no;semicolons"]}, "tags", "tag 'no;semicolons' is invalid"),
        ({"colour": "red"}, "colour", "Extra inputs are not permitted"),
        ({"enabled": "maybe"}, "enabled", "valid boolean"),
        (
            {"zones": [{"name": "z", "polygon": [[0, 0], [1, 1], [1, 0], [0, 0.6]]}]},
            "zones.0.polygon",
            "self-intersecting",
        ),
        ({"zones": [{"name": "z", "polygon": [[0, 0], [0.5, 0.5], [1, 1]]}]}, "zones.0.polygon", "degenerate"),
        ({"zones": [{"name": "z", "kind": "privacy", "polygon": [[0, 0], [1, 0], [1, 1]]}]}, "zones", "kind 'detect'"),
        ({"password": "secret"}, "password", "a password needs a username"),
        ({"stream_url": None}, "stream_url", "give stream_url"),
        ({"external_id": " padded "}, "external_id", "start or end with spaces"),
        ({"schedule": {"intervals": [{"start": "25:00", "end": "06:00"}]}}, "schedule.intervals.0.start", "HH:MM"),
    ],
)
def test_bad_fields_are_named(fields: dict[str, Any], field: str, words: str) -> None:
    found = errors(**fields)
    assert any(loc == field and words in msg for loc, msg in found), found


def test_onvif_addresses_are_normalised() -> None:
    assert normalise_onvif_url("10.0.0.5") == "http://10.0.0.5:80/onvif/device_service"
    assert normalise_onvif_url("cam-17.district.city:8080") == "http://cam-17.district.city:8080/onvif/device_service"
    assert (
        normalise_onvif_url("http://[fd00::5]:8000/onvif/device_service")
        == "http://[fd00::5]:8000/onvif/device_service"
    )
    spec = CameraSpec.model_validate({**BASE, "stream_url": None, "onvif_url": "10.0.0.5:8000"})
    assert spec.onvif_url == "http://10.0.0.5:8000/onvif/device_service"


def test_tags_are_sorted_and_unique() -> None:
    assert CameraSpec.model_validate({**BASE, "tags": ["school", "park", "school"]}).tags == ("park", "school")


def test_secrets_are_masked_in_validation_errors() -> None:
    body = {**BASE, "stream_url": "rtsp://admin:hunter2@10.0.0.5/s", "password": "hunter2", "name": ""}
    with pytest.raises(ValidationError) as info:
        CameraSpec.model_validate(body)
    assert "hunter2" not in str(info.value) and "hunter2" not in repr(info.value.errors())


def test_password_is_masked_in_reprs_and_dumps() -> None:
    spec = CameraSpec.model_validate({**BASE, "username": "admin", "password": "hunter2"})
    assert "hunter2" not in repr(spec) and "hunter2" not in str(spec)
    assert "hunter2" not in spec.model_dump_json()
    now = datetime.now(UTC)
    camera = Camera(
        **{k: v for k, v in spec.model_dump().items() if k != "password"},
        id="cam_000000000001",
        created_at=now,
        updated_at=now,
        created_by="t",
        updated_by="t",
        password_enc="gAAAAA-ciphertext",
    )
    assert "gAAAAA" not in repr(camera)
    public = camera.public()
    assert "password_enc" not in public and public["has_password"] is True


def test_credentials_go_into_the_reader_url_encoded_and_out_of_logs() -> None:
    url = stream_url_with_credentials("rtsp://10.0.0.5:554/s?x=1", "ad min", "p@ss:w/rd")
    assert url == "rtsp://ad%20min:p%40ss%3Aw%2Frd@10.0.0.5:554/s?x=1"
    assert redact_url(url) == "rtsp://ad%20min:***@10.0.0.5:554/s?x=1"
    assert stream_url_with_credentials("rtsp://10.0.0.5/s", None, None) == "rtsp://10.0.0.5/s"
    assert stream_url_with_credentials("file:///clips/a.mp4", "u", "p") == "file:///clips/a.mp4"
    assert stream_url_with_credentials(None, "u", "p") is None


def test_spec_with_merges_a_partial_location_and_keeps_the_password() -> None:
    spec = CameraSpec.model_validate({**BASE, "location": {"lat": 1, "lon": 2, "district": "North"}})
    now = datetime.now(UTC)
    camera = Camera(
        **{k: v for k, v in spec.model_dump().items() if k != "password"},
        id="cam_000000000001",
        created_at=now,
        updated_at=now,
        created_by="t",
        updated_by="t",
    )
    changed = spec_with(camera, {"location": {"lat": 3}, "name": "New"})
    assert changed.location == Location(lat=3, lon=2, district="North")
    assert changed.name == "New" and changed.password is None


def test_camera_schedule_applies_to_detect_zones_without_their_own() -> None:
    spec = CameraSpec.model_validate(
        {
            **BASE,
            "schedule": {"timezone": "Europe/Amsterdam", "intervals": [{"start": "22:00", "end": "06:00"}]},
            "zones": [
                {"name": "yard", "polygon": [[0, 0], [1, 0], [1, 1]]},
                {"name": "window", "kind": "privacy", "polygon": [[0, 0], [0.2, 0], [0.2, 0.2]]},
            ],
        }
    )
    yard, window = spec.effective_zones
    assert yard.schedule == spec.schedule and window.kind is ZoneKind.PRIVACY and window.schedule is None
    # 2026-01-05 12:00 UTC is 13:00 in Amsterdam: outside 22:00-06:00.
    assert not yard.armed_at(datetime(2026, 1, 5, 12, 0, tzinfo=UTC).timestamp())
    assert yard.armed_at(datetime(2026, 1, 5, 23, 30, tzinfo=UTC).timestamp())
