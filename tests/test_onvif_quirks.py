"""Probe behaviour on camera quirks ipycam cannot produce, against stored replies (tests/data/onvif).

The device folders replay replies recorded from real cameras (provenance in that folder's README and in each
``_source.json``); the other folders are composed.
"""

from __future__ import annotations

import asyncio
import hashlib
import json
from datetime import UTC, datetime

import pytest

from ingest.netguard import NetGuard
from ingest.onvif_probe import ProbeConfig, probe_camera
from ingest.probe_result import ProbeErrorKind, ProbeResult
from tests.onvif_replay import DATA, OnvifReplay

RECORDED = sorted(p.parent.name for p in DATA.glob("*/_source.json"))

LOOPBACK = ProbeConfig(NetGuard.from_setting("127.0.0.0/8"), timeout_s=5.0, max_clock_skew_s=300.0)


def probe(replay: OnvifReplay, user: str | None = "admin", password: str | None = "pw") -> ProbeResult:
    return asyncio.run(probe_camera(replay.onvif_url, user, password, LOOPBACK))


def test_camera_behind_nat_with_one_service_address() -> None:
    with OnvifReplay("nat-single-xaddr") as cam:
        result = probe(cam)
    assert result.ok, result.message
    assert (result.manufacturer, result.model, result.firmware) == ("QuirkCam", "NAT-1 Dome", "10.12.114")
    assert set(result.services) == {"device", "media", "events", "imaging"}
    # Every request went to the probed address, never to the advertised LAN one.
    assert "GetProfiles" in cam.operations
    tokens = {p.token: p for p in result.profiles}
    assert set(tokens) == {"profile_1_h264", "profile_2_h264", "profile_3_jpeg"}  # metadata-only skipped
    main, sub, jpeg = tokens["profile_1_h264"], tokens["profile_2_h264"], tokens["profile_3_jpeg"]
    assert (main.width, main.height, main.fps, main.gop, main.bitrate_kbps) == (1920, 1080, 25.0, 32, 4096)
    assert (sub.width, sub.gop) == (640, 24)
    assert (jpeg.codec, jpeg.gop) == ("JPEG", None)
    # The JPEG profile is smaller, but H.264 is preferred for detection when it is at least 320 px wide.
    assert (result.detection_profile, result.main_profile) == ("profile_2_h264", "profile_1_h264")
    # Stream URIs on the camera's LAN address are moved to the address it was reached at.
    assert sub.uri == "rtsp://127.0.0.1/media/media.amp?profile=profile_2_h264&streamprofile=profile_2_h264"
    assert any("advertises http://192.168.4.12/onvif/services" in w for w in result.warnings)
    # The clock is 2 h ahead but told without a login: the login is compensated, the operator warned.
    assert result.clock_skew_s is not None and 7100 < result.clock_skew_s < 7300
    assert any("clock is 2.0 h ahead" in w and "NTP" in w for w in result.warnings)


def test_camera_that_wants_http_digest_for_everything() -> None:
    with OnvifReplay("http-digest-only") as cam:
        result = probe(cam)
    assert (result.ok, result.error) == (False, ProbeErrorKind.BAD_CREDENTIALS)
    assert result.message is not None and "asks for HTTP authentication" in result.message


def test_camera_with_local_time_only_credentials_in_uri_and_small_profiles() -> None:
    with OnvifReplay("local-time-only") as cam:
        result = probe(cam)
    assert result.ok, result.message
    assert "GetServices" in cam.operations and "GetCapabilities" in cam.operations  # the fallback was taken
    assert result.clock_skew_s is None  # no UTC time given: nothing is guessed
    assert [p.token for p in result.profiles] == ["Profile_1", "Profile_2"]  # audio-only profile skipped
    uri = result.profiles[0].uri
    assert uri == "rtsp://127.0.0.1:554/live/Profile_1"  # credentials removed, 0.0.0.0 replaced
    assert any("credentials into its stream URI; they were removed" in w for w in result.warnings)
    assert any("no profile is at least 320 px wide: detecting on Profile_1 (240x160)" in w for w in result.warnings)
    assert "admin:admin" not in result.model_dump_json()


