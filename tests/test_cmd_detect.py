"""`sharpeyes detect` end to end on real H.264: JSON lines on stdout, clear errors, settings from --config."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from sharpeyes.cli import main

ZONES = [
    {"name": "middle", "kind": "detect", "polygon": [[0.05, 0.35], [0.95, 0.35], [0.95, 0.9], [0.05, 0.9]]},
    {"name": "sky", "kind": "exclude", "polygon": [[0, 0], [1, 0], [1, 0.2], [0, 0.2]]},
]


@pytest.fixture(autouse=True)
def _clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    for var in [v for v in os.environ if v.startswith("SHARPEYES_")]:
        monkeypatch.delenv(var)


@pytest.fixture
def zones_file(tmp_path: Path) -> Path:
    path = tmp_path / "zones.json"
    path.write_text(json.dumps(ZONES))
    return path


def lines(text: str) -> list[dict[str, object]]:
    return [json.loads(line) for line in text.splitlines() if line.strip()]


@pytest.mark.parametrize("extra", [[], ["--keyframes-only"], ["--fps", "2"]], ids=["default", "keyframes", "fps2"])
def test_walker_event_printed_as_json(
    walker_h264: Path, zones_file: Path, extra: list[str], capsys: pytest.CaptureFixture[str]
) -> None:
    assert main(["detect", str(walker_h264), "--zones", str(zones_file), *extra]) == 0
    out = capsys.readouterr()
    (event,) = lines(out.out)
    assert list(event) == ["type", "zone", "start_s", "end_s", "peak_fraction", "bbox"]
    assert event["type"] == "motion" and event["zone"] == "middle"
    assert 3.5 <= float(event["start_s"]) <= 6.5 and 7.0 <= float(event["end_s"]) <= 10.0  # type: ignore[arg-type]
    assert "1 event(s)" in out.err


def test_whole_frame_zone_without_zones_file(quiet_h264: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(quiet_h264)]) == 0
    assert lines(capsys.readouterr().out) == []


@pytest.mark.parametrize("where", ["before", "after"])
def test_config_file_applies_either_side_of_the_subcommand(
    walker_h264: Path, zones_file: Path, tmp_path: Path, where: str, capsys: pytest.CaptureFixture[str]
) -> None:
    config = tmp_path / "s.toml"
    config.write_text("zone_min_fraction = 0.9\n")  # no walker can fill 90 % of the zone
    args = ["detect", str(walker_h264), "--zones", str(zones_file)]
    argv = ["--config", str(config), *args] if where == "before" else [*args, "--config", str(config)]
    assert main(argv) == 0
    assert lines(capsys.readouterr().out) == []


@pytest.mark.parametrize(
    ("content", "args", "message"),
    [
        (None, ["--fps", "0"], "--fps"),
        ("{not json", [], "not valid JSON"),
        ('{"name": "a"}', [], "JSON list"),
        ('[{"name": "a", "polygon": [[0, 0], [2, 0], [1, 1]]}]', [], "zones[0].polygon[1][0]"),
        ('[{"name": "a", "kind": "privacy", "polygon": [[0, 0], [1, 0], [1, 1]]}]', [], "detect"),
        (None, ["--start-time", "yesterday"], "--start-time"),
        (None, ["--start-time", "2026-11-27T18:00:00"], "UTC offset"),
    ],
)
def test_bad_input_exits_2_naming_the_problem(
    walker_h264: Path,
    tmp_path: Path,
    content: str | None,
    args: list[str],
    message: str,
    capsys: pytest.CaptureFixture[str],
) -> None:
    argv = ["detect", str(walker_h264), *args]
    if content is not None:
        path = tmp_path / "z.json"
        path.write_text(content)
        argv += ["--zones", str(path)]
    assert main(argv) == 2
    assert message in capsys.readouterr().err


def test_missing_video_and_undecodable_video(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    assert main(["detect", str(tmp_path / "nope.mp4")]) == 2
    assert "does not exist" in capsys.readouterr().err
    junk = tmp_path / "junk.mp4"
    junk.write_bytes(b"\x00junk" * 1000)
    assert main(["detect", str(junk)]) == 1
    assert "cannot decode" in capsys.readouterr().err


def test_help_explains_the_output(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        main(["detect", "--help"])
    text = capsys.readouterr().out
    for word in ("start_s", "ZONES.json", "--keyframes-only", "privacy"):
        assert word in text
