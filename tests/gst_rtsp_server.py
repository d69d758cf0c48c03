#!/usr/bin/python3
"""A loopback RTSP server for tests, built on GStreamer's gst-rtsp-server.

Run it with Debian's /usr/bin/python3 (python3-gi is not importable from a venv)::

    python3 tests/gst_rtsp_server.py --port 8554 --mount /cam1=/abs/clip.h264[@FPS] \
        [--live /pattern=640x360@15] [--user U --password P]

File mounts loop a raw Annex-B H.264 file (almost no CPU); live mounts encode a videotestsrc ball.
Each mount has one shared pipeline, however many clients. Prints ``READY <port>`` on stdout once the
server is listening, and quits cleanly on SIGTERM or SIGINT.
"""

from __future__ import annotations

import argparse
import os
import re
import signal
import sys

import gi

gi.require_version("Gst", "1.0")
gi.require_version("GstRtspServer", "1.0")
from gi.repository import GLib, Gst, GstRtspServer  # noqa: E402

_FPS_SUFFIX = re.compile(r"^(?P<body>.*)@(?P<fps>\d+(?:/\d+)?)$")
_LIVE_SPEC = re.compile(r"^(?P<w>\d+)x(?P<h>\d+)(?:@(?P<fps>\d+))?$")


def _split_mount(text: str) -> tuple[str, str]:
    """Split ``/name=value`` into a mount path (with a leading slash) and the value."""
    name, sep, value = text.partition("=")
    if not sep or not name or not value:
        raise argparse.ArgumentTypeError(f"expected /name=VALUE, got {text!r}")
    if not name.startswith("/"):
        name = "/" + name
    return name, value


def file_launch(location: str, fps: str) -> str:
    """Launch line that loops a raw Annex-B H.264 file as RTP."""
    if not os.path.isfile(location):
        raise SystemExit(f"no such file: {location}")
    if "/" not in fps:
        fps += "/1"
    # Quotes inside the location would break the launch syntax; test paths never have them.
    if '"' in location:
        raise SystemExit(f"unsupported character in path: {location}")
    return (
        f'( multifilesrc location="{location}" loop=true '
        f'caps="video/x-h264,stream-format=byte-stream,framerate={fps}" '
        "! h264parse ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def live_launch(width: int, height: int, fps: int) -> str:
    """Launch line that encodes a moving test pattern in real time (costs encoder CPU)."""
    return (
        f"( videotestsrc is-live=true pattern=ball ! video/x-raw,width={width},height={height},"
        f"framerate={fps}/1 ! x264enc tune=zerolatency speed-preset=ultrafast key-int-max={fps} "
        "bitrate=500 ! video/x-h264,profile=baseline ! rtph264pay name=pay0 pt=96 config-interval=1 )"
    )


def _pts_from_dts(_pad: Gst.Pad, info: Gst.PadProbeInfo) -> Gst.PadProbeReturn:
    buf = info.get_buffer()
    if buf is not None and buf.pts == Gst.CLOCK_TIME_NONE:
        buf.pts = buf.dts
    return Gst.PadProbeReturn.OK


def _on_file_media_configure(
    _factory: GstRtspServer.RTSPMediaFactory,
    media: GstRtspServer.RTSPMedia,
) -> None:
    # h264parse only interpolates DTS for an untimestamped byte stream and leaves PTS unset, so
    # rtph264pay would send every frame with the same RTP timestamp (clients then see pts 0 forever).
    # The clips have no B-frames, so PTS = DTS is exact.
    pay = media.get_element().get_by_name("pay0")
    pay.get_static_pad("sink").add_probe(Gst.PadProbeType.BUFFER, _pts_from_dts)


def _parse_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--port", type=int, required=True)
    parser.add_argument("--address", default="127.0.0.1")
    parser.add_argument("--mount", action="append", default=[], type=_split_mount, metavar="/NAME=FILE[@FPS]")
    parser.add_argument("--live", action="append", default=[], type=_split_mount, metavar="/NAME=WxH@FPS")
    parser.add_argument("--user")
    parser.add_argument("--password")
    args = parser.parse_args(argv)
    if not args.mount and not args.live:
        parser.error("give at least one --mount or --live")
    if (args.user is None) != (args.password is None):
        parser.error("--user and --password go together")
    return args


def _make_auth(user: str, password: str) -> GstRtspServer.RTSPAuth:
    """Basic auth: the user may access and construct every media; anyone else gets 401."""
    auth = GstRtspServer.RTSPAuth()
    token = GstRtspServer.RTSPToken()
    token.set_string(GstRtspServer.RTSP_TOKEN_MEDIA_FACTORY_ROLE, "user")
    auth.add_basic(GstRtspServer.RTSPAuth.make_basic(user, password), token)
    return auth


def _user_permissions() -> GstRtspServer.RTSPPermissions:
    perms = GstRtspServer.RTSPPermissions()
    perms.add_permission_for_role("user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_ACCESS, True)
    perms.add_permission_for_role("user", GstRtspServer.RTSP_PERM_MEDIA_FACTORY_CONSTRUCT, True)
    return perms


def main(argv: list[str]) -> int:
    """Start the server, print READY, run until SIGTERM/SIGINT."""
    args = _parse_args(argv)
    Gst.init(None)

    server = GstRtspServer.RTSPServer()
    server.set_address(args.address)
    server.set_service(str(args.port))
    mounts = server.get_mount_points()

    auth = None
    if args.user is not None:
        auth = _make_auth(args.user, args.password)
        server.set_auth(auth)

    launches: list[tuple[str, str, bool]] = []
    for name, value in args.mount:
        fps = "25"
        match = _FPS_SUFFIX.match(value)
        if match:
            value, fps = match["body"], match["fps"]
        launches.append((name, file_launch(os.path.abspath(value), fps), True))
    for name, value in args.live:
        match = _LIVE_SPEC.match(value)
        if not match:
            raise SystemExit(f"--live expects /name=WIDTHxHEIGHT@FPS, got {value!r}")
        launch = live_launch(int(match["w"]), int(match["h"]), int(match["fps"] or 15))
        launches.append((name, launch, False))

    for name, launch, is_file in launches:
        factory = GstRtspServer.RTSPMediaFactory()
        factory.set_launch(launch)
        factory.set_shared(True)
        if is_file:
            factory.connect("media-configure", _on_file_media_configure)
        if auth is not None:
            factory.set_permissions(_user_permissions())
        mounts.add_factory(name, factory)

    loop = GLib.MainLoop()

    def _quit(*_args: object) -> bool:
        loop.quit()
        return GLib.SOURCE_REMOVE

    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGTERM, _quit)
    GLib.unix_signal_add(GLib.PRIORITY_HIGH, signal.SIGINT, _quit)

    # attach() returns 0 when the socket could not be bound (port taken, bad address).
    if server.attach(None) == 0:
        print(f"cannot listen on {args.address}:{args.port}", file=sys.stderr, flush=True)
        return 2
    print(f"READY {server.get_bound_port()}", flush=True)
    loop.run()
    return 0


if __name__ == "__main__":
    sys.exit(main(sys.argv[1:]))