def test_refused_login_is_bad_credentials_when_the_clock_was_compensated() -> None:
    with OnvifReplay("ws-security-refused") as cam:
        result = probe(cam)
    assert (result.ok, result.error) == (False, ProbeErrorKind.BAD_CREDENTIALS)
    assert result.clock_skew_s is not None and -3700 < result.clock_skew_s < -3500


@pytest.mark.parametrize("folder", RECORDED)
def test_recordings_are_stored_byte_for_byte(folder: str) -> None:
    source = json.loads((DATA / folder / "_source.json").read_text())
    recorded = {p.name for p in (DATA / folder).glob("*.xml") if not p.name.endswith(".composed.xml")}
    assert recorded == set(source["recorded"])  # every plain <Operation>.xml has its provenance
    for name, origin in source["recorded"].items():
        assert hashlib.sha256((DATA / folder / name).read_bytes()).hexdigest() == origin["sha256"], name
        assert b"$" not in (DATA / folder / name).read_bytes()  # nothing for the replay to substitute


def test_hikvision_media1_profiles_with_h265_marked_in_a_vendor_attribute() -> None:
    with OnvifReplay("hikvision-4mp-media1-h265") as cam:
        result = probe(cam)
    assert result.ok, result.message
    main, sub = result.main_stream, result.detection_stream
    assert main is not None and sub is not None
    # The recorded GetProfiles decides all of this; only the stream URIs come from a composed reply.
    assert (result.main_profile, result.detection_profile) == ("Profile_1", "Profile_2")
    assert (main.name, main.width, main.height, main.fps, main.gop, main.bitrate_kbps) == (
        "mainStream",
        1920,
        1080,
        10.0,
        10,
        16384,
    )
    assert (sub.name, sub.codec, sub.width, sub.height, sub.fps, sub.gop, sub.bitrate_kbps) == (
        "subStream",
        "H264",
        640,
        360,
        25.0,
        50,
        768,
    )
    # Media1 says H264 for the main stream; the firmware's encoding="H265" attribute tells what it really sends.
    assert main.codec == "H265"
    assert any("Profile_1" in w and "encoding='H265'" in w for w in result.warnings)
    assert not any("Profile_2" in w for w in result.warnings)


def test_dahua_services_and_stream_on_the_lan_address() -> None:
    with OnvifReplay("dahua-ipc-lan-xaddrs") as cam:
        result = probe(cam)
    assert result.ok, result.message
    # No GetServices reply was recorded: the probe falls back to the recorded GetCapabilities.
    assert cam.operations.index("GetServices") < cam.operations.index("GetCapabilities")
    assert set(result.services) == {"analytics", "events", "imaging", "media"}
    for service in ("analytics_service", "event_service", "imaging_service", "media_service"):
        assert any(f"advertises http://192.168.1.123/onvif/{service}; using 127.0.0.1:" in w for w in result.warnings)
    # Every request went to the probed address, so the media service answered although it "lives" on the LAN.
    assert "GetProfiles" in cam.operations and "GetStreamUri" in cam.operations
    # The recorded stream URI: LAN host replaced, RTSP port kept, &amp; read as &, nothing else touched.
    dahua_sub = "rtsp://127.0.0.1:554/cam/realmonitor?channel=1&subtype=1&unicast=true&proto=Onvif"
    assert {p.uri for p in result.profiles} == {dahua_sub}
    assert any("stream URI names host 192.168.1.123; using 127.0.0.1" in w for w in result.warnings)
    assert result.detection_stream is not None and result.detection_stream.uri == dahua_sub


def test_axis_clock_set_by_hand_years_back_is_read_from_utc_and_named() -> None:
    with OnvifReplay("axis-manual-clock-2024") as cam:
        result = probe(cam)
    # The login was stamped with the camera's own clock (onvif-zeep-async shifts it), so a refusal is the
    # credentials' fault, not the clock's; the clock is named all the same.
    assert (result.ok, result.error) == (False, ProbeErrorKind.BAD_CREDENTIALS)
    recorded_utc = datetime(2024, 7, 9, 19, 49, 6, tzinfo=UTC)  # UTCDateTime; LocalDateTime is 3 h earlier
    assert result.clock_skew_s is not None
    assert abs(result.clock_skew_s - (recorded_utc - result.probed_at).total_seconds()) < 60
    assert result.message is not None and "days behind this server's: set up NTP" in result.message
