"""`sharpeyes detect`: the workers' detectors run offline over a video file."""

from __future__ import annotations

import argparse
import json
import sys
import time
from datetime import datetime
from pathlib import Path
from typing import Any

import av
from pydantic import ValidationError

from config.settings import Settings
from detectors.analyzer import AnalyzerConfig
from detectors.offline import OfflineOptions, detect_file, ended, event_record
from detectors.zones import Zone, ZoneSet

DESCRIPTION = """\
Run the same detectors the workers run (motion, loitering, lighting, tamper) over a recorded clip and print one
JSON object per event on stdout:

  {"type": "motion", "zone": "gate", "start_s": 4.2, "end_s": 9.0, "peak_fraction": 0.031, "bbox": [x0, y0, x1, y1]}

Times are seconds of media time from the start of the file; bbox is normalized (0..1). Camera-wide events
(tamper_*) have zone "*". Progress goes to stderr. Use it to tune a camera's zones and settings on a recording.
"""

EPILOG = """\
ZONES.json is a JSON list of zones, the same schema as the API:
  [{"name": "gate", "kind": "detect", "polygon": [[0.1, 0.5], [0.9, 0.5], [0.9, 1.0], [0.1, 1.0]]},
   {"name": "windows", "kind": "privacy", "polygon": [[0.7, 0.0], [1.0, 0.0], [1.0, 0.3], [0.7, 0.3]]}]
kind is detect (raises events), exclude (ignored) or privacy (blacked out before detection). Without --zones the
whole frame is one detect zone named "frame". Settings (thresholds, loitering time, ...) come from --config or
SHARPEYES_* variables, exactly as for the workers: `sharpeyes settings` lists them.
"""

WHOLE_FRAME = Zone(name="frame", polygon=((0.0, 0.0), (1.0, 0.0), (1.0, 1.0), (0.0, 1.0)))


class DetectInputError(ValueError):
    """Bad command-line input; the message says which and what to do."""


def load_zones(path: Path | None) -> tuple[Zone, ...]:
    """Zones from a JSON file (a list of zone objects), validated like the API validates them."""
    if path is None:
        return (WHOLE_FRAME,)
    try:
        raw = json.loads(path.read_text())
    except OSError as exc:
        raise DetectInputError(f"--zones {str(path)!r} cannot be read: {exc.strerror or exc}") from None
    except json.JSONDecodeError as exc:
        raise DetectInputError(f"--zones {str(path)!r} is not valid JSON: {exc}") from None
    if not isinstance(raw, list):
        raise DetectInputError(f"--zones {str(path)!r} must hold a JSON list of zones, got {type(raw).__name__}")
    try:
        return ZoneSet(zones=tuple(raw)).zones
    except ValidationError as exc:
        errors = exc.errors()
        # The deepest errors name the field; the list-level ones only repeat that an item failed.
        deepest = [e for e in errors if len(e["loc"]) > 1] or errors
        problems = []
        for err in deepest:
            loc = err["loc"]
            where = "zones" + "".join(f"[{p}]" if isinstance(p, int) else f".{p}" for p in loc[1:])
            problems.append(f"{where}: {err['msg']} (got {err.get('input')!r})")
        raise DetectInputError(f"--zones {str(path)!r}: " + "; ".join(problems)) from None


def _start_time(value: str | None) -> float | None:
    if value is None:
        return None
    try:
        stamp = datetime.fromisoformat(value)
    except ValueError:
        raise DetectInputError(
            f"--start-time {value!r} is not an ISO 8601 time such as 2026-11-27T18:30:00+01:00"
        ) from None
    if stamp.tzinfo is None:
        raise DetectInputError(f"--start-time {value!r} needs a UTC offset, e.g. {value}+00:00")
    return stamp.timestamp()


class _Progress:
    """A one-line progress report on stderr, only when stderr is a terminal."""

    def __init__(self) -> None:
        self._enabled = sys.stderr.isatty()
        self._last = 0.0

    def __call__(self, t_s: float, duration_s: float) -> None:
        now = time.monotonic()
        if not self._enabled or now - self._last < 0.5:
            return
        self._last = now
        total = f" / {duration_s:.0f} s ({100 * t_s / duration_s:.0f} %)" if duration_s > 0 else " s"
        print(f"\r  analysing: {t_s:.0f}{total}   ", end="", file=sys.stderr, flush=True)

    def done(self) -> None:
        if self._enabled:
            print("\r" + " " * 60 + "\r", end="", file=sys.stderr, flush=True)


def cmd_detect(settings: Settings, args: argparse.Namespace) -> int:
    """Run the detectors over ``args.video`` and print one JSON line per event."""
    video: Path = args.video
    try:
        if not video.is_file():
            raise DetectInputError(f"VIDEO {str(video)!r} does not exist or is not a file")
        if args.fps is not None and not args.fps > 0:
            raise DetectInputError(f"--fps {args.fps!r} must be > 0")
        zones = load_zones(args.zones)
        options = OfflineOptions(
            detect_width=settings.detect_width,
            fps=args.fps if args.fps is not None else settings.analysis_fps,
            keyframes_only=args.keyframes_only,
            start_unix_s=_start_time(args.start_time),
        )
    except DetectInputError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    config = AnalyzerConfig.from_settings(settings)
    progress = _Progress()
    count = 0
    try:
        for event in ended(detect_file(video, zones, config, options, progress)):
            print(json.dumps(event_record(event)), flush=True)
            count += 1
    except av.FFmpegError as exc:
        progress.done()
        print(f"error: cannot decode {str(video)!r}: {exc}", file=sys.stderr)
        return 1
    except ValueError as exc:
        progress.done()
        print(f"error: {exc}", file=sys.stderr)
        return 1
    progress.done()
    print(f"{count} event(s)", file=sys.stderr)
    return 0


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register this module's subcommands (each sets ``func(settings, args) -> int``)."""
    detect = sub.add_parser(
        "detect",
        help="run the detectors over a video file, one JSON event per line",
        description=DESCRIPTION,
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    detect.add_argument("video", type=Path, metavar="VIDEO", help="video file (any format FFmpeg reads)")
    detect.add_argument("--zones", type=Path, metavar="ZONES.json", help="zones to use (default: whole frame)")
    # SUPPRESS: without it the subcommand's default would overwrite a --config given before `detect`.
    detect.add_argument("--config", type=Path, default=argparse.SUPPRESS, help="TOML settings file")
    detect.add_argument("--fps", type=float, help="frames analysed per second (default: SHARPEYES_ANALYSIS_FPS)")
    detect.add_argument(
        "--keyframes-only", action="store_true", help="decode and analyse keyframes only, like an idle camera"
    )
    detect.add_argument(
        "--start-time",
        metavar="ISO8601",
        help="wall-clock time of the first frame, to apply zone arming schedules (default: schedules ignored)",
    )
    detect.set_defaults(func=cmd_detect)
