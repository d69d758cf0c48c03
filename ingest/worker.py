"""A worker process: holds its share of the cameras, one runner thread each, follows registry changes,
and reports health through one reporter thread.

``sharpeyes worker --procs N`` starts N such processes (:class:`WorkerPool`); which cameras each holds
comes from an :class:`~ingest.assignment.Assignment`, so that the local split can later become leases
shared by workers on many machines without touching the runners.
"""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.process
import multiprocessing.synchronize
import os
import resource
import signal
import threading
import time
from collections import Counter
from collections.abc import Callable
from typing import Any

import av
import redis

from alerts.sink import AlertSink
from config.settings import Settings
from ingest.assignment import Assignment, LocalSplit
from ingest.backoff import OpenBudget
from ingest.cameras import Camera, CameraState, stream_url_with_credentials
from ingest.frames import DecodeMode
from ingest.health import HEALTH_KEY, HealthReporter, WorkerHealth
from ingest.pipeline import EventSink, PacketHook
from ingest.registry import CameraRegistry
from ingest.runner import CameraRunner, RunnerConfig, worker_name
from ingest.secretbox import SecretBox, SecretKeyError, load_secret_box

log = logging.getLogger(__name__)


def _rss_mb() -> float:
    """Resident memory of this process now (Linux /proc; falls back to the peak)."""
    try:
        with open("/proc/self/statm") as f:
            pages = int(f.read().split()[1])
        return pages * resource.getpagesize() / 1e6
    except (OSError, ValueError, IndexError):
        return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1e3


