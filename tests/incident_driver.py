"""A stand-in worker for the crash tests: the real AlertSink (outbox and drain) fed a fixed list of events.

``python -m tests.incident_driver --redis URL --data DIR --count N [--first K] [--pace-ms MS]`` emits the START
of events K..N-1 (event i starts at T0 + i on one of ten cameras), printing ``ACK i`` once ``emit`` returned
(the alert is in the outbox). Then it prints ``EMITTED``, waits until the outbox is drained, prints ``DRAINED``
and exits. The tests SIGKILL it at chosen moments and start it again; a restarted driver adopts the outbox
its predecessor left (``Outbox.claim``).
"""

from __future__ import annotations

import argparse
import sys
import time
from pathlib import Path

import redis

from alerts.drain import DrainConfig
from alerts.sink import AlertSink
from config.settings import load_settings
from tests.incident_fixtures import event, make_camera

T0 = 1_750_000_000.0
CAMERAS = 10


def main(argv: list[str]) -> int:
    """Run the driver."""
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--redis", required=True)
    parser.add_argument("--data", type=Path, required=True)
    parser.add_argument("--count", type=int, required=True)
    parser.add_argument("--first", type=int, default=0)
    parser.add_argument("--pace-ms", type=float, default=0.0)
    args = parser.parse_args(argv)
    settings = load_settings(redis_url=args.redis, data_dir=args.data, incident_merge_window_s=0, clips_enabled=False)
    client = redis.Redis.from_url(args.redis, socket_timeout=5)
    sink = AlertSink.from_settings(settings, client, drain_config=DrainConfig(retry_max_s=0.5))
    cameras = [make_camera(f"cam_{n:012d}") for n in range(CAMERAS)]
    for i in range(args.first, args.count):
        cam = cameras[i % CAMERAS]
        sink.emit(event(cam.id, T0 + i), cam, "default", None)
        print(f"ACK {i}", flush=True)
        if args.pace_ms:
            time.sleep(args.pace_ms / 1000)
    print("EMITTED", flush=True)
    while not sink.flush(1.0):
        pass
    print("DRAINED", flush=True)
    sink.close()
    sink.release()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
