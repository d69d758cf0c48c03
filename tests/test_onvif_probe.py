"""The ONVIF probe against ipycam (a real, third-party ONVIF camera emulator) and real loopback sockets."""

from __future__ import annotations

import asyncio
import http.server
import socket
import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.netguard import NetGuard
from ingest.onvif_probe import ProbeConfig, probe_camera
from ingest.probe_result import ProbeErrorKind, ProbeResult
from ingest.reader import ReaderOptions, StreamReader
from tests.ipycam_fixtures import IpyCam
from tests.peers import free_port

LOOPBACK = ProbeConfig(NetGuard.from_setting("127.0.0.0/8"), timeout_s=5.0, max_clock_skew_s=300.0)


def probe(
    url: str, user: str | None = None, password: str | None = None, config: ProbeConfig = LOOPBACK
) -> ProbeResult:
    return asyncio.run(probe_camera(url, user, password, config))


def test_probe_with_credentials_finds_device_profiles_and_streams(locked_camera: IpyCam) -> None:
    result = probe(locked_camera.onvif_url, "admin", "s3cret pass")
    assert result.ok, result.message
    assert (result.manufacturer, result.model, result.serial) == ("PythonCam", "VirtualCam-1", "PY-000001")
    assert {"device", "media", "ptz"} <= set(result.services)
    assert "Media" in result.capabilities
    by_token = {p.token: p for p in result.profiles}
    main, sub = by_token["Profile_Main"], by_token["Profile_Sub"]
    assert (main.codec, main.width, main.height, main.fps, main.bitrate_kbps) == ("H264", 640, 360, 10.0, 600)
    assert (sub.width, sub.height, sub.bitrate_kbps) == (320, 180, 250)
    assert main.gop is None  # ipycam reports no GovLength; nothing is made up
    assert main.uri == f"rtsp://127.0.0.1:{locked_camera.rtsp_port}/video_main"
    assert sub.uri == f"rtsp://127.0.0.1:{locked_camera.rtsp_port}/video_sub"
    # The smallest profile at least 320 px wide detects; the largest is the main stream.
    assert (result.detection_profile, result.main_profile) == ("Profile_Sub", "Profile_Main")
    assert result.clock_skew_s is not None and abs(result.clock_skew_s) < 5
    assert result.warnings == ()


def test_probe_without_credentials_on_an_open_camera(open_camera: IpyCam) -> None:
    result = probe(open_camera.onvif_url)
    assert result.ok, result.message
    assert result.detection_stream is not None and result.detection_stream.width == 320


def test_probe_without_credentials_on_a_locked_camera(locked_camera: IpyCam) -> None:
    result = probe(locked_camera.onvif_url)
    assert (result.ok, result.error) == (False, ProbeErrorKind.BAD_CREDENTIALS)
    assert result.message == "the camera requires a username and password: give both and probe again"


def test_probe_with_a_wrong_password(locked_camera: IpyCam) -> None:
    result = probe(locked_camera.onvif_url, "admin", "wrong")
    assert (result.ok, result.error) == (False, ProbeErrorKind.BAD_CREDENTIALS)
    assert result.message is not None and "refused the username or password" in result.message
    assert "wrong" not in result.model_dump_json()


def test_stream_uri_leads_to_a_stream_the_ingest_engine_decodes(locked_camera: IpyCam) -> None:
    result = probe(locked_camera.onvif_url, "admin", "s3cret pass")
    for profile, size in ((result.detection_stream, (320, 180)), (result.main_stream, (640, 360))):
        assert profile is not None and profile.uri is not None
        options = ReaderOptions(open_timeout_s=10.0, read_timeout_s=10.0)
        with StreamReader(profile.uri, options, "admin", "s3cret pass") as reader:
            decoded = []
            for frame in reader.frames():
                decoded.append((frame.width, frame.height))
                if len(decoded) == 3:
                    break
        assert decoded == [size] * 3


def test_clock_skew_is_named_when_the_login_fails_because_of_it(need_ipycam: None, ipycam_clip: Path) -> None:
    with IpyCam(ipycam_clip, username="admin", password="pw", clock_offset_s=7200) as cam:
        result = probe(cam.onvif_url, "admin", "pw")
    assert (result.ok, result.error) == (False, ProbeErrorKind.CLOCK_SKEW)
    assert result.clock_skew_s is not None and 7100 < result.clock_skew_s < 7300
    assert result.message is not None and "2.0 h ahead of this server's" in result.message
    assert "NTP" in result.message


def test_nothing_listening_is_unreachable() -> None:
    result = probe(f"http://127.0.0.1:{free_port()}/onvif/device_service")
    assert result.error is ProbeErrorKind.UNREACHABLE
    assert result.message is not None and "nothing accepts connections" in result.message


@pytest.fixture
def silent_port() -> Iterator[int]:
    """A port whose connections the kernel accepts and nobody ever answers."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        sock.listen(16)
        yield sock.getsockname()[1]


def test_a_port_that_never_answers_times_out(silent_port: int) -> None:
    quick = ProbeConfig(LOOPBACK.guard, timeout_s=1.0, max_clock_skew_s=300.0)
    result = probe(f"http://127.0.0.1:{silent_port}/onvif/device_service", config=quick)
    assert result.error is ProbeErrorKind.TIMEOUT
    assert result.message is not None and "no complete answer within 1 s" in result.message


class _WebPage(http.server.BaseHTTPRequestHandler):
    def do_POST(self) -> None:
        body = b"<html><body>Router login</body></html>"
        self.send_response(404)
        self.send_header("Content-Type", "text/html")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def web_server() -> Iterator[int]:
    """A plain web server on loopback that is not a camera."""
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _WebPage)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()


def test_a_web_server_that_is_not_a_camera(web_server: int) -> None:
    result = probe(f"http://127.0.0.1:{web_server}/onvif/device_service")
    assert result.error is ProbeErrorKind.NOT_ONVIF
    assert result.message == (
        f"127.0.0.1:{web_server} answers HTTP 404 (text/html) at /onvif/device_service, not ONVIF: check the port "
        "and that ONVIF is enabled in the camera's settings"
    )


def test_hosts_outside_the_allowed_networks_are_refused_without_a_connection(web_server: int) -> None:
    default = ProbeConfig(NetGuard.from_setting("10.0.0.0/8,172.16.0.0/12,192.168.0.0/16"), 5.0, 300.0)
    result = probe(f"http://127.0.0.1:{web_server}/onvif/device_service", config=default)
    assert result.error is ProbeErrorKind.NOT_ALLOWED
    assert result.message is not None and "SHARPEYES_PROBE_ALLOWED_NETWORKS" in result.message
    named = probe(f"http://localhost:{web_server}/onvif/device_service", config=default)
    assert named.error is ProbeErrorKind.NOT_ALLOWED
    assert named.message is not None and "host 'localhost' resolves to 127.0.0.1" in named.message
