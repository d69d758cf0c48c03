"""Benchmark scenes with ground truth: true events, nuisances and tampering, rendered as camera-like H.264.

Every scene starts from :func:`ingest.synthetic.render_frames` (textured background, sensor noise, moving
people- and vehicle-sized objects) and applies one effect per frame on top: a lighting change, the infrared
switch, headlights, rain, snow, swaying foliage, camera shake, or a tamper (cover, defocus, turn). Clips are
cached under ``var/bench-scenes`` keyed by a hash of their recipe, so a second run only decodes.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from enum import StrEnum
from pathlib import Path

import cv2
import numpy as np
import numpy.typing as npt

from detectors.zones import Zone, ZoneKind
from ingest.synthetic import MovingObject, SceneSpec, encode_h264, render_frames

BGR = npt.NDArray[np.uint8]
F32 = npt.NDArray[np.float32]

WIDTH, HEIGHT, FPS = 640, 360, 10
KEYINT = 20  # a keyframe every 2 s, as city cameras' substreams are usually set
BITRATE_KBPS = 500
SCENE_VERSION = 4  # bump when any effect's pixels change
CACHE = Path("var/bench-scenes")
# Objects enter after this: the detectors learn the scene for a few seconds after a (re)connect.
WARMUP_S = 6.0


class Family(StrEnum):
    """Scene families the benchmark reports one row each for."""

    PEOPLE_DAY = "people+vehicles, day"
    PEOPLE_NIGHT = "people+vehicles, night IR"
    GRADUAL = "gradual light (clouds, dusk)"
    SWITCH = "sudden light switch"
    IR = "infrared switch"
    HEADLIGHTS = "headlights sweeping"
    RAIN = "rain under IR"
    SNOW = "snow under IR"
    FOLIAGE = "swaying foliage"
    SHAKE = "camera shake"
    COVER = "tamper: covered"
    DEFOCUS = "tamper: defocus"
    TURN = "tamper: turned"
    REAL = "real: vtest walkway"


TRUE_FAMILIES = (Family.PEOPLE_DAY, Family.PEOPLE_NIGHT)
NUISANCE_FAMILIES = (
    Family.GRADUAL,
    Family.SWITCH,
    Family.IR,
    Family.HEADLIGHTS,
    Family.RAIN,
    Family.SNOW,
    Family.FOLIAGE,
    Family.SHAKE,
)
TAMPER_FAMILIES = (Family.COVER, Family.DEFOCUS, Family.TURN)
TAMPER_TYPE = {Family.COVER: "tamper_covered", Family.DEFOCUS: "tamper_defocus", Family.TURN: "tamper_moved"}


@dataclass(frozen=True, slots=True)
class Scene:
    """One clip: the base scene, the effect on top, its zones and what truly happens in it."""

    name: str
    family: Family
    spec: SceneSpec
    effect: str = "none"
    strength: float = 1.0
    night: bool = False
    tamper_at_s: float | None = None
    zones: tuple[Zone, ...] = ()
    margin: int = 0  # extra pixels rendered on each side (shake, turn), cropped away
    extra: tuple[tuple[str, float], ...] = field(default=())

    @property
    def duration_s(self) -> float:
        """Length of the clip in seconds."""
        return self.spec.frame_count / self.spec.fps

    def recipe_hash(self) -> str:
        """Hash of everything that determines the clip's bytes."""
        blob = json.dumps(
            {"v": SCENE_VERSION, "scene": asdict(self), "enc": [KEYINT, BITRATE_KBPS]}, sort_keys=True, default=str
        )
        return hashlib.sha256(blob.encode()).hexdigest()[:12]


# ---------------------------------------------------------------------------------------------------
# Zones and ground truth

