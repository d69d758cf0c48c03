"""Many cameras analysed together: one :class:`MotionStack` for the batch, one kernel step per tick.

Each camera keeps its own :class:`CameraAnalyzer` (lighting, tamper, zones, events); only the per-pixel kernel is
shared, running its point-wise and 3x3 stages once over the stacked rows of every camera. Results are the same as
analysing each camera on its own, except for the top and bottom pixel row of each frame (see
:class:`MotionStack`). Whether this is cheaper than a loop over cameras depends on the batch size and the cache:
``benchmarks/bench_accuracy.py`` measures both, and ``docs/detectors.md`` says which won.
"""

from __future__ import annotations

from collections.abc import Sequence

from detectors.analyzer import Analysis, AnalyzerConfig, CameraAnalyzer
from detectors.events import Event
from detectors.motion import MotionParams, MotionStack, work_size
from detectors.zones import Zone
from ingest.frames import LumaFrame


class BatchAnalyzer:
    """A fixed list of cameras whose frames of one detection size ``shape`` (h, w) arrive together."""

    def __init__(
        self,
        cameras: Sequence[tuple[str, tuple[Zone, ...]]],
        config: AnalyzerConfig,
        shape: tuple[int, int],
        *,
        clock_offset_s: float | None = 0.0,
    ) -> None:
        if not cameras:
            raise ValueError("a batch needs at least one camera")
        self.shape = shape
        w, h = work_size(shape[1], shape[0], config.motion.work_width)
        self._stack = MotionStack(len(cameras), w, h)
        self.analyzers = [CameraAnalyzer(cid, zones, config, clock_offset_s=clock_offset_s) for cid, zones in cameras]
        for slot, analyzer in enumerate(self.analyzers):
            analyzer.attach(shape, self._stack, slot)
        self._last_t = [0.0] * len(cameras)
        self._default = config.motion

    def process(self, frames: Sequence[LumaFrame | None]) -> list[Analysis | None]:
        """Analyse one tick: ``frames[i]`` is camera ``i``'s frame, or None when it has none this tick.

        A frame of another size moves its camera out of the batch for good (it gets its own stack).
        """
        n = len(self.analyzers)
        if len(frames) != n:
            raise ValueError(f"expected {n} frames (one per camera, None for none), got {len(frames)}")
        times = list(self._last_t)
        params: list[MotionParams] = [self._default] * n
        force = [False] * n
        batched: list[bool] = [False] * n
        out: list[Analysis | None] = [None] * n
        for i, (analyzer, frame) in enumerate(zip(self.analyzers, frames, strict=True)):
            if frame is None:
                continue
            if frame.luma_hw.shape != self.shape or not analyzer.uses(self._stack):
                out[i] = analyzer.process(frame)
                continue
            params[i], force[i] = analyzer.prepare(frame)
            times[i] = self._last_t[i] = frame.t_s
            batched[i] = True
        if any(batched):
            kernel = self._stack.step(0, n, times, params, force)
            for i, frame in enumerate(frames):
                if batched[i] and frame is not None:
                    out[i] = self.analyzers[i].finish(frame, params[i], kernel[i])
        return out

    def flush(self, t_s: float) -> list[Event]:
        """End every open event of every camera."""
        return [e for analyzer in self.analyzers for e in analyzer.flush(t_s)]
