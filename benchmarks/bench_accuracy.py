"""Accuracy and cost of the detectors against ground truth, with Frigate's and MOG2's detectors as baselines.

    python -m benchmarks.bench_accuracy            # all scenes (about 1.5 camera-hours; first run renders them)
    python -m benchmarks.bench_accuracy --quick    # one short scene per family, for a smoke run

Every clip is decoded once; each analysed frame goes through the workers' frame preparation
(:mod:`detectors.offline`) and then through our :class:`CameraAnalyzer` and the two baselines, all three ending
in the same :class:`EventTracker` with the same parameters (the default settings).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from multiprocessing import get_context
from pathlib import Path
from typing import Protocol

import av
import numpy as np
import numpy.typing as npt

from benchmarks import scenes as sc
from benchmarks.baselines import FrigateAnalyzer, Mog2Analyzer
from benchmarks.speed import speed_tables
from benchmarks.table import print_table
from config.settings import Settings
from detectors.analyzer import Analysis, AnalyzerConfig, CameraAnalyzer
from detectors.events import CAMERA_ZONE, Event, EventParams, EventPhase, EventType
from detectors.offline import OfflineOptions, luma_frames
from detectors.zones import Zone
from ingest.frames import LumaFrame
from ingest.synthetic import MovingObject, encode_h264

VTEST = Path("demo/vtest-excerpt.mp4")
VTEST_SOURCE = Path("/work/shared/data/vtest.avi")
TAMPER_DEADLINE_S = 10.0
# A detection counts for a ground-truth interval if the event is active within this slack of it.
MATCH_SLACK_S = 2.0

VTEST_ZONES = (
    Zone(name="walkway west", polygon=((0.0, 0.28), (0.5, 0.3), (0.5, 0.6), (0.0, 0.45))),
    Zone(name="walkway east", polygon=((0.5, 0.3), (1.0, 0.28), (1.0, 0.8), (0.5, 0.6))),
    Zone(name="lawn", polygon=((0.0, 0.56), (0.45, 0.7), (0.45, 0.98), (0.0, 0.98))),
)
VTEST_QUIET = ("lawn",)


class Analyzer(Protocol):
    def process(self, frame: LumaFrame) -> Analysis: ...
    def flush(self, t_s: float) -> list[Event]: ...


@dataclass(slots=True)
class Record:
    """One event as the benchmark sees it."""

    type: EventType
    zone: str
    alerted_at: float
    start_s: float
    end_s: float | None = None


@dataclass(slots=True)
class SceneRun:
    """One scene's events per detector."""

    scene: str
    family: str
    duration_s: float
    events: dict[str, list[Record]] = field(default_factory=dict)


def _detectors(config: AnalyzerConfig) -> dict[str, Callable[[tuple[Zone, ...]], Analyzer]]:
    ev: EventParams = config.events
    return {
        "ours": lambda zones: CameraAnalyzer("bench", zones, config, clock_offset_s=None),
        "Frigate": lambda zones: FrigateAnalyzer("bench", zones, ev),
        "MOG2": lambda zones: Mog2Analyzer("bench", zones, ev),
    }


def run_clip(
    path: Path, zones: tuple[Zone, ...], config: AnalyzerConfig, options: OfflineOptions, names: list[str]
) -> dict[str, list[Record]]:
    """Decode ``path`` once and run the detectors ``names`` over its analysed frames."""
    analyzers = {name: make(zones) for name, make in _detectors(config).items() if name in names}
    records: dict[str, list[Record]] = {name: [] for name in analyzers}
    open_: dict[str, dict[tuple[EventType, str], Record]] = {name: {} for name in analyzers}

    def take(name: str, events: Sequence[Event]) -> None:
        for e in events:
            key = (e.type, e.zone)
            if e.phase is EventPhase.START:
                rec = Record(e.type, e.zone, e.t_s, e.start_s)
                records[name].append(rec)
                open_[name][key] = rec
            elif e.phase is EventPhase.END and key in open_[name]:
                open_[name].pop(key).end_s = e.t_s

    last = 0.0
    for frame in luma_frames(path, zones, options, "bench"):
        last = frame.t_s
        for name, analyzer in analyzers.items():
            take(name, analyzer.process(frame).events)
    for name, analyzer in analyzers.items():
        take(name, analyzer.flush(last))
        for rec in open_[name].values():
            rec.end_s = last
    return records


