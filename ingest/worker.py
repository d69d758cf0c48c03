"""A worker process: holds its share of the cameras, one runner each, and follows registry changes."""

from __future__ import annotations

import logging
import multiprocessing
import multiprocessing.process
import multiprocessing.synchronize
import signal
import threading
from pathlib import Path

import redis

from alerts.publisher import AlertPublisher
from alerts.sink import AlertSink
from alerts.snapshots import FileSnapshotStore
from config.settings import Settings
from ingest.assignment import Assignment, LocalSplit
from ingest.backoff import OpenBudget
from ingest.cameras import Camera
from ingest.registry import CameraRegistry
from ingest.runner import CameraRunner, DetectionConfig

log = logging.getLogger(__name__)


def snapshot_dir(settings: Settings) -> Path:
    """Where snapshots are stored (shared by workers and the API on one machine)."""
    return settings.data_dir / "snapshots"


class Worker:
    """Keeps one :class:`CameraRunner` per assigned camera, restarting a camera when its record changes."""

    def __init__(self, settings: Settings, client: redis.Redis, assignment: Assignment) -> None:
        self.settings = settings
        self._client = client
        self._registry = CameraRegistry(client)
        self._assignment = assignment
        self._config = DetectionConfig.from_settings(settings)
        self.budget = OpenBudget()
        self.sink = AlertSink(
            AlertPublisher(client, settings.stream_maxlen),
            FileSnapshotStore(snapshot_dir(settings)),
            settings.snapshot_quality,
        )
        self.runners: dict[str, CameraRunner] = {}
        self._version = -1

    def sync(self) -> None:
        """Reload the registry if it changed and start, stop or restart runners to match it."""
        version = self._registry.version()
        if version == self._version:
            return
        wanted: dict[str, Camera] = {c.id: c for c in self._assignment.select(self._registry.all())}
        self._version = version
        for cid in list(self.runners):
            runner = self.runners[cid]
            if cid not in wanted or wanted[cid].updated_at != runner.camera.updated_at:
                runner.stop()
                del self.runners[cid]
                log.info("camera %s: stopped (removed, disabled or changed)", cid)
        for cid, camera in wanted.items():
            if cid not in self.runners:
                runner = CameraRunner(camera, self._config, self._client, self.sink.emit, self.budget)
                self.runners[cid] = runner
                runner.start()
                log.info("camera %s (%s): started", cid, camera.name)

    def run(self, stop: threading.Event | multiprocessing.synchronize.Event) -> None:
        """Follow the registry until ``stop`` is set, then stop every runner."""
        try:
            while not stop.is_set():
                try:
                    self.sync()
                except redis.RedisError as exc:
                    log.warning("registry unreachable, keeping %d cameras as they are: %s", len(self.runners), exc)
                stop.wait(self.settings.registry_poll_s)
        finally:
            self.sink.close()
            for runner in self.runners.values():
                runner.stop()
            for runner in self.runners.values():
                runner.join(timeout=self.settings.read_timeout_s + 2)


def _process_main(
    settings: Settings, redis_url: str, index: int, count: int, stop: multiprocessing.synchronize.Event
) -> None:
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # the parent owns Ctrl-C and sets ``stop``
    logging.basicConfig(level=logging.INFO, format=f"%(asctime)s worker[{index}] %(levelname)s %(name)s: %(message)s")
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
                args=(self._settings, self._url, index, count, self._stop),
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