class Worker:
    """Keeps one :class:`CameraRunner` per assigned camera, restarting a camera when its record changes."""

    def __init__(
        self,
        settings: Settings,
        client: redis.Redis,
        assignment: Assignment,
        *,
        sink: EventSink | None = None,
        name: str | None = None,
        packet_hook: Callable[[str, av.Packet[Any]], object] | None = None,
    ) -> None:
        """``packet_hook(camera_id, packet)`` sees every compressed packet of every camera before any decode
        decision (event clips: ``ClipRecorders.push``); it runs on the camera's thread and must be cheap."""
        self.settings = settings
        self.name = name if name is not None else worker_name()
        self._client = client
        self._registry = CameraRegistry(client)
        self._assignment = assignment
        self._config = RunnerConfig.from_settings(settings)
        self.budget = OpenBudget(settings.opens_per_second)
        self._alert_sink: AlertSink | None = None
        if sink is None:
            # The durable path: emit() returns once the alert is fsynced in this worker's outbox.
            self._alert_sink = AlertSink.from_settings(
                settings, client, worker=self.name, main_stream_url=self._main_stream_url
            )
            sink = self._alert_sink.emit
            clips = self._alert_sink.clips
            if packet_hook is None and clips is not None:
                packet_hook = clips.push
        self._sink = sink
        self._packet_hook = packet_hook
        self.reporter = HealthReporter(client, settings.health_interval_s, summary=self.summary)
        self.runners: dict[str, CameraRunner] = {}
        self._retired: list[CameraRunner] = []
        self._version = -1
        self._lock = threading.Lock()
        self._box: SecretBox | None = None

    def _credentials(self, camera: Camera) -> tuple[tuple[str | None, str | None], str | None]:
        """(username, password) for the reader, or an error when the stored password cannot be decrypted."""
        if camera.password_enc is None:
            return (camera.username, None), None
        try:
            if self._box is None:
                # Loaded on the first camera with a password: a worker without any never needs the key file.
                self._box = load_secret_box(self.settings)
                self._registry = CameraRegistry(self._client, self._box)
            return (camera.username, self._registry.password(camera)), None
        except SecretKeyError as exc:
            return (camera.username, None), f"cannot use the stored password: {exc}"

    def _main_stream_url(self, camera: Camera) -> str | None:
        """``camera``'s main-stream URL with its credentials, for the sink's full-resolution snapshots; None
        without a main stream or a usable password. Called on camera threads; never log the result."""
        (user, password), error = self._credentials(camera)
        if error is not None:
            return None  # the camera's health already says why
        return stream_url_with_credentials(camera.main_stream_url, user, password)

    def sync(self) -> None:
        """Reload the registry if it changed and start, stop or restart runners to match it."""
        version = self._registry.version()
        if version == self._version:
            return
        cameras = self._registry.all()
        wanted: dict[str, Camera] = {c.id: c for c in self._assignment.select(cameras)}
        self._version = version
        with self._lock:
            by_id = {c.id: c for c in cameras}
            for cid in list(self.runners):
                runner = self.runners[cid]
                if cid in wanted and wanted[cid].updated_at == runner.camera.updated_at:
                    continue
                del self.runners[cid]
                current = by_id.get(cid)
                if current is None:
                    runner.stop()
                    self._client.delete(HEALTH_KEY.format(id=cid))  # deleted: no health to show
                    reason = "deleted"
                elif not current.enabled:
                    runner.stop(CameraState.DISABLED, "disabled in the registry")
                    self._retired.append(runner)  # its final state still goes out
                    reason = "disabled"
                elif cid in wanted:
                    runner.stop()
                    self._retired.append(runner)  # the new runner's reports take over (see _health_sources)
                    reason = "changed, restarting"
                else:
                    runner.stop()  # another worker holds it now and reports on it
                    reason = "reassigned"
                if reason != "changed, restarting" and self._alert_sink is not None and self._alert_sink.clips:
                    self._alert_sink.clips.reset(cid)  # its packet ring is of no further use here
                log.info("camera %s: stopped (%s)", cid, reason)
            for cid, camera in wanted.items():
                if cid not in self.runners:
                    credentials, error = self._credentials(camera)
                    runner = CameraRunner(
                        camera,
                        self._config,
                        self._sink,
                        self.budget,
                        worker=self.name,
                        credentials=credentials,
                        credential_error=error,
                        on_packet=self._hook_for(cid),
                    )
                    self.runners[cid] = runner
                    runner.start()
                    log.info("camera %s (%s): started", cid, camera.name)

    def _hook_for(self, camera_id: str) -> PacketHook | None:
        hook = self._packet_hook
        if hook is None:
            return None

        def on_packet(packet: av.Packet[Any]) -> None:
            hook(camera_id, packet)

        return on_packet

    def alarm(self, camera_id: str) -> bool:
        """Escalate one camera to full-rate decoding (a camera alarm); False if this worker does not hold it."""
        runner = self.runners.get(camera_id)
        if runner is None:
            return False
        runner.alarm()
        return True

    def _health_sources(self) -> list[CameraRunner]:
        with self._lock:
            retired = [r for r in self._retired if r.alive or r.dirty]
            self._retired = [r for r in retired if r.alive]
            # A retired runner whose camera is running again under a new runner must not overwrite it.
            retired = [r for r in retired if r.camera_id not in self.runners]
            return [*self.runners.values(), *retired]

    def summary(self) -> WorkerHealth:
        """This worker's counters."""
        with self._lock:
            runners = list(self.runners.values())
        usage = resource.getrusage(resource.RUSAGE_SELF)
        grabber = self._alert_sink.grabber if self._alert_sink is not None else None
        grabs = grabber.stats() if grabber is not None else None
        return WorkerHealth(
            worker=self.name,
            reported_at=time.time(),
            cameras=len(runners),
            active=sum(1 for r in runners if r.pipeline.mode is DecodeMode.ACTIVE),
            states=dict(Counter(r.state.value for r in runners)),
            opens_per_second_budget=self.budget.per_second,
            opens=self.budget.opens,
            max_opens_in_one_second=self.budget.max_in_window(1.0),
            open_waits=self.budget.waits,
            cpu_s=round(usage.ru_utime + usage.ru_stime, 2),
            rss_mb=round(_rss_mb(), 1),
            main_stream_grabs=grabs.grabbed if grabs else 0,
            main_stream_grab_failures=grabs.failed if grabs else 0,
            main_stream_grabs_dropped=grabs.dropped + grabs.expired if grabs else 0,
        )

    def run(self, stop: threading.Event | multiprocessing.synchronize.Event) -> None:
        """Follow the registry and report health until ``stop`` is set, then stop every runner."""
        reporter_stop = threading.Event()
        reporter = threading.Thread(
            target=self.reporter.run, args=(reporter_stop, self._health_sources), name="health", daemon=True
        )
        reporter.start()
        try:
            while not stop.is_set():
                try:
                    self.sync()
                except redis.RedisError as exc:
                    log.warning("registry unreachable, keeping %d cameras as they are: %s", len(self.runners), exc)
                stop.wait(self.settings.registry_poll_s)
        finally:
            runners = list(self.runners.values())
            for runner in runners:
                runner.stop()
            deadline = time.monotonic() + self.settings.read_timeout_s + 2
            for runner in runners:
                runner.join(timeout=max(0.0, deadline - time.monotonic()))
            # Only now: the stopping cameras' END messages go through the sink before it drains and closes.
            if self._alert_sink is not None:
                self._alert_sink.close()
            reporter_stop.set()
            reporter.join(timeout=5)
            self.reporter.tick(runners)  # the final "worker stopped" states