def vtest_clip() -> Path | None:
    """The committed vtest excerpt, or one encoded here from OpenCV's vtest.avi (first 30 s, 10 fps, keyframe
    every second, ~800 kbit/s, like the demo's); None when neither is available."""
    if VTEST.is_file():
        return VTEST
    cached = sc.CACHE / "vtest-excerpt.mp4"
    if cached.is_file():
        return cached
    if not VTEST_SOURCE.is_file():
        return None
    sc.CACHE.mkdir(parents=True, exist_ok=True)

    def frames() -> Iterator[npt.NDArray[np.uint8]]:
        with av.open(str(VTEST_SOURCE)) as container:
            stream = container.streams.video[0]
            for i, frame in enumerate(container.decode(stream)):
                if i >= 300:
                    return
                yield np.asarray(frame.to_ndarray(format="bgr24", threads=1), dtype=np.uint8)

    tmp = cached.with_suffix(".tmp.mp4")
    encode_h264(frames(), tmp, 768, 576, 10, 10, 800, "mp4")
    tmp.replace(cached)
    return cached


def _render(scene: sc.Scene) -> str:
    start = time.monotonic()
    sc.clip(scene)
    return f"{scene.name} rendered in {time.monotonic() - start:.0f} s"


def ensure_clips(scenes: list[sc.Scene], procs: int) -> None:
    """Render the clips that are not cached yet, ``procs`` at a time."""
    missing = [s for s in scenes if not (sc.CACHE / f"{s.name}-{s.recipe_hash()}.mp4").is_file()]
    if not missing:
        return
    print(f"rendering {len(missing)} scene clips into {sc.CACHE} (once; cached by recipe)...", file=sys.stderr)
    with get_context("spawn").Pool(procs) as pool:
        for i, msg in enumerate(pool.imap_unordered(_render, missing), 1):
            print(f"  [{i}/{len(missing)}] {msg}", file=sys.stderr, flush=True)


# ---------------------------------------------------------------------------------------------------
# Scoring


def _zone_records(records: list[Record], zone: str) -> list[Record]:
    return [r for r in records if r.zone == zone and r.type in (EventType.MOTION, EventType.LOITERING)]


def _matches(zone_records: list[Record], a: float, b: float) -> list[Record]:
    """The zone's events active within :data:`MATCH_SLACK_S` of the truth interval ``[a, b]``."""
    return [
        r
        for r in zone_records
        if r.alerted_at <= b + MATCH_SLACK_S and (r.end_s if r.end_s is not None else 1e9) >= a - MATCH_SLACK_S
    ]


def _brief_visits(scene: sc.Scene, records: list[Record]) -> set[int]:
    """Ids of the events that match a real object's visit to a zone too short to count as truth (a fast car
    clipping a zone's corner for half a second): neither a detection to require nor a false alert."""
    brief: set[int] = set()
    full = sc.truth(scene)
    for zone_name, spans in sc.truth(scene, min_span_s=0.0).items():
        zr = _zone_records(records, zone_name)
        for a, b in spans:
            if (a, b) not in full.get(zone_name, []):
                brief.update(id(r) for r in _matches(zr, a, b))
    return brief


@dataclass(slots=True)
class Score:
    """Counts for one family and one detector."""

    truths: int = 0
    hits: int = 0
    latencies: list[float] = field(default_factory=list)
    false_alerts: int = 0
    hours: float = 0.0
    tamper_truths: int = 0
    tamper_hits: int = 0
    tamper_latencies: list[float] = field(default_factory=list)
    tamper_false: int = 0

    def recall(self) -> float | None:
        return self.hits / self.truths if self.truths else None

    def fa_rate(self) -> float:
        return self.false_alerts / self.hours if self.hours else 0.0


def score(run: SceneRun, scene: sc.Scene | None, name: str, s: Score) -> None:
    """Add one scene's outcome for detector ``name`` to ``s``."""
    records = run.events[name]
    s.hours += run.duration_s / 3600.0
    zone_events = [r for r in records if r.zone != CAMERA_ZONE]
    tamper_events = [r for r in records if r.type.value.startswith("tamper_")]
    if scene is None:  # the real clip: activity expected on the walkways, none on the lawn
        for zone in VTEST_ZONES:
            zr = _zone_records(records, zone.name)
            if zone.name in VTEST_QUIET:
                s.false_alerts += len(zr)
            else:
                s.truths += 1
                s.hits += bool(zr)
                if zr:
                    s.latencies.append(zr[0].alerted_at)
        s.tamper_false += len(tamper_events)
        return
    if scene.family in sc.TAMPER_FAMILIES:
        assert scene.tamper_at_s is not None
        s.tamper_truths += 1
        want = sc.TAMPER_TYPE[sc.Family(scene.family)]
        caught = [
            r.alerted_at - scene.tamper_at_s
            for r in tamper_events
            if r.type.value == want and r.alerted_at >= scene.tamper_at_s
        ]
        if caught and caught[0] <= TAMPER_DEADLINE_S:
            s.tamper_hits += 1
        if caught:
            s.tamper_latencies.append(caught[0])
        s.tamper_false += sum(1 for r in tamper_events if r.alerted_at < scene.tamper_at_s)
        return
    s.tamper_false += len(tamper_events)
    truth = sc.truth(scene)
    used = _brief_visits(scene, records)
    for zone_name, spans in truth.items():
        zr = _zone_records(records, zone_name)
        for a, b in spans:
            s.truths += 1
            match = _matches(zr, a, b)
            if match:
                s.hits += 1
                s.latencies.append(max(0.0, match[0].alerted_at - a))
                used.update(id(r) for r in match)
    s.false_alerts += sum(1 for r in zone_events if id(r) not in used and r.type is not EventType.VIDEO_LOSS)


