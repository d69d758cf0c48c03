"""Synthetic camera clips with known ground truth, for tests, the demo and benchmarks.

A scene is a textured static background (multi-scale noise, "buildings" with windows, a walkway) plus
per-frame sensor noise, an optional slow global light drift and textured objects moving on straight
lines. Everything is derived from ``SceneSpec.seed``, so one spec always renders the same pixels.

Clips are encoded the way most cameras send: H.264, one slice per frame, no B-frames, a fixed GOP,
ABR capped by a VBV, yuv420p.
"""

from __future__ import annotations

import hashlib
import json
import math
import os
import tempfile
from collections.abc import Iterable, Iterator
from dataclasses import asdict, dataclass, replace
from fractions import Fraction
from pathlib import Path
from typing import Literal

import av
import cv2
import numpy as np
import numpy.typing as npt

__all__ = [
    "Container",
    "MovingObject",
    "SceneSpec",
    "StandardClip",
    "clip_hash",
    "encode_h264",
    "motion_windows",
    "render_frames",
    "standard_clip",
    "standard_recipe",
    "write_clip",
]

Container = Literal["h264", "mp4"]
BGRFrame = npt.NDArray[np.uint8]

# Bump whenever the rendering or the encoder settings change, so cached clips get rebuilt.
RENDER_VERSION = 1

# Sensor noise comes from a small bank of pre-drawn fields, cropped at a random offset per frame:
# drawing 690k normals per 640x360 frame costs ~12 ms, far over the 5 ms/frame budget.
_NOISE_BANK = 6
_NOISE_PAD = 48

# Period of the global light drift; long against any clip so the drift looks like clouds, not flicker.
_LIGHT_PERIOD_S = 40.0


@dataclass(frozen=True, slots=True)
class MovingObject:
    """An object whose centre moves linearly from (x0, y0) to (x1, y1) during [start_s, end_s].

    Coordinates and sizes are normalized to the frame (0..1; a centre may lie outside to enter or
    leave the frame). ``brightness_delta`` is the object's mean brightness minus the background's,
    in 8-bit gray levels. Tall objects are drawn as a person, wide ones as a vehicle.
    """

    start_s: float
    end_s: float
    x0: float
    y0: float
    x1: float
    y1: float
    w: float
    h: float
    brightness_delta: float = 40.0

    def __post_init__(self) -> None:
        if self.end_s < self.start_s:
            raise ValueError(f"end_s {self.end_s} < start_s {self.start_s}")
        if not (0.0 < self.w <= 1.0 and 0.0 < self.h <= 1.0):
            raise ValueError(f"object size must be in (0, 1], got w={self.w} h={self.h}")

    def centre_at(self, t_s: float) -> tuple[float, float]:
        """Normalized centre at time ``t_s`` (clamped to the object's interval)."""
        span = self.end_s - self.start_s
        a = 0.0 if span <= 0 else min(1.0, max(0.0, (t_s - self.start_s) / span))
        return self.x0 + a * (self.x1 - self.x0), self.y0 + a * (self.y1 - self.y0)

    def active_at(self, t_s: float) -> bool:
        """True when the object is in the scene at ``t_s`` (it may still be outside the frame)."""
        return self.start_s <= t_s <= self.end_s


@dataclass(frozen=True, slots=True)
class SceneSpec:
    """Everything that defines a synthetic clip's pixels."""

    width: int = 640
    height: int = 360
    fps: int = 25
    duration_s: float = 12.0
    objects: tuple[MovingObject, ...] = ()
    noise_sigma: float = 2.5
    seed: int = 0
    light_drift: float = 0.0

    def __post_init__(self) -> None:
        if self.width < 16 or self.height < 16 or self.width % 2 or self.height % 2:
            raise ValueError(f"width and height must be even and >= 16, got {self.width}x{self.height}")
        if self.fps <= 0 or self.duration_s <= 0:
            raise ValueError("fps and duration_s must be positive")

    @property
    def frame_count(self) -> int:
        """Number of frames the clip has."""
        return round(self.duration_s * self.fps)


