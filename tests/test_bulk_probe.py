"""Probing many cameras at once against ipycam instances: bounded concurrency, batched writes, a summary."""

from __future__ import annotations

import asyncio
from typing import Any

import redis
from cryptography.fernet import Fernet

from ingest.bulk_probe import probe_many
from ingest.cameras import CameraSpec
from ingest.netguard import NetGuard
from ingest.onvif_probe import ProbeConfig
from ingest.probe_result import ProbeErrorKind
from ingest.registry import CameraRegistry, StreamPolicy
from ingest.secretbox import SecretBox
from tests.ipycam_fixtures import IpyCam
from tests.peers import free_port


def spec(ext: str, onvif: str | None, **fields: Any) -> CameraSpec:
    body: dict[str, Any] = {"name": ext, "external_id": ext, "location": {"lat": 1, "lon": 2}, "onvif_url": onvif}
    if onvif is None:
        body["stream_url"] = "rtsp://10.0.0.1/s"
    return CameraSpec.model_validate({**body, **fields})


def test_probe_many(rclient: redis.Redis, locked_camera: IpyCam, open_camera: IpyCam) -> None:
    registry = CameraRegistry(rclient, SecretBox(Fernet.generate_key()))
    locked = f"127.0.0.1:{locked_camera.onvif_port}"
    cameras = {
        "good-1": registry.create(spec("good-1", locked, username="admin", password="s3cret pass"), "t"),
        "good-2": registry.create(spec("good-2", locked, username="admin", password="s3cret pass"), "t"),
        "open": registry.create(spec("open", f"127.0.0.1:{open_camera.onvif_port}"), "t"),
        "wrong": registry.create(spec("wrong", locked, username="admin", password="nope"), "t"),
        "gone": registry.create(spec("gone", f"127.0.0.1:{free_port()}"), "t"),
        "rtsp-only": registry.create(spec("rtsp-only", None), "t"),
    }
    seen: list[tuple[int, int]] = []
    config = ProbeConfig(NetGuard.from_setting("127.0.0.0/8"), 5.0, 300.0)
    version = registry.version()
    summary = asyncio.run(
        probe_many(
            registry,
            [c.id for c in cameras.values()],
            config,
            "tester",
            concurrency=2,
            policy=StreamPolicy.FILL,
            progress=lambda done, total: seen.append((done, total)),
            write_every=2,
        )
    )
    assert (summary.probed, summary.ok, summary.skipped) == (5, 3, 1)
    assert summary.by_kind() == {"bad_credentials": 1, "unreachable": 1}
    assert {f.external_id: f.kind for f in summary.failures} == {
        "wrong": ProbeErrorKind.BAD_CREDENTIALS,
        "gone": ProbeErrorKind.UNREACHABLE,
    }
    assert seen[0] == (0, 5) and seen[-1] == (5, 5)
    stored = {c.external_id: c for c in registry.all()}
    assert stored["good-1"].stream_url == f"rtsp://127.0.0.1:{locked_camera.rtsp_port}/video_sub"
    assert stored["open"].main_stream_url == f"rtsp://127.0.0.1:{open_camera.rtsp_port}/video_main"
    assert stored["wrong"].stream_url is None
    assert registry.probe(cameras["gone"].id) is not None and registry.probe(cameras["rtsp-only"].id) is None
    assert registry.version() > version
