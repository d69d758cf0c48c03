"""Snapshots: JPEGs of the alerting frame, privacy-masked, behind one small store interface."""

from __future__ import annotations

import os
import re
import threading
import time
from pathlib import Path
from typing import TYPE_CHECKING, Protocol, cast

import av
import cv2
import numpy as np
import numpy.typing as npt

from detectors.motion import BBox
from detectors.zones import Zone, ZoneKind, rasterise

if TYPE_CHECKING:
    from config.settings import Settings

_ID = re.compile(r"^[0-9a-f]{8,64}$")
# Temporary files of a crashed writer are removed by the purge once older than this.
STALE_TMP_S = 3600.0


def snapshot_dir(settings: Settings) -> Path:
    """Where snapshots are stored (shared by workers and the API on one machine)."""
    return settings.data_dir / "snapshots"


class SnapshotStore(Protocol):
    """Where snapshots live; the filesystem by default, an object store later."""

    def put(self, alert_id: str, jpeg: bytes) -> None: ...
    def get(self, alert_id: str) -> bytes | None: ...
    def purge(self, older_than_s: float) -> int: ...


class FileSnapshotStore:
    """Snapshots as files under ``root``, two-level fan-out so no directory grows past a few thousand."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def _path(self, alert_id: str) -> Path:
        if not _ID.match(alert_id):
            raise ValueError(f"alert id {alert_id!r} is not a hex id")
        return self.root / alert_id[:2] / f"{alert_id}.jpg"

    def put(self, alert_id: str, jpeg: bytes) -> None:
        """Write atomically: a reader sees the whole JPEG or none, even after a crash mid-write."""
        path = self._path(alert_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        # Per thread, not only per process: the main-stream grab threads replace snapshots the camera threads wrote.
        tmp = path.with_suffix(f".{os.getpid()}.{threading.get_ident()}.tmp")
        with open(tmp, "wb") as fh:
            fh.write(jpeg)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)

    def get(self, alert_id: str) -> bytes | None:
        """The JPEG, or None if it was never taken or has expired."""
        try:
            return self._path(alert_id).read_bytes()
        except FileNotFoundError:
            return None

    def purge(self, older_than_s: float) -> int:
        """Delete snapshots older than ``older_than_s`` seconds; returns how many."""
        now = time.time()
        removed = 0
        for pattern, age in (("*/*.jpg", older_than_s), ("*/*.tmp", min(older_than_s, STALE_TMP_S))):
            for path in self.root.glob(pattern):
                try:
                    if path.stat().st_mtime < now - age:
                        path.unlink(missing_ok=True)
                        removed += 1
                except FileNotFoundError:
                    continue  # another worker's purge got there first
        return removed


def black_out_privacy(frame_bgr: npt.NDArray[np.uint8], zones: tuple[Zone, ...]) -> None:
    """Black out the privacy zones of ``frame_bgr`` in place, at whatever resolution it has.

    Zones are normalized polygons, rasterised at the frame's own size: the same pixels as the detectors'
    ``apply_privacy`` at that size. Not that function itself: it keeps every mask it makes (up to 4,096), fine
    at detection size but 2 MB for each camera at 1080p, for a picture taken once per event (2 ms uncached).
    """
    height, width = frame_bgr.shape[:2]
    for zone in zones:
        if zone.kind is ZoneKind.PRIVACY:
            frame_bgr[rasterise(zone.polygon, width, height)] = 0


def render_snapshot(
    frame_bgr: npt.NDArray[np.uint8], zones: tuple[Zone, ...], bbox: BBox | None, quality: int
) -> bytes:
    """Privacy-mask ``frame_bgr`` (in place), draw the alert box, and encode it as JPEG.

    ``bbox`` is normalized to the frame, so the box lands on the same place of the scene at any resolution.
    """
    black_out_privacy(frame_bgr, zones)
    if bbox is not None:
        height, width = frame_bgr.shape[:2]
        x0, y0, x1, y1 = bbox
        thickness = max(2, width // 320)
        cv2.rectangle(
            frame_bgr,
            (int(x0 * width), int(y0 * height)),
            (int(x1 * width), int(y1 * height)),
            (0, 0, 255),
            thickness,
        )
    ok, buf = cv2.imencode(".jpg", frame_bgr, [cv2.IMWRITE_JPEG_QUALITY, quality])
    if not ok:
        raise ValueError(f"JPEG encoding failed for a frame of shape {frame_bgr.shape}")
    return bytes(buf)


def snapshot_jpeg(frame: av.VideoFrame, zones: tuple[Zone, ...], bbox: BBox | None, quality: int) -> bytes:
    """The alert snapshot of a decoded frame (detection or main stream), at the frame's full resolution."""
    # The only colour conversion in the worker: once per event, at full resolution, one swscale thread.
    bgr = cast(npt.NDArray[np.uint8], frame.to_ndarray(format="bgr24", threads=1))
    if bgr.shape != (frame.height, frame.width, 3):
        raise ValueError(f"frame converted to shape {bgr.shape}, expected ({frame.height}, {frame.width}, 3)")
    return render_snapshot(bgr, zones, bbox, quality)