# How often a worker process checks that the process that started it still exists.
_PARENT_CHECK_S = 1.0


def _follow_parent(stop: threading.Event, parent_pid: int) -> None:
    """Stop this worker when its parent is gone: a `sharpeyes worker` killed with SIGTERM or SIGKILL must
    not leave processes behind that keep watching (and reporting on) cameras."""
    while not stop.wait(_PARENT_CHECK_S):
        if os.getppid() != parent_pid:
            log.warning("the parent process %d is gone: stopping this worker", parent_pid)
            stop.set()


def _relay(pool_stop: multiprocessing.synchronize.Event, stop: threading.Event) -> None:
    pool_stop.wait()
    stop.set()


def _process_main(
    settings: Settings,
    redis_url: str,
    index: int,
    count: int,
    pool_stop: multiprocessing.synchronize.Event,
    parent: int,
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent owns Ctrl-C and sets ``pool_stop``
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s worker[{index}] %(levelname)s %(name)s: %(message)s")
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda signum, frame: stop.set())
    # ``parent`` comes from the parent itself: read here, getppid() would already be 1 if it died while this
    # process was still importing.
    threading.Thread(target=_follow_parent, args=(stop, parent), name="parent", daemon=True).start()
    threading.Thread(target=_relay, args=(pool_stop, stop), name="pool-stop", daemon=True).start()
    client = redis.Redis.from_url(redis_url)
    Worker(settings, client, LocalSplit(index, count)).run(stop)


class WorkerPool:
    """``settings.worker_procs`` worker processes on this machine, splitting the cameras between them."""

    def __init__(self, settings: Settings, redis_url: str) -> None:
        self._ctx = multiprocessing.get_context("spawn")  # no fork: PyAV and threads do not survive it
        self._stop = self._ctx.Event()
        self.procs: list[multiprocessing.process.BaseProcess] = []
        self._settings = settings
        self._url = redis_url

    def start(self) -> None:
        """Start the processes."""
        count = self._settings.worker_procs
        for index in range(count):
            proc = self._ctx.Process(
                target=_process_main,
                args=(self._settings, self._url, index, count, self._stop, os.getpid()),
                name=f"sharpeyes-worker-{index}",
            )
            proc.start()
            self.procs.append(proc)

    def stop(self, timeout: float = 15.0) -> None:
        """Ask every process to stop, wait, and kill what did not."""
        self._stop.set()
        for proc in self.procs:
            proc.join(timeout)
            if proc.is_alive():
                proc.kill()
                proc.join()

    def wait(self) -> None:
        """Block until every process has exited."""
        for proc in self.procs:
            proc.join()
