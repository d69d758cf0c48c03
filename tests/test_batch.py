"""Batched analysis gives the same events as one analyzer per camera."""

from __future__ import annotations

import pytest

from detectors.analyzer import AnalyzerConfig, CameraAnalyzer
from detectors.batch import BatchAnalyzer
from detectors.events import Event
from tests.detector_fixtures import LEFT, RIGHT, WHOLE, background, scene

CONFIG = AnalyzerConfig()
ZONES = (LEFT, RIGHT)


def summary(events: list[Event]) -> list[tuple[str, str, str, float]]:
    return [(e.type.value, e.zone, e.phase.value, round(e.t_s, 2)) for e in events]


def test_batch_matches_per_camera() -> None:
    streams = [
        list(scene(70, box=(0.1, 0.5, 0.16, 0.8), move=(4, 0), moving_from=25, seed=1)),
        list(scene(70, seed=2)),
        list(scene(70, box=(0.8, 0.4, 0.9, 0.7), move=(-3, 0), moving_from=30, seed=3)),
    ]
    batch = BatchAnalyzer([(f"c{i}", ZONES) for i in range(3)], CONFIG, (180, 320))
    singles = [CameraAnalyzer(f"c{i}", ZONES, CONFIG) for i in range(3)]
    got_b: list[list[Event]] = [[], [], []]
    got_s: list[list[Event]] = [[], [], []]
    for k in range(70):
        for i, analysis in enumerate(batch.process([s[k] for s in streams])):
            assert analysis is not None
            got_b[i] += analysis.events
        for i, analyzer in enumerate(singles):
            got_s[i] += analyzer.process(streams[i][k]).events
    assert [summary(e) for e in got_b] == [summary(e) for e in got_s]
    assert summary(got_b[0]) and not got_b[1]


def test_missing_frames_and_size_changes() -> None:
    batch = BatchAnalyzer([("a", (WHOLE,)), ("b", (WHOLE,))], CONFIG, (180, 320))
    frames_a = list(scene(20, seed=1))
    other = background(240, 320)
    for k in range(20):
        frame_b = frames_a[k] if k < 10 else None
        out = batch.process([frames_a[k], frame_b])
        assert out[0] is not None and (out[1] is None) == (frame_b is None)
    from detectors.source import ChromaLumaFrame

    moved = batch.process([frames_a[0], ChromaLumaFrame("b", 5.0, other, True, chroma_level=10.0)])
    assert moved[1] is not None and not moved[1].events  # b left the batch and started learning anew
    with pytest.raises(ValueError, match="expected 2 frames"):
        batch.process([frames_a[0]])
