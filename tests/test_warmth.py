"""Table 1b's measurement: every condition analyses the same keyframes; the figures are relative to warm."""

from __future__ import annotations

from pathlib import Path

from benchmarks.warmth import SPINS_S, detector_warmth
from ingest.cameras import FULL_FRAME_ZONE


def test_every_condition_is_measured_against_warm(small_h264: Path) -> None:
    rows = detector_warmth(small_h264, (FULL_FRAME_ZONE,), 160, passes=1)
    names = [r[0] for r in rows]
    assert names[0] == "warm" and names[-1] == "after the keyframe's decode" and len(rows) == len(SPINS_S) + 2
    assert rows[0][2] == 1.0
    assert all(isinstance(r[1], float) and r[1] > 0 for r in rows)