def _describe(obj: MovingObject) -> str:
    kind = "person" if obj.h > obj.w else "vehicle"
    w, h = round(obj.w * sc.WIDTH), round(obj.h * sc.HEIGHT)
    return f"{kind} {w}x{h} px, contrast {obj.brightness_delta:+.0f}, crossing {obj.end_s - obj.start_s:.1f} s"


def detail(run: SceneRun, scene: sc.Scene | None, names: list[str]) -> list[str]:
    """One line per truth interval that some detector missed and per false alert, for tuning runs.

    A miss names the detectors that caught it anyway and the object(s) in the zone then (size at 640x360,
    brightness against the background, time to cross the frame); a false alert names its zone and times.
    """
    lines: list[str] = []
    if scene is None:  # the real clip: a walkway zone without any event is a miss, any lawn event is false
        for zone in VTEST_ZONES:
            for n in names:
                zr = _zone_records(run.events[n], zone.name)
                if zone.name in VTEST_QUIET:
                    lines += [f"FALSE {n} {run.scene} zone={zone.name} alerted {r.alerted_at:.1f} s" for r in zr]
                elif not zr:
                    lines.append(f"MISS {run.scene} zone={zone.name} missed by {n}")
        return lines
    if scene.family in sc.TAMPER_FAMILIES:
        return lines
    used = {n: _brief_visits(scene, run.events[n]) for n in names}
    truth = sc.truth(scene) if scene.family in sc.TRUE_FAMILIES else {}
    for zone_name, spans in truth.items():
        for a, b in spans:
            hit = {n: _matches(_zone_records(run.events[n], zone_name), a, b) for n in names}
            for n in names:
                used[n].update(id(r) for r in hit[n])
            missed = [n for n in names if not hit[n]]
            if not missed:
                continue
            caught = [n for n in names if hit[n]]
            objs = [o for o in scene.spec.objects if o.start_s <= b and o.end_s >= a]
            lines.append(
                f"MISS {run.scene} zone={zone_name} {a:.1f}-{b:.1f} s ({b - a:.1f} s in zone) "
                f"missed by {','.join(missed)}; caught by {','.join(caught) or 'none'}; "
                + "; ".join(_describe(o) for o in objs)
            )
    for n in names:
        for r in run.events[n]:
            if r.zone == CAMERA_ZONE or r.type is EventType.VIDEO_LOSS or id(r) in used[n]:
                continue
            end = f"{r.end_s:.1f}" if r.end_s is not None else "-"
            lines.append(
                f"FALSE {n} {run.scene} zone={r.zone} {r.type.value} alerted {r.alerted_at:.1f} s "
                f"(active {r.start_s:.1f}-{end} s)"
            )
    return lines


def _fmt_latency(values: list[float]) -> str:
    if not values:
        return "-"
    return f"{statistics.median(values):.1f} / {max(values):.1f}"