@dataclass(frozen=True, slots=True)
class StandardClip:
    """A named scene with the encoder settings it is shipped with."""

    scene: SceneSpec
    keyint: int
    bitrate_kbps: int


# ---------------------------------------------------------------------------------------------------
# Rendering


def _smooth_noise(rng: np.random.Generator, height: int, width: int, cell: int) -> npt.NDArray[np.float32]:
    """Unit-variance noise with features about ``cell`` pixels wide."""
    small = rng.standard_normal((height // cell + 2, width // cell + 2), dtype=np.float32)
    big = cv2.resize(small, (width + 2 * cell, height + 2 * cell), interpolation=cv2.INTER_CUBIC)
    out: npt.NDArray[np.float32] = np.ascontiguousarray(big[cell : cell + height, cell : cell + width])
    return out


def _background(spec: SceneSpec) -> npt.NDArray[np.int16]:
    """The static scene: sky, buildings with windows, a walkway, grass, all textured."""
    h, w = spec.height, spec.width
    rng = np.random.default_rng([spec.seed, 0xB6])
    img = np.empty((h, w, 3), np.float32)

    horizon = int(h * rng.uniform(0.38, 0.48))
    # Sky: vertical gradient; ground: darker, greener.
    ramp = np.linspace(0.0, 1.0, horizon, dtype=np.float32)[:, None]
    img[:horizon] = (np.array([200, 170, 150], np.float32) - 40 * ramp[..., None])[:, :, :]
    img[horizon:] = np.array([70, 105, 90], np.float32)

    # Buildings along the horizon, with rows of windows and a bright/dark edge on each side.
    x = int(rng.integers(-w // 20, w // 20))
    while x < w:
        bw = int(rng.integers(w // 12, w // 4))
        top = int(rng.integers(h // 10, max(h // 10 + 1, horizon - h // 12)))
        level = float(rng.uniform(60, 170))
        tint = rng.uniform(-18, 18, 3).astype(np.float32)
        x0, x1 = max(0, x), min(w, x + bw)
        if x1 > x0:
            img[top:horizon, x0:x1] = level + tint
            win_w, win_h = max(2, bw // 10), max(2, h // 40)
            win_level = level + float(rng.choice([-45.0, 50.0]))
            for wy in range(top + win_h, horizon - 2 * win_h, 3 * win_h):
                for wx in range(x + win_w, x + bw - win_w, 2 * win_w):
                    if wx >= 0 and wx + win_w <= w and rng.random() < 0.8:
                        img[wy : wy + win_h, wx : wx + win_w] = win_level + float(rng.uniform(-15, 15))
            cv2.line(img, (x0, top), (x0, horizon), (level + 35,) * 3, 1)
            cv2.line(img, (x1 - 1, top), (x1 - 1, horizon), (level - 35,) * 3, 1)
        x += bw + int(rng.integers(0, w // 15))

    # A walkway in perspective across the lower part, with a kerb line and paving joints.
    y_top, y_bot = int(h * 0.55), int(h * 0.78)
    pts = np.array([[0, y_top], [w, y_top - h // 30], [w, y_bot], [0, y_bot + h // 30]], np.int32)
    cv2.fillPoly(img, [pts], (150, 150, 155))
    cv2.line(img, (0, y_bot + h // 30), (w, y_bot), (205, 205, 210), max(1, h // 180))
    for jx in range(0, w, max(8, w // 24)):
        cv2.line(img, (jx, y_top - (jx * h) // (30 * w)), (jx + w // 40, y_bot), (128, 128, 132), 1)

    # Multi-scale texture over everything: large blotches (lighting), medium (dirt), fine (grain).
    coarse = 14.0 * _smooth_noise(rng, h, w, 64)
    medium = 8.0 * _smooth_noise(rng, h, w, 12)
    fine = 5.0 * _smooth_noise(rng, h, w, 3)
    gray_tex = coarse + medium + fine
    img += gray_tex[..., None]
    img += 4.0 * _smooth_noise(rng, h, w, 24)[..., None] * np.array([1.0, -0.5, -0.5], np.float32)

    # Camera optics are never perfectly sharp.
    img = np.asarray(cv2.GaussianBlur(img, (3, 3), 0.7), dtype=np.float32)
    bg: npt.NDArray[np.int16] = np.clip(img, 0, 255).round().astype(np.int16)
    return bg


def _noise_bank(spec: SceneSpec) -> list[npt.NDArray[np.int16]]:
    rng = np.random.default_rng([spec.seed, 0x5E])
    shape = (spec.height + _NOISE_PAD, spec.width + _NOISE_PAD, 3)
    return [
        (rng.standard_normal(shape, dtype=np.float32) * spec.noise_sigma).round().astype(np.int16)
        for _ in range(_NOISE_BANK)
    ]


@dataclass(slots=True)
class _Sprite:
    obj: MovingObject
    color: npt.NDArray[np.float32]  # (h, w, 3) BGR
    alpha: npt.NDArray[np.float32]  # (h, w, 1), 0..1


def _sprite(spec: SceneSpec, obj: MovingObject, index: int, bg_mean: float) -> _Sprite:
    """A textured, roughly person- or vehicle-shaped patch for ``obj``."""
    rng = np.random.default_rng([spec.seed, 0x0B, index])
    pw = max(3, round(obj.w * spec.width))
    ph = max(3, round(obj.h * spec.height))
    mask = np.zeros((ph, pw), np.float32)
    if ph >= 1.5 * pw:
        # Person: head, torso, two legs.
        r = max(1, round(pw * 0.32))
        cv2.circle(mask, (pw // 2, r), r, 1.0, -1)
        cv2.ellipse(mask, (pw // 2, int(ph * 0.42)), (pw // 2, int(ph * 0.24)), 0, 0, 360, 1.0, -1)
        leg_w = max(1, pw // 3)
        cv2.rectangle(mask, (pw // 2 - leg_w - 1, int(ph * 0.55)), (pw // 2 - 1, ph - 1), 1.0, -1)
        cv2.rectangle(mask, (pw // 2 + 1, int(ph * 0.55)), (pw // 2 + leg_w + 1, ph - 1), 1.0, -1)
    else:
        # Vehicle: body, cabin, wheels.
        cv2.rectangle(mask, (0, int(ph * 0.35)), (pw - 1, int(ph * 0.85)), 1.0, -1)
        cv2.rectangle(mask, (int(pw * 0.2), 0), (int(pw * 0.75), int(ph * 0.4)), 1.0, -1)
        wr = max(1, ph // 6)
        for cx in (int(pw * 0.2), int(pw * 0.8)):
            cv2.circle(mask, (cx, ph - wr - 1), wr, 1.0, -1)
    mask = np.asarray(cv2.GaussianBlur(mask, (3, 3), 0.8), dtype=np.float32)

    base = bg_mean + obj.brightness_delta
    tint = rng.uniform(-25, 25, 3).astype(np.float32)
    blotches = 10.0 * _smooth_noise(rng, ph, pw, max(2, pw // 3))
    tex = blotches + 5.0 * _smooth_noise(rng, ph, pw, 1 if pw < 8 else 2)
    color = np.empty((ph, pw, 3), np.float32)
    color[:] = base + tint
    color += tex[..., None]
    # Clothing/body panels: a second tone over the lower part so the object is not one flat blob.
    split = int(ph * 0.55)
    color[split:] += float(rng.uniform(-30, 30))
    return _Sprite(obj, np.clip(color, 0, 255), mask[..., None])


def _paste(work: npt.NDArray[np.int16], sprite: _Sprite, t_s: float) -> None:
    h, w = work.shape[:2]
    ph, pw = sprite.alpha.shape[:2]
    cx, cy = sprite.obj.centre_at(t_s)
    left = round(cx * w - pw / 2)
    top = round(cy * h - ph / 2)
    x0, y0 = max(0, left), max(0, top)
    x1, y1 = min(w, left + pw), min(h, top + ph)
    if x1 <= x0 or y1 <= y0:
        return
    sx0, sy0 = x0 - left, y0 - top
    sx1, sy1 = sx0 + (x1 - x0), sy0 + (y1 - y0)
    alpha = sprite.alpha[sy0:sy1, sx0:sx1]
    region = work[y0:y1, x0:x1]
    blended = region * (1.0 - alpha) + sprite.color[sy0:sy1, sx0:sx1] * alpha
    work[y0:y1, x0:x1] = blended.round().astype(np.int16)


def _shift_lut(step: int) -> npt.NDArray[np.uint8]:
    lut: npt.NDArray[np.uint8] = np.clip(np.arange(256, dtype=np.int16) + step, 0, 255).astype(np.uint8)
    return lut


def render_frames(spec: SceneSpec) -> Iterator[BGRFrame]:
    """Yield the clip's frames as (H, W, 3) uint8 BGR arrays, deterministically for ``spec.seed``.

    Frame ``i`` shows the scene at ``t = i / spec.fps``. Each yielded array is freshly allocated.
    """
    bg = _background(spec)
    bank = _noise_bank(spec)
    bg_mean = float(bg.mean())
    sprites = [_sprite(spec, obj, i, bg_mean) for i, obj in enumerate(spec.objects)]
    rng = np.random.default_rng([spec.seed, 0xF7])
    h, w = spec.height, spec.width
    light_phase = float(rng.uniform(0, 2 * math.pi))
    for i in range(spec.frame_count):
        t = i / spec.fps
        active = [s for s in sprites if s.obj.active_at(t)]
        if active:
            work = bg.copy()
            for sprite in active:
                _paste(work, sprite, t)
        else:
            work = bg
        k, oy, ox = (int(v) for v in rng.integers(0, (_NOISE_BANK, _NOISE_PAD, _NOISE_PAD)))
        noise = bank[k][oy : oy + h, ox : ox + w]
        # Saturating add straight to uint8: one pass instead of add + clip + cast.
        frame = np.asarray(cv2.add(work, noise, dtype=cv2.CV_8U), dtype=np.uint8)
        if spec.light_drift:
            offset = spec.light_drift * math.sin(2 * math.pi * t / _LIGHT_PERIOD_S + light_phase)
            step = round(offset)
            if step:
                frame = np.asarray(cv2.LUT(frame, _shift_lut(step)), dtype=np.uint8)
        yield frame


def motion_windows(spec: SceneSpec) -> list[tuple[float, float]]:
    """Ground truth: merged [start, end] intervals (seconds) when any object overlaps the frame.

    Intervals are clipped to the clip's duration; an object counts as visible while any part of its
    bounding box is inside the frame.
    """
    duration = spec.frame_count / spec.fps
    spans: list[tuple[float, float]] = []
    for obj in spec.objects:
        lo, hi = max(0.0, obj.start_s), min(duration, obj.end_s)
        if hi < lo:
            continue
        span = obj.end_s - obj.start_s
        # Visible while |centre - 0.5| < 0.5 + size/2 on both axes; each bound is linear in t.
        for p0, p1, size in ((obj.x0, obj.x1, obj.w), (obj.y0, obj.y1, obj.h)):
            lim_lo, lim_hi = -size / 2, 1.0 + size / 2
            if span <= 0 or p1 == p0:
                if not lim_lo < p0 < lim_hi:
                    hi = lo - 1.0
                continue
            ta = obj.start_s + (lim_lo - p0) / (p1 - p0) * span
            tb = obj.start_s + (lim_hi - p0) / (p1 - p0) * span
            lo, hi = max(lo, min(ta, tb)), min(hi, max(ta, tb))
        if hi >= lo:
            spans.append((lo, hi))
    spans.sort()
    merged: list[tuple[float, float]] = []
    for lo, hi in spans:
        if merged and lo <= merged[-1][1]:
            merged[-1] = (merged[-1][0], max(merged[-1][1], hi))
        else:
            merged.append((lo, hi))
    return merged


# ---------------------------------------------------------------------------------------------------
# Encoding


def encode_h264(
    frames: Iterable[BGRFrame],
    path: Path,
    width: int,
    height: int,
    fps: int | Fraction,
    keyint: int,
    bitrate_kbps: int,
    container: Container = "mp4",
    *,
    profile: Literal["baseline", "main", "high"] = "main",
    preset: str = "veryfast",
) -> int:
    """Encode BGR frames to H.264 the way a typical camera does; return the number of frames written.

    One slice per frame, no B-frames, an IDR every ``keyint`` frames exactly (no scene-cut keyframes),
    ABR at ``bitrate_kbps`` with a VBV of the same max rate and a 2 s buffer, yuv420p (limited range).
    ``container`` "h264" writes a raw Annex-B stream with SPS/PPS before every IDR (what GStreamer's
    multifilesrc loop needs); "mp4" writes an MP4 with the parameter sets in the avcC box.
    """
    if keyint < 1 or bitrate_kbps < 1:
        raise ValueError("keyint and bitrate_kbps must be positive")
    x264_params = ":".join(
        [
            f"keyint={keyint}",
            f"min-keyint={keyint}",
            "scenecut=0",
            "bframes=0",
            "sliced-threads=0",
            "slices=1",
            "open-gop=0",
            f"vbv-maxrate={bitrate_kbps}",
            f"vbv-bufsize={2 * bitrate_kbps}",
        ]
    )
    with av.open(str(path), mode="w", format=container) as out:
        stream = out.add_stream(
            "libx264",
            rate=fps,
            options={"preset": preset, "profile": profile, "x264-params": x264_params},
        )
        stream.width = width
        stream.height = height
        stream.pix_fmt = "yuv420p"
        stream.bit_rate = bitrate_kbps * 1000
        ctx = stream.codec_context
        ctx.gop_size = keyint
        ctx.max_b_frames = 0
        # FRAME threading with one thread: x264 never splits frames into slices, and the output bytes
        # do not depend on the machine's core count.
        ctx.thread_type = "FRAME"
        ctx.thread_count = 1
        count = 0
        for bgr in frames:
            if bgr.shape != (height, width, 3) or bgr.dtype != np.uint8:
                raise ValueError(f"frame {count}: expected ({height}, {width}, 3) uint8, got {bgr.shape}")
            # cv2's I420 is BT.601 limited range, what x264 assumes; it also avoids swscale's thread pool.
            yuv = np.asarray(cv2.cvtColor(bgr, cv2.COLOR_BGR2YUV_I420), dtype=np.uint8)
            frame = av.VideoFrame.from_ndarray(yuv, format="yuv420p")
            frame.pts = count
            out.mux(stream.encode(frame))
            count += 1
        out.mux(stream.encode(None))
    return count


def clip_hash(spec: SceneSpec, keyint: int, bitrate_kbps: int, container: Container) -> str:
    """A short content hash of everything that determines a clip file."""
    blob = json.dumps(
        {
            "v": RENDER_VERSION,
            "spec": asdict(spec),
            "keyint": keyint,
            "bitrate_kbps": bitrate_kbps,
            "container": container,
        },
        sort_keys=True,
    )
    return hashlib.sha256(blob.encode()).hexdigest()[:12]


def write_clip(
    spec: SceneSpec,
    path: Path,
    keyint: int = 25,
    bitrate_kbps: int = 600,
    container: Container = "mp4",
) -> Path:
    """Render ``spec`` and encode it to ``path`` (written atomically); return ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    # Encode beside the target and rename, so a concurrent reader never sees a half-written clip.
    fd, tmp_name = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp", dir=path.parent)
    os.close(fd)
    tmp = Path(tmp_name)
    try:
        frames = render_frames(spec)
        encode_h264(frames, tmp, spec.width, spec.height, spec.fps, keyint, bitrate_kbps, container)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)
    return path


# ---------------------------------------------------------------------------------------------------
# Standard clips

_QUIET_SCENE = SceneSpec(
    width=640,
    height=360,
    fps=25,
    duration_s=12.0,
    noise_sigma=2.5,
    seed=7,
    light_drift=3.0,
)

# One person-sized object (6 % wide, 25 % tall) crossing the middle left to right from 4 s to 9 s.
_WALKER = MovingObject(
    start_s=4.0,
    end_s=9.0,
    x0=0.08,
    y0=0.6,
    x1=0.92,
    y1=0.6,
    w=0.06,
    h=0.25,
    brightness_delta=-45.0,
)

_BUSY_OBJECTS = (
    _WALKER,
    MovingObject(0.5, 11.0, 0.95, 0.7, 0.1, 0.62, 0.05, 0.22, 35.0),
    MovingObject(2.0, 6.0, -0.1, 0.8, 1.1, 0.78, 0.22, 0.14, -30.0),
    MovingObject(6.5, 11.5, 0.3, 0.5, 0.5, 0.9, 0.04, 0.16, 50.0),
    MovingObject(1.0, 12.0, 0.7, 0.52, 0.6, 0.58, 0.035, 0.13, -35.0),
)

_STANDARD: dict[str, StandardClip] = {
    "quiet": StandardClip(_QUIET_SCENE, keyint=25, bitrate_kbps=600),
    "walker": StandardClip(replace(_QUIET_SCENE, objects=(_WALKER,)), keyint=25, bitrate_kbps=600),
    "busy": StandardClip(replace(_QUIET_SCENE, objects=_BUSY_OBJECTS), keyint=25, bitrate_kbps=600),
}


def standard_recipe(kind: str) -> StandardClip:
    """The scene and encoder settings of a standard clip kind ("quiet", "walker", "busy")."""
    try:
        return _STANDARD[kind]
    except KeyError:
        raise ValueError(f"unknown clip kind {kind!r}; known: {sorted(_STANDARD)}") from None


def standard_clip(kind: str, path: Path, container: Container | None = None) -> Path:
    """Write (or reuse) a standard clip and return its path.

    ``path`` is either an existing directory, in which case the clip is named
    ``<kind>-<hash>.<h264|mp4>`` inside it, or a file path, in which case a sidecar
    ``<path>.json`` records the hash. The clip is re-encoded only when the hash differs. Without
    ``container`` it is taken from the suffix (".h264"/".264" = raw Annex-B), else "mp4".

    Kinds: "quiet" (640x360, 25 fps, 12 s, keyint 25, 600 kbit/s, no objects), "walker" (the same
    scene; one person-sized object crosses the middle left to right between 4 s and 9 s) and
    "busy" (five objects).
    """
    recipe = standard_recipe(kind)
    path = Path(path)
    if container is None:
        container = "h264" if path.suffix in (".h264", ".264") else "mp4"
    digest = clip_hash(recipe.scene, recipe.keyint, recipe.bitrate_kbps, container)
    if path.is_dir():
        target = path / f"{kind}-{digest}.{container}"
        if target.is_file() and target.stat().st_size > 0:
            return target
        return write_clip(recipe.scene, target, recipe.keyint, recipe.bitrate_kbps, container)
    sidecar = path.with_name(path.name + ".json")
    try:
        cached = json.loads(sidecar.read_text())
    except (OSError, ValueError):
        cached = None
    if isinstance(cached, dict) and cached.get("hash") == digest and path.is_file():
        return path
    write_clip(recipe.scene, path, recipe.keyint, recipe.bitrate_kbps, container)
    sidecar.write_text(json.dumps({"kind": kind, "hash": digest, "container": container}) + "\n")
    return path
