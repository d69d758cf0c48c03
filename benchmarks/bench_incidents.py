"""Incident path: detection to ``sharpeyes:incidents``, with the durable outbox and without it (the baseline).

Everything runs against a real Valkey with append-only persistence (``appendfsync everysec``, as the README
tells production to run it). This process (the producer thread and the sink's drain thread) is pinned to one
core, Valkey to the other.

1. Throughput: N alerts emitted back to back from one thread; alerts/s from the first emit until the last
   incident is in the stream, and CPU ms per alert of this process. Outbox and baseline runs interleave.
2. Latency at a steady offered rate well under capacity: event start (the detection, taken right before
   ``emit``) to the incident being readable, i.e. the millisecond Redis stamped into the stream id (both
   truncated to whole milliseconds, so the figures are +-1 ms).
3. Outage: Redis stopped for ``--outage-s`` (default 300 s) while alerts keep coming at ``--outage-rate``;
   then Redis returns and the backlog drains while alerts keep coming. Reports the drain rate.

Run: ``python -m benchmarks.bench_incidents`` (about 7 minutes; ``--quick`` for a 30-s outage).
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import tempfile
import threading
import time
from collections.abc import Callable
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, cast

import redis

from alerts.drain import DrainConfig
from alerts.publisher import INCIDENTS_STREAM, AlertPublisher
from alerts.sink import AlertSink
from alerts.snapshots import FileSnapshotStore
from benchmarks.table import print_table
from config.settings import load_settings
from detectors.events import Event, EventPhase, EventType
from detectors.zones import Zone
from ingest.cameras import Camera, Location
from tests.peers import RedisServerProcess

# Enough cameras that no two events share a camera within a millisecond (that would be one event by key).
CAMERAS = 10_000
ZONE = Zone(name="street", polygon=((0.1, 0.1), (0.9, 0.1), (0.9, 0.9), (0.1, 0.9)))


def _cameras() -> list[Camera]:
    now = datetime.now(UTC)
    return [
        Camera(
            name=f"Bench camera {n}",
            stream_url=f"rtsp://127.0.0.1:8554/cam{n}",
            location=Location(lat=40.7 + n * 1e-3, lon=-74.0, district="Bench"),
            zones=(ZONE,),
            id=f"cam_{n:012x}",
            created_at=now,
            updated_at=now,
            created_by="bench",
            updated_by="bench",
        )
        for n in range(CAMERAS)
    ]


def _pin(pid: int, cpu: int) -> None:
    cpus = sorted(os.sched_getaffinity(0))
    os.sched_setaffinity(pid, {cpus[cpu % len(cpus)]})


class Rig:
    """A persistent Valkey and a fresh sink per run."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.server = RedisServerProcess(appendonly=True, data_dir=root / "valkey")
        _pin(self.server.pid, 1)
        self.client = redis.Redis.from_url(self.server.url, socket_timeout=10)
        self.cameras = _cameras()
        self._runs = 0

    def restart_pinned(self) -> None:
        """Start Valkey again (after an outage) on its core."""
        self.server.start()
        _pin(self.server.pid, 1)

    def sink(self, outbox: bool) -> AlertSink:
        """A fresh sink; the streams are emptied first."""
        self.client.flushall()
        self._runs += 1
        data = self.root / f"run{self._runs}"
        settings = load_settings(
            redis_url=self.server.url, data_dir=data, incident_merge_window_s=0, clips_enabled=False
        )
        if outbox:
            return AlertSink.from_settings(settings, self.client, drain_config=DrainConfig(report_every_s=1.0))
        publisher = AlertPublisher.from_settings(settings, self.client)
        return AlertSink(publisher, FileSnapshotStore(data / "snapshots"), 85)

    def emit(self, sink: AlertSink, i: int) -> None:
        """One detection: an event starting now."""
        cam = self.cameras[i % CAMERAS]
        now = time.time()
        event = Event(cam.id, ZONE.name, EventType.MOTION, EventPhase.START, now, now, None, 0.2, (0.2, 0.2, 0.4, 0.6))
        sink.emit(event, cam, "default", None)

    def wait_incidents(self, count: int, timeout: float = 600) -> float:
        """Wall time at which ``count`` incidents are in the stream."""
        deadline = time.monotonic() + timeout
        while int(self.client.xlen(INCIDENTS_STREAM)) < count:
            if time.monotonic() > deadline:
                raise RuntimeError(f"only {self.client.xlen(INCIDENTS_STREAM)} of {count} incidents arrived")
            time.sleep(0.001)
        return time.time()

    def latencies_ms(self) -> list[float]:
        """Event start to stream insertion (the stream id's millisecond), for every incident."""
        out: list[float] = []
        last = "-"
        while True:
            rows = cast(list[Any], self.client.xrange(INCIDENTS_STREAM, min=last, count=5000))
            rows = [r for r in rows if r[0].decode() != last]
            if not rows:
                return out
            for sid, fields in rows:
                # Stream ids carry whole milliseconds: compare with the start truncated the same way.
                started_ms = math.floor(_started_at(fields[b"alert"]) * 1000)
                out.append(float(int(sid.decode().split("-")[0]) - started_ms))
            last = rows[-1][0].decode()

    def close(self) -> None:
        """Stop Valkey."""
        self.server.close()