def report(runs: list[SceneRun], by_name: dict[str, sc.Scene], names: list[str]) -> dict[str, dict[str, Score]]:
    """Print the accuracy tables; return the scores per family and detector."""
    families: dict[str, dict[str, Score]] = {}
    for run in runs:
        fam = families.setdefault(run.family, {n: Score() for n in names})
        for n in names:
            score(run, by_name.get(run.scene), n, fam[n])
    true_rows = []
    for fam_name in [*sc.TRUE_FAMILIES, sc.Family.REAL]:
        if fam_name not in families:
            continue
        f = families[fam_name]
        row: list[object] = [fam_name, f[names[0]].truths]
        row += [f"{f[n].recall():.3f}" if f[n].recall() is not None else "-" for n in names]
        row += [_fmt_latency(f[n].latencies) for n in names]
        row += [f"{f[n].false_alerts} ({f[n].fa_rate():.1f}/h)" for n in names]
        true_rows.append(row)
    print_table(
        "True events: recall, detection latency (median / worst, s), false alerts outside the truth",
        [
            "family",
            "events",
            *[f"recall {n}" for n in names],
            *[f"latency {n}" for n in names],
            *[f"false {n}" for n in names],
        ],
        true_rows,
    )
    rows = []
    total = {n: Score() for n in names}
    for fam_name in sc.NUISANCE_FAMILIES:
        if fam_name not in families:
            continue
        f = families[fam_name]
        for n in names:
            total[n].false_alerts += f[n].false_alerts
            total[n].hours += f[n].hours
            total[n].tamper_false += f[n].tamper_false
        rows.append(
            [fam_name, f"{f[names[0]].hours:.2f}"]
            + [f"{f[n].false_alerts} ({f[n].fa_rate():.1f}/h)" for n in names]
            + [f[names[0]].tamper_false]
        )
    rows.append(
        ["all nuisance scenes", f"{total[names[0]].hours:.2f}"]
        + [f"{total[n].false_alerts} ({total[n].fa_rate():.1f}/h)" for n in names]
        + [total[names[0]].tamper_false]
    )
    print_table(
        "Nuisance scenes (no true event in any zone): false alerts (per camera-hour)",
        ["family", "camera-h", *[f"false {n}" for n in names], "tamper alarms ours"],
        rows,
    )
    trows = []
    for fam_name in sc.TAMPER_FAMILIES:
        if fam_name not in families:
            continue
        o = families[fam_name][names[0]]
        trows.append(
            [fam_name, o.tamper_truths, f"{o.tamper_hits}/{o.tamper_truths}", _fmt_latency(o.tamper_latencies)]
        )
    non_tamper_false = sum(families[f][names[0]].tamper_false for f in families if f not in sc.TAMPER_FAMILIES)
    trows.append(["false tamper alarms, all other scenes", "-", str(non_tamper_false), "-"])
    print_table(
        "Tamper (ours): caught within 10 s, latency after the tamper (median / worst, s)",
        ["family", "scenes", "caught", "latency"],
        trows,
    )
    return families


def main(argv: list[str]) -> None:
    """Render (or reuse) the scenes, run every detector, print the tables."""
    parser = argparse.ArgumentParser(
        prog="python -m benchmarks.bench_accuracy",
        description=__doc__,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--quick", action="store_true", help="one short scene per family")
    parser.add_argument("--only", action="append", default=[], help="scene name prefix to run (repeatable)")
    parser.add_argument("--procs", type=int, default=2, help="processes rendering clips")
    parser.add_argument("--no-speed", action="store_true", help="skip the speed table")
    parser.add_argument("--ours-only", action="store_true", help="skip the baselines (tuning runs)")
    parser.add_argument("--speed-only", action="store_true", help="only the speed table")
    parser.add_argument(
        "--misses", "--verbose", action="store_true", help="list every missed truth interval and false alert"
    )
    args = parser.parse_args(argv)
    if args.speed_only:
        speed_tables()
        return
    settings = Settings()
    print(
        f"settings: defaults, motion_threshold={settings.motion_threshold}, "
        f"detect_night_threshold={settings.detect_night_threshold}",
        file=sys.stderr,
    )
    config = AnalyzerConfig.from_settings(settings)
    options = OfflineOptions(detect_width=settings.detect_width, fps=settings.analysis_fps)
    scenes = sc.all_scenes(quick=args.quick)
    if args.only:
        scenes = [s for s in scenes if any(s.name.startswith(o) for o in args.only)]
    ensure_clips(scenes, args.procs)
    names = ["ours"] if args.ours_only else list(_detectors(config))
    runs: list[SceneRun] = []
    started = time.monotonic()
    for i, scene in enumerate(scenes, 1):
        recs = run_clip(sc.clip(scene), scene.zones, config, options, names)
        runs.append(SceneRun(scene.name, scene.family, scene.duration_s, recs))
        counts = " ".join(f"{n}={len(r)}" for n, r in recs.items())
        print(
            f"  [{i}/{len(scenes)}] {scene.name}: {counts} ({time.monotonic() - started:.0f} s)",
            file=sys.stderr,
            flush=True,
        )
    vtest = None if args.only else vtest_clip()
    if vtest is not None:
        recs = run_clip(vtest, VTEST_ZONES, config, options, names)
        runs.append(SceneRun("vtest", sc.Family.REAL, 30.0, recs))
    by_name = {s.name: s for s in scenes}
    if args.misses:
        print("\n### Misses and false alerts\n")
        for run in runs:
            for line in detail(run, by_name.get(run.scene), names):
                print(f"- {line}")
    report(runs, by_name, names)
    if not args.no_speed:
        speed_tables()


if __name__ == "__main__":
    main(sys.argv[1:])