WEST = Zone(name="west", polygon=((0.02, 0.48), (0.5, 0.46), (0.5, 0.98), (0.02, 0.98)))
EAST = Zone(name="east", polygon=((0.5, 0.46), (0.98, 0.44), (0.98, 0.98), (0.5, 0.98)))
SKY = Zone(name="sky", kind=ZoneKind.EXCLUDE, polygon=((0.0, 0.0), (1.0, 0.0), (1.0, 0.2), (0.0, 0.2)))
WINDOW = Zone(name="window", kind=ZoneKind.PRIVACY, polygon=((0.85, 0.05), (0.98, 0.05), (0.98, 0.2), (0.85, 0.2)))
GROUND = Zone(name="ground", polygon=((0.0, 0.42), (1.0, 0.42), (1.0, 1.0), (0.0, 1.0)))
SCENE_ZONES = (WEST, EAST, SKY, WINDOW)


def truth(
    scene: Scene, step_s: float = 0.1, min_overlap: float = 0.2, min_span_s: float = 1.0
) -> dict[str, list[tuple[float, float]]]:
    """Per detect zone, merged intervals of at least ``min_span_s`` when an object's box lies at least
    ``min_overlap`` inside it."""
    out: dict[str, list[tuple[float, float]]] = {}
    gw, gh = 160, 90
    for zone in scene.zones:
        if zone.kind is not ZoneKind.DETECT:
            continue
        mask = np.zeros((gh, gw), np.uint8)
        pts = np.round(np.asarray(zone.polygon) * [gw, gh]).astype(np.int32)
        cv2.fillPoly(mask, [pts], 1)
        inside: list[float] = []
        for obj in scene.spec.objects:
            t = obj.start_s
            while t <= obj.end_s:
                cx, cy = obj.centre_at(t)
                x0, x1 = round((cx - obj.w / 2) * gw), round((cx + obj.w / 2) * gw)
                y0, y1 = round((cy - obj.h / 2) * gh), round((cy + obj.h / 2) * gh)
                area = max(1, (x1 - x0) * (y1 - y0))
                cx0, cx1, cy0, cy1 = max(0, x0), min(gw, x1), max(0, y0), min(gh, y1)
                if cx1 > cx0 and cy1 > cy0 and mask[cy0:cy1, cx0:cx1].sum() >= min_overlap * area:
                    inside.append(round(t, 3))
                t += step_s
        inside.sort()
        spans: list[tuple[float, float]] = []
        for t in inside:
            if spans and t - spans[-1][1] <= 1.5 * step_s:
                spans[-1] = (spans[-1][0], t)
            else:
                spans.append((t, t))
        out[zone.name] = [s for s in spans if s[1] - s[0] >= min_span_s]
    return out


# ---------------------------------------------------------------------------------------------------
# Effects: each turns the base frames into the scene's frames


def _noise(rng: np.random.Generator, h: int, w: int, sigma: float) -> Callable[[], F32]:
    bank = [rng.standard_normal((h + 32, w + 32), dtype=np.float32) * sigma for _ in range(4)]

    def draw() -> F32:
        k, oy, ox = (int(v) for v in rng.integers(0, (4, 32, 32)))
        return bank[k][oy : oy + h, ox : ox + w]

    return draw


def _ir(bgr: BGR, draw_noise: Callable[[], F32], vignette: F32, gain: float = 1.0) -> BGR:
    """Monochrome infrared look: vegetation bright, illuminator fall-off, grainy; chroma is exactly neutral."""
    f = bgr.astype(np.float32)
    b, g, r = f[..., 0], f[..., 1], f[..., 2]
    ir = 0.2 * b + 0.45 * g + 0.35 * r + 0.6 * np.maximum(g - r, 0)
    ir = (ir * 0.75 * gain + 12.0) * vignette + draw_noise()
    gray = np.clip(ir, 0, 255).astype(np.uint8)
    return np.asarray(cv2.merge([gray, gray, gray]), dtype=np.uint8)


def _vignette(h: int, w: int, edge: float = 0.55) -> F32:
    yy, xx = np.mgrid[0:h, 0:w].astype(np.float32)
    d = ((xx - w / 2) / (w / 2)) ** 2 + ((yy - h * 0.6) / (h * 0.7)) ** 2
    return np.asarray(edge + (1 - edge) * np.exp(-d), dtype=np.float32)