def _started_at(payload: bytes) -> float:
    # The alert JSON has "started_at":"2026-...Z"; parse just that field instead of the whole model.
    text = payload.decode()
    i = text.index('"started_at":"') + len('"started_at":"')
    return datetime.fromisoformat(text[i : text.index('"', i)].replace("Z", "+00:00")).timestamp()


def _close(sink: AlertSink) -> None:
    sink.close()
    sink.release()


def throughput(rig: Rig, outbox: bool, n: int, threads: int = 1) -> tuple[float, float]:
    """(alerts/s until the last incident is readable, CPU ms per alert of this process).

    ``threads`` producers emit concurrently, as a worker's camera threads do during a storm.
    """
    sink = rig.sink(outbox)
    per = n // threads

    def produce(k: int) -> None:
        for i in range(k * per, (k + 1) * per):
            rig.emit(sink, i)

    workers = [threading.Thread(target=produce, args=(k,)) for k in range(threads)]
    cpu0, t0 = time.process_time(), time.time()
    for w in workers:
        w.start()
    for w in workers:
        w.join()
    done = rig.wait_incidents(per * threads)
    cpu = time.process_time() - cpu0
    _close(sink)
    return per * threads / (done - t0), cpu / (per * threads) * 1000


def latency(rig: Rig, outbox: bool, n: int, rate: float) -> list[float]:
    """Latencies (ms) of ``n`` alerts offered at ``rate`` per second."""
    sink = rig.sink(outbox)
    start = time.monotonic()
    for i in range(n):
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        rig.emit(sink, i)
    rig.wait_incidents(n)
    _close(sink)
    return rig.latencies_ms()


def _pct(values: list[float], q: float) -> float:
    ordered = sorted(values)
    return ordered[min(len(ordered) - 1, round(q * (len(ordered) - 1)))]


def outage(rig: Rig, seconds: float, rate: float, progress: Callable[[str], None]) -> dict[str, float]:
    """Redis away for ``seconds`` with alerts at ``rate``/s, then back; how fast the backlog drains."""
    sink = rig.sink(outbox=True)
    assert sink.drainer is not None
    rig.server.stop()
    start = time.monotonic()
    i = 0
    last_note = start
    while time.monotonic() - start < seconds:
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(delay)
        rig.emit(sink, i)
        i += 1
        if time.monotonic() - last_note >= 30:
            last_note = time.monotonic()
            progress(f"outage: {last_note - start:.0f}/{seconds:.0f} s, outbox {sink.drainer.depth()} alerts")
    backlog = sink.drainer.depth()
    outbox_bytes = sink.drainer.report().bytes
    rig.restart_pinned()
    back = time.monotonic()
    reconnected: float | None = None
    while sink.drainer.depth() > 0:  # production goes on while the backlog drains
        if reconnected is None and sink.drainer.outage_since is None:
            reconnected = time.monotonic()
        delay = start + i / rate - time.monotonic()
        if delay > 0:
            time.sleep(min(delay, 0.002))
            continue
        rig.emit(sink, i)
        i += 1
    done = time.monotonic()
    reconnected = reconnected if reconnected is not None else done
    rig.wait_incidents(i)
    _close(sink)
    draining = max(1e-3, done - reconnected)
    return {
        "backlog": backlog,
        "outbox_mb": outbox_bytes / 1e6,
        "reconnect_s": reconnected - back,
        "drain_s": draining,
        "total": i,
        "drain_rate": (backlog + rate * draining) / draining,
    }


