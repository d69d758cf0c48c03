"""Helpers for the incident-path tests: cameras, events, settings, a persistent Redis and a loopback webhook.

The webhook is a real HTTP server (stdlib, 127.0.0.1 only) that records what it was sent; it can answer
200, answer an error status, or be switched off entirely so that connections are refused.
"""

from __future__ import annotations

import json
import threading
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from config.settings import Settings, load_settings
from detectors.events import Event, EventPhase, EventType
from detectors.zones import Zone
from ingest.cameras import Camera, Location
from tests.peers import RedisServerProcess, free_port

ZONE = Zone(name="crosswalk", polygon=((0.2, 0.2), (0.8, 0.2), (0.8, 0.8), (0.2, 0.8)))


def make_camera(
    camera_id: str = "cam_000000000001",
    name: str = "Main St & 3rd",
    *,
    lat: float = 40.7128,
    lon: float = -74.006,
    district: str | None = "Downtown",
    zones: tuple[Zone, ...] = (ZONE,),
    validate: bool = True,
    stream_url: str = "rtsp://127.0.0.1:8554/cam",
) -> Camera:
    """A registered camera; ``validate=False`` builds one the registry would have refused (hostile names)."""
    now = datetime.now(UTC)
    loc: dict[str, Any] = {"lat": lat, "lon": lon, "district": district, "grid_cell": "G7"}
    fields: dict[str, Any] = {
        "name": name,
        "stream_url": stream_url,
        "location": Location(**loc) if validate else Location.model_construct(**loc),
        "zones": zones,
        "id": camera_id,
        "created_at": now,
        "updated_at": now,
        "created_by": "test",
        "updated_by": "test",
    }
    return Camera(**fields) if validate else Camera.model_construct(**fields)


def event(
    camera_id: str,
    start_s: float,
    phase: EventPhase = EventPhase.START,
    *,
    zone: str = "crosswalk",
    t_s: float | None = None,
    kind: EventType = EventType.MOTION,
) -> Event:
    """One lifecycle message of an event that started at ``start_s``."""
    t = start_s if t_s is None else t_s
    end = t if phase is EventPhase.END else None
    return Event(camera_id, zone, kind, phase, start_s, t, end, 0.12, (0.3, 0.4, 0.5, 0.8))


def incident_settings(tmp_path: Path, redis_url: str, **overrides: Any) -> Settings:
    """Settings for incident tests: merging off unless asked, data under ``tmp_path``."""
    values: dict[str, Any] = {
        "redis_url": redis_url,
        "data_dir": tmp_path / "data",
        "incident_merge_window_s": 0.0,
        "clips_enabled": False,
    }
    values.update(overrides)
    return load_settings(**values)


def wait_until(check: Callable[[], bool], timeout: float, what: str, interval: float = 0.05) -> None:
    """Poll ``check`` until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not check():
        if time.monotonic() > deadline:
            pytest.fail(f"timed out after {timeout} s waiting for {what}")
        time.sleep(interval)


def aof_redis(tmp_path: Path) -> Iterator[RedisServerProcess]:
    """A Valkey of its own with append-only persistence, as production runs it (restartable, killable).

    Wrap in a fixture in the test module: ``yield from aof_redis(tmp_path)``.
    """
    with RedisServerProcess(appendonly=True, data_dir=tmp_path / "valkey") as server:
        yield server


class Webhook:
    """A loopback HTTP endpoint standing in for the case system."""

    def __init__(self) -> None:
        self.port = free_port()
        self.status = 200
        self.received: list[dict[str, Any]] = []
        self.attempts = 0
        self._lock = threading.Lock()
        self._server: ThreadingHTTPServer | None = None
        self._thread: threading.Thread | None = None

    @property
    def url(self) -> str:
        """Where to POST."""
        return f"http://127.0.0.1:{self.port}/incidents"

    def start(self) -> None:
        """Listen (connections are refused while stopped)."""
        hook = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                with hook._lock:
                    hook.attempts += 1
                    code = hook.status
                    if code < 300:
                        hook.received.append(
                            {
                                "key": self.headers.get("Idempotency-Key"),
                                "schema": self.headers.get("X-Sharpeyes-Schema-Version"),
                                "body": body,
                            }
                        )
                self.send_response(code)
                self.send_header("Content-Length", "2")
                self.end_headers()
                self.wfile.write(b"{}")

            def log_message(self, format: str, *args: Any) -> None:
                pass

        server = ThreadingHTTPServer(("127.0.0.1", self.port), Handler)
        server.daemon_threads = True
        self._server = server
        self._thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
        self._thread.start()

    def stop(self) -> None:
        """Stop listening: from now on connections are refused."""
        if self._server is not None:
            self._server.shutdown()
            self._server.server_close()
            self._server = None

    def keys(self) -> list[str]:
        """Idempotency keys of the incidents accepted, in arrival order."""
        with self._lock:
            return [str(r["key"]) for r in self.received]

    def bodies(self) -> list[dict[str, Any]]:
        """The accepted incidents, parsed."""
        with self._lock:
            return [json.loads(r["body"]) for r in self.received]


def running_webhook() -> Iterator[Webhook]:
    """A running loopback webhook answering 200 (``yield from running_webhook()`` in a fixture)."""
    hook = Webhook()
    hook.start()
    yield hook
    hook.stop()
