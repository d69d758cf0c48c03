"""Start ipycam (a third-party virtual ONVIF camera) with its network reach cut down for tests.

Runs under ipycam's own venv, never sharpeyes's (ipycam pulls opencv-python, which clashes with
opencv-python-headless), so it imports nothing from sharpeyes. Before handing over to ipycam's
own ``main`` it:

- replaces ``ipycam.camera.WSDiscoveryServer`` with a no-op, so no multicast Hello leaves the
  machine (``--discovery`` keeps the real responder: only inside a loopback-only network namespace);
- binds the ONVIF/HTTP server and the RTSP server to 127.0.0.1 instead of every interface;
- with ``--clock-offset S``, shifts the camera's clock (GetSystemDateAndTime, the HTTP Date header
  and the WS-Security freshness check) by S seconds, like a camera whose NTP is broken.

Usage: ipycam-venv/bin/python ipycam_launcher.py [--discovery] [--clock-offset S] -- IPYCAM_ARGS...
"""

from __future__ import annotations

import argparse
import datetime as _dt
import sys
import time as _time
from typing import Any

LOOPBACK = "127.0.0.1"


class _NoDiscovery:
    """Stands in for ipycam's WS-Discovery responder: never opens a socket."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        pass

    def start(self) -> None:
        """Nothing to start."""

    def stop(self) -> None:
        """Nothing to stop."""

    def join(self, timeout: float | None = None) -> None:
        """Nothing to wait for."""


def _shifted_clock(offset_s: float) -> tuple[Any, Any]:
    """Stand-ins for the ``time`` and ``datetime`` names ipycam.onvif uses, running ``offset_s`` off."""

    class ShiftedTime:
        def __getattr__(self, name: str) -> Any:
            return getattr(_time, name)

        def time(self) -> float:
            return _time.time() + offset_s

        def gmtime(self, secs: float | None = None) -> _time.struct_time:
            return _time.gmtime((_time.time() if secs is None else secs) + offset_s)

    class ShiftedDatetime(_dt.datetime):
        @classmethod
        def now(cls, tz: _dt.tzinfo | None = None) -> ShiftedDatetime:  # type: ignore[override]
            real = _dt.datetime.now(tz) + _dt.timedelta(seconds=offset_s)
            return cls.fromtimestamp(real.timestamp(), tz) if tz else cls.fromtimestamp(real.timestamp())

    return ShiftedTime(), ShiftedDatetime


def main() -> int:
    """Patch ipycam, then run its command line with the arguments after ``--``."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--discovery", action="store_true", help="keep the WS-Discovery responder")
    parser.add_argument("--clock-offset", type=float, default=0.0, help="camera clock offset in seconds")
    parser.add_argument("ipycam_args", nargs=argparse.REMAINDER)
    args = parser.parse_args()
    rest = [a for a in args.ipycam_args if a != "--"] if args.ipycam_args[:1] == ["--"] else args.ipycam_args

    import ipycam.camera
    import ipycam.http
    import ipycam.onvif
    import ipycam.rtsp
    from ipycam.__main__ import main as ipycam_main

    if not args.discovery:
        ipycam.camera.WSDiscoveryServer = _NoDiscovery  # type: ignore[misc,assignment]

    base_tcp = ipycam.camera.ReusableThreadingTCPServer

    class LoopbackTCPServer(base_tcp):  # type: ignore[misc,valid-type]
        def __init__(self, address: tuple[str, int], *a: Any, **kw: Any) -> None:
            super().__init__((LOOPBACK if address[0] in ("", "0.0.0.0") else address[0], address[1]), *a, **kw)

    ipycam.camera.ReusableThreadingTCPServer = LoopbackTCPServer  # type: ignore[misc]

    base_rtsp = ipycam.rtsp.NativeRTSPServer

    class LoopbackRTSPServer(base_rtsp):  # type: ignore[misc,valid-type]
        def __init__(self, port: int = 8554, host: str = LOOPBACK) -> None:
            super().__init__(port=port, host=LOOPBACK)

    ipycam.camera.NativeRTSPServer = LoopbackRTSPServer  # type: ignore[misc]

    if args.clock_offset:
        shifted_time, shifted_datetime = _shifted_clock(args.clock_offset)
        ipycam.onvif.time = shifted_time  # type: ignore[assignment]
        ipycam.onvif.datetime = shifted_datetime  # type: ignore[misc]
        handler = ipycam.http.IPCameraHTTPHandler
        original = handler.date_time_string

        def date_time_string(self: Any, timestamp: float | None = None) -> str:
            return str(original(self, (_time.time() if timestamp is None else timestamp) + args.clock_offset))

        handler.date_time_string = date_time_string  # type: ignore[method-assign]

    sys.argv = ["ipycam", *rest]
    sys.stdout.reconfigure(line_buffering=True)  # type: ignore[union-attr]
    result: int = ipycam_main() or 0
    return result


if __name__ == "__main__":
    raise SystemExit(main())