def main(argv: list[str]) -> None:
    """Run the three measurements and print their tables."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_incidents",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--alerts", type=int, default=5000, help="alerts per throughput run (default 5000)")
    parser.add_argument("--rounds", type=int, default=3, help="interleaved rounds per mode (default 3)")
    parser.add_argument("--latency-rate", type=float, default=200.0, help="offered alerts/s for latency")
    parser.add_argument("--latency-alerts", type=int, default=2000, help="alerts per latency run")
    parser.add_argument("--outage-s", type=float, default=300.0, help="Redis outage length (default 300 s)")
    parser.add_argument("--outage-rate", type=float, default=50.0, help="alerts/s during the outage")
    parser.add_argument("--threads", type=int, default=8, help="producer threads of the concurrent runs (default 8)")
    parser.add_argument("--quick", action="store_true", help="30-s outage, fewer alerts")
    args = parser.parse_args(argv)
    if args.quick:
        args.alerts, args.latency_alerts, args.outage_s, args.rounds = 2000, 600, 30.0, 2

    def progress(msg: str) -> None:
        print(f"  {msg}", file=sys.stderr, flush=True)

    _pin(0, 0)
    with tempfile.TemporaryDirectory(prefix="bench-incidents-") as tmp:
        rig = Rig(Path(tmp))
        try:
            tput: dict[tuple[bool, int], list[tuple[float, float]]] = {}
            lat: dict[bool, list[float]] = {True: [], False: []}
            for r in range(args.rounds):
                for outbox in (False, True):  # interleaved: the machine's noise hits both alike
                    for threads in (1, args.threads):
                        tput.setdefault((outbox, threads), []).append(throughput(rig, outbox, args.alerts, threads))
                    lat[outbox] += latency(rig, outbox, args.latency_alerts, args.latency_rate)
                progress(f"round {r + 1}/{args.rounds} done")
            progress(f"outage of {args.outage_s:.0f} s at {args.outage_rate:g} alerts/s ...")
            out = outage(rig, args.outage_s, args.outage_rate, progress)
        finally:
            rig.close()
    rows = []
    for threads in (1, args.threads):
        base_rate = statistics.median(t[0] for t in tput[(False, threads)])
        for outbox, label in ((False, "baseline: outbox off (publish in emit)"), (True, "outbox on (fsync, drain)")):
            runs = tput[(outbox, threads)]
            rate = statistics.median(t[0] for t in runs)
            cpu = statistics.median(t[1] for t in runs)
            row: list[object] = [label, threads, rate, rate / base_rate, cpu]
            if threads == 1:
                row += [_pct(lat[outbox], 0.5), _pct(lat[outbox], 0.99)]
            else:
                row += ["-", "-"]
            rows.append(row)
    print_table(
        f"Detection to sharpeyes:incidents, one core, Valkey AOF everysec ({args.alerts} alerts x {args.rounds} "
        f"rounds, medians; latency at {args.latency_rate:g} alerts/s offered, {len(lat[True])} alerts per mode)",
        ["mode", "producer threads", "alerts/s", "vs baseline", "CPU ms/alert", "p50 ms start->readable", "p99 ms"],
        rows,
    )
    print_table(
        f"Backlog after a {args.outage_s:.0f}-s Redis outage at {args.outage_rate:g} alerts/s "
        "(alerts keep coming while it drains)",
        [
            "backlog alerts",
            "outbox MB",
            "reconnect s",
            "drain s",
            "drain alerts/s",
            "vs offered rate",
            "incidents in stream",
        ],
        [
            [
                int(out["backlog"]),
                out["outbox_mb"],
                out["reconnect_s"],
                out["drain_s"],
                out["drain_rate"],
                out["drain_rate"] / args.outage_rate,
                int(out["total"]),
            ]
        ],
    )


if __name__ == "__main__":
    main(sys.argv[1:])
