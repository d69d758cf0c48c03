"""Fault tests on the real GStreamer RTSP server: a stalled server, a killed and restarted one, a hundred
cameras losing their server at once, and every kind of wrong camera configuration beside a good one.

States are read the way the API reads them (health in Redis, written by the worker's reporter); the
reconnect decisions and the open budget come from the worker's own counters. No wall-clock assertions:
the waits are safety nets against hangs.
"""

from __future__ import annotations

import socket
from collections.abc import Iterator
from pathlib import Path

import pytest
import redis

from ingest.cameras import Camera, CameraState
from ingest.failures import FailureKind
from ingest.health import CameraHealth, read_health, read_workers
from ingest.worker import Worker
from tests.ingest_fixtures import corrupt_h264, fast_settings, register, spec, start_worker, wait_for
from tests.peers import RtspServer, free_port


def _health(client: redis.Redis, cid: str) -> CameraHealth | None:
    return read_health(client, [cid]).get(cid)


def _state(client: redis.Redis, cid: str) -> CameraState | None:
    health = _health(client, cid)
    return None if health is None else health.state


def test_a_stalled_server_turns_the_camera_stalled_then_online_again(
    need_gst: None, tmp_path: Path, redis_url: str, rclient: redis.Redis, small_h264: Path
) -> None:
    settings = fast_settings(tmp_path, redis_url)
    with RtspServer({"cam": small_h264}) as rtsp:
        [cid] = register(rclient, spec(rtsp.url("cam"), "stalls"))
        with start_worker(settings, rclient) as running:
            wait_for(lambda: _state(rclient, cid) is CameraState.ONLINE, 20, "online")
            runner = running.worker.runners[cid]
            rtsp.pause()
            took = wait_for(lambda: _state(rclient, cid) is CameraState.STALLED, 20, "stalled after SIGSTOP")
            print(f"stalled {took:.1f} s after SIGSTOP (read timeout {settings.read_timeout_s} s)")
            rtsp.resume()
            wait_for(lambda: _state(rclient, cid) is CameraState.ONLINE, 30, "online after SIGCONT")
            assert running.worker.runners[cid] is runner and runner.alive  # the same runner: no restart
            assert running.thread.is_alive()
    message = next(h.message for h in runner.history if h.state is CameraState.STALLED)
    assert message is not None and ("no packet for" in message or "read timeout" in message)


def test_a_killed_server_is_offline_with_backoff_then_online_when_it_returns(
    need_gst: None, tmp_path: Path, redis_url: str, rclient: redis.Redis, small_h264: Path
) -> None:
    settings = fast_settings(tmp_path, redis_url, reconnect_base_s=0.25)
    with RtspServer({"cam": small_h264}) as rtsp:
        [cid] = register(rclient, spec(rtsp.url("cam"), "dies"))
        with start_worker(settings, rclient) as running:
            wait_for(lambda: _state(rclient, cid) is CameraState.ONLINE, 20, "online")
            runner = running.worker.runners[cid]
            rtsp.kill()
            wait_for(lambda: _state(rclient, cid) is CameraState.OFFLINE, 20, "offline after the kill")
            wait_for(lambda: sum(r.kind is FailureKind.REFUSED for r in runner.retries) >= 3, 30, "three refusals")
            rtsp.start()  # same port
            wait_for(lambda: _state(rclient, cid) is CameraState.ONLINE, 60, "online after the restart")
    retries = list(runner.retries)
    assert retries[0].kind is FailureKind.ENDED  # the kill ends the read with a plain EOF: a drop, not the end
    attempts = [r.attempt for r in retries]
    assert attempts == list(range(len(retries)))  # one backoff sequence, no reset while failing
    assert [r.ceiling_s for r in retries[:4]] == [0.25, 0.5, 1.0, 2.0]
    assert all(0 <= r.delay_s <= r.ceiling_s for r in retries)
    states = [h.state for h in runner.history]
    assert states.index(CameraState.OFFLINE) < len(states) - 1 - states[::-1].index(CameraState.ONLINE)


