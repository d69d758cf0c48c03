"""The accuracy benchmark's scoring: truth matching, brief visits, and the misses / false-alerts listing."""

from __future__ import annotations

import pytest

from benchmarks import scenes as sc
from benchmarks.bench_accuracy import Record, SceneRun, Score, detail, score
from detectors.events import EventType
from ingest.synthetic import MovingObject, SceneSpec

# A person walking through the west zone for 8 s, and a car clipping the east zone's corner for under a second.
PERSON = MovingObject(2.0, 12.0, 0.08, 0.75, 0.42, 0.75, 0.04, 0.14, -30.0)
CAR = MovingObject(20.0, 20.8, 1.15, 0.6, 0.85, 0.6, 0.2, 0.1, 40.0)
SCENE = sc.Scene(
    "unit", sc.Family.PEOPLE_DAY, SceneSpec(fps=10, duration_s=30.0, objects=(PERSON, CAR)), zones=sc.SCENE_ZONES
)


def motion(zone: str, alerted: float, end: float) -> Record:
    return Record(EventType.MOTION, zone, alerted, alerted - 0.4, end)


def test_scene_truth_keeps_the_walk_and_drops_the_brief_visit() -> None:
    truth = sc.truth(SCENE)
    assert len(truth["west"]) == 1 and truth["east"] == []
    assert len(sc.truth(SCENE, min_span_s=0.0)["east"]) == 1


@pytest.mark.parametrize(
    ("label", "records", "hits", "false_alerts", "lines"),
    [
        ("caught, car alert is no false alert", [motion("west", 3.0, 14.0), motion("east", 20.8, 25.0)], 1, 0, []),
        ("missed", [], 0, 0, ["MISS unit zone=west"]),
        ("caught, plus a false alert", [motion("west", 3.0, 14.0), motion("east", 27.0, 29.0)], 1, 1, ["FALSE ours"]),
    ],
)
def test_score_and_detail(label: str, records: list[Record], hits: int, false_alerts: int, lines: list[str]) -> None:
    run = SceneRun("unit", sc.Family.PEOPLE_DAY, 30.0, {"ours": records})
    s = Score()
    score(run, SCENE, "ours", s)
    assert (s.truths, s.hits, s.false_alerts) == (1, hits, false_alerts), label
    got = detail(run, SCENE, ["ours"])
    assert [line[: len(want)] for line, want in zip(got, lines, strict=True)] == lines, got
    if hits == 0:
        assert "person 26x50 px, contrast -30" in got[0]
