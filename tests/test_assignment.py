"""The assignment interface: the local split of cameras across worker processes."""

from __future__ import annotations

import pytest

from ingest.assignment import Assignment, LocalSplit
from tests.ingest_fixtures import make_camera


def test_local_split_gives_every_enabled_camera_to_exactly_one_process() -> None:
    cameras = [make_camera(f"file:///c{i}.mp4", cid=f"cam_{i:04d}") for i in range(400)]
    splits: list[Assignment] = [LocalSplit(i, 4) for i in range(4)]
    held = [s.select(cameras) for s in splits]
    ids = [c.id for part in held for c in part]
    assert sorted(ids) == sorted(c.id for c in cameras)
    assert all(60 <= len(part) <= 140 for part in held), [len(p) for p in held]


def test_adding_a_camera_moves_no_other_camera() -> None:
    cameras = [make_camera(f"file:///c{i}.mp4", cid=f"cam_{i:04d}") for i in range(100)]
    before = {c.id: i for i in range(3) for c in LocalSplit(i, 3).select(cameras)}
    cameras.append(make_camera("file:///new.mp4", cid="cam_new"))
    after = {c.id: i for i in range(3) for c in LocalSplit(i, 3).select(cameras)}
    assert all(after[cid] == owner for cid, owner in before.items())


def test_disabled_cameras_are_held_by_nobody() -> None:
    camera = make_camera("file:///c.mp4").model_copy(update={"enabled": False})
    assert LocalSplit(0, 1).select([camera]) == []


def test_bad_index_is_refused() -> None:
    with pytest.raises(ValueError, match=r"outside 0\.\.1"):
        LocalSplit(2, 2)
