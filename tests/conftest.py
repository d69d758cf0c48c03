"""Fixtures on real peers: one Redis-protocol server per session (flushed between tests), the GStreamer
RTSP server, generated H.264 clips, and API clients with a token per role."""

from __future__ import annotations

import socket
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
import redis
from fastapi.testclient import TestClient

from api.app import create_app
from api.auth import Role, TokenStore
from config.settings import Settings, load_settings
from ingest.synthetic import standard_clip
from tests.peers import gst_available, redis_server_url

# Fixture modules shared by several test files; registered here, the root conftest, as pytest requires.
pytest_plugins = ["tests.ingest_fixtures", "tests.ipycam_fixtures"]

CLIP_CACHE = Path(__file__).resolve().parent.parent / "var" / "test-clips"


@pytest.fixture(scope="session")
def redis_url() -> Iterator[str]:
    """The embedded Valkey, or the server SHARPEYES_TEST_REDIS_URL names."""
    with redis_server_url() as url:
        yield url


@pytest.fixture
def rclient(redis_url: str) -> Iterator[redis.Redis]:
    """A client on a freshly flushed database."""
    client = redis.Redis.from_url(redis_url)
    client.flushall()
    yield client
    client.close()


@pytest.fixture
def settings(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Settings:
    """Settings tuned for fast tests: frequent health reports and registry polls, short timeouts."""
    for var in [v for v in __import__("os").environ if v.startswith("SHARPEYES_") and v != "SHARPEYES_TEST_REDIS_URL"]:
        monkeypatch.delenv(var)
    return load_settings(
        redis_url=redis_url,
        data_dir=tmp_path / "data",
        health_interval_s=0.5,
        registry_poll_s=0.2,
        open_timeout_s=3.0,
        read_timeout_s=3.0,
        event_end_quiet_s=2.0,
    )


@pytest.fixture(scope="session")
def clip_dir() -> Path:
    """Generated clips are cached across runs (keyed by their recipe's hash)."""
    CLIP_CACHE.mkdir(parents=True, exist_ok=True)
    return CLIP_CACHE


@pytest.fixture(scope="session")
def walker_h264(clip_dir: Path) -> Path:
    """Raw H.264: quiet for 4 s, a person-sized object crosses the middle from 4 s to 9 s, 12 s loop."""
    return standard_clip("walker", clip_dir, container="h264")


@pytest.fixture(scope="session")
def quiet_h264(clip_dir: Path) -> Path:
    """Raw H.264 of the same scene with nothing moving."""
    return standard_clip("quiet", clip_dir, container="h264")


@pytest.fixture(scope="session")
def need_gst() -> None:
    """Fail (not skip) with the install command when the RTSP server cannot run: `make test` installs it."""
    missing = gst_available()
    if missing is not None:
        pytest.fail(f"GStreamer's RTSP server is missing; run `make system-deps` or: {missing}")


@pytest.fixture
def tokens(rclient: redis.Redis) -> dict[Role, str]:
    """One token per role."""
    store = TokenStore(rclient)
    return {role: store.create(f"test-{role.value}", role) for role in Role}


@pytest.fixture
def api(settings: Settings, redis_url: str, rclient: redis.Redis) -> Iterator[TestClient]:
    """The API app with its lifespan running."""
    with TestClient(create_app(settings, redis_url)) as client:
        yield client


def auth(token: str) -> dict[str, str]:
    """Authorization header for ``token``."""
    return {"Authorization": f"Bearer {token}"}


@pytest.fixture
def black_hole() -> Iterator[int]:
    """A port that accepts TCP connections (into the backlog) and never says a word: a hung camera."""
    sock = socket.socket()
    sock.bind(("127.0.0.1", 0))
    sock.listen(16)
    yield sock.getsockname()[1]
    sock.close()


class _Hello(BaseHTTPRequestHandler):
    def do_GET(self) -> None:
        self.send_response(200)
        self.end_headers()
        self.wfile.write(b"hello")

    def log_message(self, *args: object) -> None:
        pass


@pytest.fixture
def http_port() -> Iterator[int]:
    """A real HTTP server on loopback: what a camera URL pointing at the wrong service (not RTSP) reaches."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Hello)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield server.server_address[1]
    server.shutdown()
    server.server_close()