def _blob(h: int, w: int, cx: float, cy: float, sx: float, sy: float) -> F32:
    xs = np.exp(-(((np.arange(w, dtype=np.float32) - cx * w) / (sx * w)) ** 2) / 2)
    ys = np.exp(-(((np.arange(h, dtype=np.float32) - cy * h) / (sy * h)) ** 2) / 2)
    return np.asarray(np.outer(ys, xs), dtype=np.float32)


def _scale(bgr: BGR, gain: F32 | float, add: F32 | float = 0.0) -> BGR:
    f = bgr.astype(np.float32)
    if isinstance(gain, np.ndarray):
        f *= gain[..., None]
    else:
        f *= gain
    if isinstance(add, np.ndarray):
        f += add[..., None]
    elif add:
        f += add
    return np.clip(f, 0, 255).astype(np.uint8)


def _effect_frames(scene: Scene, base: Iterator[BGR]) -> Iterator[BGR]:
    spec = scene.spec
    h, w = spec.height - 2 * scene.margin, spec.width - 2 * scene.margin
    rng = np.random.default_rng([spec.seed, 0xEF])
    noise = _noise(rng, h, w, 4.5)
    vig = _vignette(h, w)
    s = scene.strength
    m = scene.margin
    params = dict(scene.extra)
    # Snow flakes and foliage need state across frames.
    flakes = rng.uniform(0, 1, (int(500 * abs(s)), 4)).astype(np.float32)  # x, y, speed, size
    tree = _tree(rng, int(h * 0.55), int(w * 0.3)) if scene.effect == "foliage" else None
    for i, frame in enumerate(base):
        t = i / spec.fps
        if m:
            ox = oy = m
            if scene.effect == "shake":
                period = params.get("period", 30.0)
                if (t % period) < params.get("burst", 5.0):
                    amp = 3.0 + 5.0 * s
                    ox = m + round(amp * math.sin(2 * math.pi * 7.3 * t) + rng.normal(0, amp / 3))
                    oy = m + round(0.6 * amp * math.sin(2 * math.pi * 5.1 * t + 1) + rng.normal(0, amp / 4))
                    ox, oy = min(2 * m, max(0, ox)), min(2 * m, max(0, oy))
            elif scene.effect == "turn" and scene.tamper_at_s is not None and t >= scene.tamper_at_s:
                a = min(1.0, (t - scene.tamper_at_s) / 2.0)
                ox = m + round(a * m * s)
                oy = m + round(a * m * 0.25)
            frame = np.ascontiguousarray(frame[oy : oy + h, ox : ox + w])
        if scene.night and scene.effect not in ("ir_switch",):
            frame = _ir(frame, noise, vig)
        if scene.effect == "gradual":
            # Dusk over the clip, plus a cloud shadow drifting across.
            gain = 1.0 - 0.55 * s * (t / scene.duration_s)
            shadow = 1.0 - 0.35 * s * _blob(h, w, -0.3 + 1.6 * t / scene.duration_s, 0.6, 0.35, 0.6)
            frame = _scale(frame, shadow * gain)
        elif scene.effect == "switch":
            # Street lamps toggle every `period` s: dim ambient, then pools of light.
            period = params.get("period", 25.0)
            on = int(t // period) % 2 == 1
            ambient = 0.45
            if on:
                pools = sum(_blob(h, w, cx, 0.75, 0.12, 0.3) for cx in (0.15, 0.5, 0.85))
                frame = _scale(frame, ambient + 0.9 * s * np.asarray(pools, dtype=np.float32))
            else:
                frame = _scale(frame, ambient)
        elif scene.effect == "ir_switch":
            period = params.get("period", 50.0)
            phase = int((t + params.get("offset", 0.0)) // period) % 2
            frame = _ir(frame, noise, vig, gain=0.9 * s) if phase == 1 else _scale(frame, 0.32, noise())
        elif scene.effect == "headlights":
            period = params.get("period", 12.0)
            u = (t % period) / 4.0  # each sweep lasts 4 s
            if u <= 1.0:
                direction = 1 if int(t // period) % 2 == 0 else -1
                cx = -0.2 + 1.4 * u if direction > 0 else 1.2 - 1.4 * u
                beam = _blob(h, w, cx, 0.78, 0.16, 0.18) * (1.6 * s)
                # The car itself drives on the road beyond the zones; only its beam sweeps across them.
                glare = _blob(h, w, cx, 0.36, 0.05, 0.03) * 120.0 * s
                frame = _scale(frame, 1.0 + beam, glare)
        elif scene.effect == "rain":
            frame = _rain(frame, rng, int(350 * s))
        elif scene.effect == "snow":
            frame = _snow(frame, flakes, t)
        elif scene.effect == "foliage" and tree is not None:
            frame = _sway(frame, tree, t, s, params.get("x", 0.55))
        elif scene.tamper_at_s is not None and t >= scene.tamper_at_s:
            a = min(1.0, (t - scene.tamper_at_s) / 1.0)
            if scene.effect == "cover":
                hand = np.full_like(frame, 18 if params.get("bright", 0) == 0 else 235)
                grad = (8 * _blob(h, w, 0.3, 0.4, 0.5, 0.5))[..., None]
                target = np.clip(hand.astype(np.float32) + grad + noise()[..., None] * 0.4, 0, 255)
                frame = np.clip(frame * (1 - a) + target * a, 0, 255).astype(np.uint8)
            elif scene.effect == "defocus":
                sigma = 0.5 + a * 5.5 * s
                frame = np.asarray(cv2.GaussianBlur(frame, (0, 0), sigma), dtype=np.uint8)
                frame = _scale(frame, 1.0, noise() * 0.5)
        yield frame


def _rain(frame: BGR, rng: np.random.Generator, drops: int) -> BGR:
    layer = np.zeros(frame.shape[:2], np.uint8)
    xs = rng.integers(0, frame.shape[1], drops)
    ys = rng.integers(0, frame.shape[0], drops)
    lengths = rng.integers(6, 22, drops)
    levels = rng.integers(40, 110, drops)
    for x, y, ln, lv in zip(xs, ys, lengths, levels, strict=True):
        cv2.line(layer, (int(x), int(y)), (int(x) + int(ln) // 5, int(y) + int(ln)), int(lv), 1)
    return np.asarray(cv2.add(frame, cv2.merge([layer, layer, layer])), dtype=np.uint8)


def _snow(frame: BGR, flakes: F32, t: float) -> BGR:
    h, w = frame.shape[:2]
    layer = np.zeros((h, w), np.uint8)
    for fx, fy, speed, size in flakes:
        y = (fy + t * (0.05 + 0.15 * speed)) % 1.0
        x = (fx + 0.02 * math.sin(6 * t * speed + 20 * fx)) % 1.0
        r = 1 if size < 0.8 else (2 if size < 0.97 else 4)
        cv2.circle(layer, (int(x * w), int(y * h)), r, 170 if r < 4 else 110, -1)
    return np.asarray(cv2.add(frame, cv2.merge([layer, layer, layer])), dtype=np.uint8)


def _tree(rng: np.random.Generator, th: int, tw: int) -> tuple[F32, F32]:
    """A leafy crown: colour texture and soft alpha."""
    leaves = rng.random((th // 3 + 1, tw // 3 + 1), dtype=np.float32)
    leaves = np.asarray(cv2.resize(leaves, (tw, th), interpolation=cv2.INTER_NEAREST), dtype=np.float32)
    fine = cv2.GaussianBlur(rng.random((th, tw), dtype=np.float32), (0, 0), 1.0)
    level = 35 + 70 * leaves * fine
    colour = np.stack([level * 0.6, level * 1.1, level * 0.7], axis=-1).astype(np.float32)
    alpha = np.zeros((th, tw), np.float32)
    cv2.ellipse(alpha, (tw // 2, th // 2), (tw // 2 - 2, th // 2 - 2), 0, 0, 360, 1.0, -1)
    holes = cv2.GaussianBlur(rng.random((th, tw), dtype=np.float32), (0, 0), 2.0)
    alpha *= (holes > 0.47).astype(np.float32)
    alpha = np.asarray(cv2.GaussianBlur(alpha, (3, 3), 0.8), dtype=np.float32)
    return colour, alpha


def _sway(frame: BGR, tree: tuple[F32, F32], t: float, strength: float, x_pos: float) -> BGR:
    colour, alpha = tree
    th, tw = alpha.shape
    h, w = frame.shape[:2]
    gust = 0.5 + 0.5 * math.sin(2 * math.pi * t / 17.0) ** 2
    amp = (2.0 + 6.0 * gust) * strength
    yy, xx = np.mgrid[0:th, 0:tw].astype(np.float32)
    dx = amp * np.sin(2 * math.pi * 0.7 * t + yy / 25.0) * (1 - yy / th) + 1.5 * np.sin(3.1 * t + xx / 9.0)
    dy = 1.0 * np.sin(2.3 * t + xx / 13.0)
    mx, my = xx + dx, yy + dy
    c = cv2.remap(colour, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)
    a = cv2.remap(alpha, mx, my, cv2.INTER_LINEAR, borderMode=cv2.BORDER_CONSTANT)[..., None]
    x0 = int(x_pos * w - tw / 2)
    y0 = int(h * 0.95) - th
    region = frame[y0 : y0 + th, x0 : x0 + tw].astype(np.float32)
    out = frame.copy()
    out[y0 : y0 + th, x0 : x0 + tw] = np.clip(region * (1 - a) + c * a, 0, 255).astype(np.uint8)
    return out


def frames(scene: Scene) -> Iterator[BGR]:
    """The scene's frames, (HEIGHT, WIDTH, 3) BGR."""
    return _effect_frames(scene, render_frames(scene.spec))


def clip(scene: Scene, cache: Path = CACHE) -> Path:
    """The scene encoded as camera-like H.264 MP4, rendered on first use and cached by recipe hash."""
    cache.mkdir(parents=True, exist_ok=True)
    path = cache / f"{scene.name}-{scene.recipe_hash()}.mp4"
    if path.is_file() and path.stat().st_size > 0:
        return path
    tmp = path.with_suffix(".tmp.mp4")
    encode_h264(frames(scene), tmp, WIDTH, HEIGHT, scene.spec.fps, KEYINT, BITRATE_KBPS, "mp4")
    tmp.replace(path)
    return path


# ---------------------------------------------------------------------------------------------------
# The scene list


# Objects are this far apart: beyond the slowest crossing, the end delay and the event cooldown (30 s), so
# every crossing can alert.
OBJECT_SLOT_S = 60.0


def _crossers(rng: np.random.Generator, n: int) -> tuple[MovingObject, ...]:
    """``n`` objects crossing the lower half one after another; mixed people and vehicles, speeds, sizes."""
    objs = []
    for k in range(n):
        start = WARMUP_S + k * OBJECT_SLOT_S + float(rng.uniform(0, 5.0))
        vehicle = rng.random() < 0.35
        if vehicle:
            w, h = float(rng.uniform(0.12, 0.28)), float(rng.uniform(0.08, 0.16))
            cross_s = float(rng.uniform(2.0, 6.0))
        else:
            w = float(rng.uniform(0.025, 0.07))
            h = w * float(rng.uniform(2.6, 3.6))
            cross_s = float(rng.uniform(4.0, 16.0))
        y = float(rng.uniform(0.6, 0.85))
        left = rng.random() < 0.5
        x0, x1 = (-0.15, 1.15) if left else (1.15, -0.15)
        delta = float(rng.choice([-1, 1]) * rng.uniform(28, 60))
        objs.append(MovingObject(start, start + cross_s, x0, y, x1, y + float(rng.uniform(-0.05, 0.05)), w, h, delta))
    return tuple(objs)


def all_scenes(quick: bool = False) -> list[Scene]:
    """Every benchmark scene; ``quick`` keeps one short scene per family (for a smoke run)."""
    scenes: list[Scene] = []
    base = SceneSpec(width=WIDTH, height=HEIGHT, fps=FPS, duration_s=40.0, noise_sigma=2.5, light_drift=3.0)
    n_true, per_scene, n_nuis, n_tamper = (1, 2, 1, 1) if quick else (12, 4, 3, 3)
    nuis_s = 40.0 if quick else 150.0
    true_s = WARMUP_S + per_scene * OBJECT_SLOT_S
    for k in range(n_true):
        rng = np.random.default_rng([11, k])
        spec = replace(base, seed=100 + k, duration_s=true_s, objects=_crossers(rng, per_scene))
        scenes.append(Scene(f"people-day-{k}", Family.PEOPLE_DAY, spec, zones=SCENE_ZONES))
    for k in range(max(1, n_true // 2)):
        rng = np.random.default_rng([12, k])
        spec = replace(base, seed=200 + k, duration_s=true_s, objects=_crossers(rng, per_scene), noise_sigma=1.5)
        scenes.append(Scene(f"people-night-{k}", Family.PEOPLE_NIGHT, spec, night=True, zones=SCENE_ZONES))
    nuisances: list[tuple[Family, str, bool, int]] = [
        (Family.GRADUAL, "gradual", False, 0),
        (Family.SWITCH, "switch", False, 0),
        (Family.IR, "ir_switch", False, 0),
        (Family.HEADLIGHTS, "headlights", True, 0),
        (Family.RAIN, "rain", True, 0),
        (Family.SNOW, "snow", True, 0),
        (Family.FOLIAGE, "foliage", False, 0),
        (Family.SHAKE, "shake", False, 24),
    ]
    for family, effect, night, margin in nuisances:
        for k in range(n_nuis):
            spec = replace(
                base,
                seed=300 + 10 * list(Family).index(family) + k,
                duration_s=nuis_s,
                width=WIDTH + 2 * margin,
                height=HEIGHT + 2 * margin,
            )
            extra: tuple[tuple[str, float], ...] = ()
            if effect == "ir_switch":
                extra = (("period", 40.0 + 15 * k), ("offset", 20.0 * k))
            elif effect == "foliage":
                extra = (("x", 0.3 + 0.2 * k),)
            elif effect == "shake":
                extra = (("period", 20.0 + 5 * k), ("burst", 4.0 + k))
            scenes.append(
                Scene(
                    f"{effect}-{k}",
                    family,
                    spec,
                    effect=effect,
                    strength=0.8 + 0.2 * k,
                    night=night,
                    zones=SCENE_ZONES,
                    margin=margin,
                    extra=extra,
                )
            )
    for family, effect in ((Family.COVER, "cover"), (Family.DEFOCUS, "defocus"), (Family.TURN, "turn")):
        for k in range(n_tamper):
            margin = 160 if effect == "turn" else 0
            spec = replace(
                base,
                seed=500 + 10 * list(Family).index(family) + k,
                duration_s=40.0,
                width=WIDTH + 2 * margin,
                height=HEIGHT + 2 * margin,
            )
            extra = (("bright", float(k == 2)),) if effect == "cover" else ()
            scenes.append(
                Scene(
                    f"{effect}-{k}",
                    family,
                    spec,
                    effect=effect,
                    strength=[1.0, 0.7, 1.0][k % 3] if effect != "turn" else [1.0, -1.0, 0.6][k % 3],
                    night=k == 1,
                    tamper_at_s=20.0,
                    zones=SCENE_ZONES,
                    margin=margin,
                    extra=extra,
                )
            )
    return scenes
