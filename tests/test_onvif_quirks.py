"""Probe behaviour on camera quirks ipycam cannot produce, against stored replies (tests/data/onvif)."""

from __future__ import annotations

import asyncio

from ingest.netguard import NetGuard
from ingest.onvif_probe import ProbeConfig, probe_camera
from ingest.probe_result import ProbeErrorKind, ProbeResult
from tests.onvif_replay import OnvifReplay

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
