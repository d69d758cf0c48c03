"""Snapshots: full-resolution JPEG, privacy masks applied, the box drawn, stored with a retention limit."""

from __future__ import annotations

import os
import time
from pathlib import Path

import av
import cv2
import numpy as np
import pytest

from alerts.snapshots import FileSnapshotStore, black_out_privacy, render_snapshot, snapshot_jpeg
from detectors.zones import Zone, ZoneKind, apply_privacy

PRIVACY = Zone(name="window", kind=ZoneKind.PRIVACY, polygon=((0.0, 0.0), (0.25, 0.0), (0.25, 0.25), (0.0, 0.25)))
DETECT = Zone(name="street", polygon=((0.3, 0.3), (1.0, 0.3), (1.0, 1.0), (0.3, 1.0)))


def _decode(jpeg: bytes) -> np.ndarray:
    image = cv2.imdecode(np.frombuffer(jpeg, np.uint8), cv2.IMREAD_COLOR)
    assert image is not None
    return image


def test_snapshot_of_a_real_frame_at_full_resolution(walker_h264: Path) -> None:
    with av.open(str(walker_h264)) as container:
        frame = next(container.decode(video=0))
    jpeg = snapshot_jpeg(frame, (PRIVACY, DETECT), (0.5, 0.5, 0.7, 0.9), quality=85)
    image = _decode(jpeg)
    assert image.shape == (frame.height, frame.width, 3) == (360, 640, 3)
    # The privacy zone is black (JPEG noise aside); the scene outside it is not.
    assert image[5:85, 5:155].max() < 20
    assert image[200:300, 400:500].mean() > 40


def test_box_is_drawn_in_red() -> None:
    frame = np.full((360, 640, 3), 128, np.uint8)
    image = _decode(render_snapshot(frame, (DETECT,), (0.5, 0.5, 0.75, 0.75), quality=95))
    b, g, r = image[180, 320 + 40].astype(int)  # on the top edge of the box
    assert r > 200 and g < 80 and b < 80
    assert abs(int(image[250, 400].mean()) - 128) < 8  # inside the box: untouched


def test_store_put_get_and_retention(tmp_path: Path) -> None:
    store = FileSnapshotStore(tmp_path)
    store.put("ab" * 16, b"\xff\xd8old")
    store.put("cd" * 16, b"\xff\xd8new")
    old = tmp_path / "ab" / f"{'ab' * 16}.jpg"
    past = time.time() - 31 * 86400
    os.utime(old, (past, past))
    (tmp_path / "cd" / "x.123.tmp").write_bytes(b"crash leftover")
    os.utime(tmp_path / "cd" / "x.123.tmp", (past, past))
    assert store.purge(30 * 86400) == 2
    assert store.get("ab" * 16) is None
    assert store.get("cd" * 16) == b"\xff\xd8new"


def test_store_refuses_ids_that_are_not_hex(tmp_path: Path) -> None:
    with pytest.raises(ValueError, match="not a hex id"):
        FileSnapshotStore(tmp_path).put("../../etc/passwd", b"")


@pytest.mark.parametrize(("width", "height"), [(640, 360), (1280, 720), (1920, 1080), (704, 576)])
def test_privacy_zones_cover_the_same_part_of_the_scene_at_any_resolution(width: int, height: int) -> None:
    slanted = Zone(name="door", kind=ZoneKind.PRIVACY, polygon=((0.6, 0.1), (0.9, 0.2), (0.8, 0.7), (0.55, 0.5)))
    zones = (PRIVACY, DETECT, slanted)
    ours = np.full((height, width, 3), 200, np.uint8)
    black_out_privacy(ours, zones)
    theirs = np.full((height, width, 3), 200, np.uint8)
    apply_privacy(theirs, zones)  # what the detectors see at that size
    assert np.array_equal(ours, theirs)
    black = ours[:, :, 0] == 0
    assert black[: height // 4 - 1, : width // 4 - 1].all()  # the top-left quarter, whatever the size
    assert not black[height // 4 + 1 :, : width // 4 - 1].any()  # below it
    assert not black[: height // 4 - 1, width // 4 + 1 : width // 2].any()  # right of it
    # The two zones' areas (1/16 and 0.135) as fractions of the frame, up to their edge pixels.
    assert abs(black.mean() - (1 / 16 + 0.135)) < 0.01