def test_a_hundred_cameras_losing_their_server_reconnect_within_the_open_budget(
    need_gst: None, tmp_path: Path, redis_url: str, rclient: redis.Redis, slow_h264: Path
) -> None:
    budget = 20
    settings = fast_settings(tmp_path, redis_url, opens_per_second=budget, read_timeout_s=3.0, open_timeout_s=3.0)
    mounts = {f"cam{i:03d}": slow_h264 for i in range(100)}
    with RtspServer(mounts, fps=5) as rtsp:
        ids = register(rclient, *(spec(rtsp.url(m), m) for m in mounts))

        # Connected and receiving: online, or degraded if the 2-core machine, which also runs the server's
        # 100 streams, cannot keep every camera at its full frame rate. Both mean the camera was reopened.
        receiving = {CameraState.ONLINE, CameraState.DEGRADED}

        def all_online() -> bool:
            states = read_health(rclient, ids)
            return len(states) == 100 and all(h.state in receiving for h in states.values())

        with start_worker(settings, rclient) as running:
            wait_for(all_online, 60, "100 cameras online")
            worker = running.worker
            opens_before = worker.budget.opens
            rtsp.kill()
            wait_for(
                lambda: all(r.stats.reconnects_last_hour() >= 1 for r in worker.runners.values()), 30, "all dropped"
            )
            rtsp.start()
            wait_for(all_online, 90, "100 cameras online again")
            wait_for(lambda: any(w.opens >= opens_before + 100 for w in read_workers(rclient)), 10, "the summary")
            summary = next(w for w in read_workers(rclient) if w.worker == worker.name)
    assert worker.budget.opens >= opens_before + 100
    assert worker.budget.max_in_window(1.0) <= budget
    assert summary.max_opens_in_one_second <= budget == summary.opens_per_second_budget
    assert summary.open_waits > 0  # the budget did hold cameras back


@pytest.fixture
def silent_host() -> Iterator[str]:
    """host:port of a host that accepts TCP connections and never answers (a wrong or hung device)."""
    sock = socket.socket()
    sock.bind(("127.0.0.2", 0))
    sock.listen(16)
    yield f"127.0.0.2:{sock.getsockname()[1]}"
    sock.close()


PASSWORDS = {"wrong password": ("viewer", "not-the-password")}


class CredentialWorker(Worker):
    """A worker whose cameras named in PASSWORDS get those credentials (as the registry's would)."""

    def _credentials(self, camera: Camera) -> tuple[tuple[str | None, str | None], str | None]:
        return PASSWORDS.get(camera.name, (None, None)), None


def test_wrong_configurations_each_show_their_state_and_the_worker_serves_the_rest(
    need_gst: None,
    tmp_path: Path,
    redis_url: str,
    rclient: redis.Redis,
    small_h264: Path,
    http_port: int,
    silent_host: str,
) -> None:
    settings = fast_settings(tmp_path, redis_url)
    corrupt = corrupt_h264(small_h264, tmp_path / "corrupt.h264")
    with (
        RtspServer({"good": small_h264, "corrupt": corrupt}) as rtsp,
        RtspServer({"locked": small_h264}, user="viewer", password="the-password") as locked,
    ):
        cams = {
            "good": rtsp.url("good"),
            "wrong host": f"rtsp://{silent_host}/good",
            "wrong port": f"rtsp://127.0.0.1:{free_port()}/good",
            "wrong path": rtsp.url("no-such-path"),
            "wrong password": locked.url("locked"),
            "not rtsp": f"rtsp://127.0.0.1:{http_port}/good",
            "corrupted": rtsp.url("corrupt"),
        }
        ids = dict(zip(cams, register(rclient, *(spec(url, name) for name, url in cams.items())), strict=True))
        expected = {
            "good": (CameraState.ONLINE, None),
            "wrong host": (CameraState.OFFLINE, "does not respond"),
            "wrong port": (CameraState.OFFLINE, "connection refused"),
            "wrong path": (CameraState.NOT_FOUND, "404"),
            "wrong password": (CameraState.AUTH_FAILED, "401"),
            "not rtsp": (CameraState.OFFLINE, "not a video stream"),
            "corrupted": (CameraState.DEGRADED, "corrupt data"),
        }

        def shown() -> dict[str, tuple[CameraState, str | None]]:
            health = read_health(rclient, list(ids.values()))
            return {name: (health[cid].state, health[cid].last_error) for name, cid in ids.items() if cid in health}

        def as_expected() -> bool:
            now = shown()
            return all(
                name in now and now[name][0] is state and (text is None or text in (now[name][1] or ""))
                for name, (state, text) in expected.items()
            )

        with start_worker(settings, rclient, CredentialWorker) as running:
            wait_for(as_expected, 40, f"every camera in its expected state (last seen: {shown()})")
            good = _health(rclient, ids["good"])
            assert good is not None and good.fps_received > 10 and good.last_error is None
            assert running.thread.is_alive() and all(r.alive for r in running.worker.runners.values())
            corrupted = _health(rclient, ids["corrupted"])
            assert corrupted is not None and corrupted.decode_errors > 0
    for name, (_, message) in shown().items():
        assert "the-password" not in (message or "") and "not-the-password" not in (message or ""), name
