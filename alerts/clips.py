"""Event clips: a bytes-bounded ring of each camera's compressed packets, remuxed into an MP4 on an event.

Nothing here decodes. The reader hands every demuxed packet to :meth:`ClipRecorders.push`; the ring
(``alerts/packet_ring.py``) keeps the last few seconds, whole GOPs only (a clip must start on a keyframe), and
never more than ``ring_bytes``. On an
event's start the pre-event GOPs are written to a new MP4 (stream copied from the camera's stream parameters,
timestamps rebased to 0), the event's packets follow as they arrive, and the file is finished when the event
ends or a cap (seconds or bytes) is reached, then moved into the clip store in the background.

Threading: ``push``, ``event_started`` and ``event_ended`` of one camera come from that camera's thread; a
lock per camera makes any other caller safe too. Finishing (trailer, fsync, rename) runs on one background
thread so the camera thread never waits for the disk.
"""

from __future__ import annotations

import contextlib
import io
import logging
import os
import queue
import re
import threading
import time
from dataclasses import dataclass
from fractions import Fraction
from pathlib import Path
from typing import TYPE_CHECKING, Any

import av
from av.packet import Packet

# The ring lives in alerts/packet_ring.py; re-exported, the tests and benchmarks import it from here.
from alerts.packet_ring import PACKET_OVERHEAD as PACKET_OVERHEAD
from alerts.packet_ring import PacketRing as PacketRing
from alerts.packet_ring import RingEntry

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger(__name__)

_ID = re.compile(r"^[0-9a-f]{8,64}$")
# The ring keeps this much more than the pre-event seconds: an event is reported after it has lasted the
# detector's minimum duration plus an analysis interval, and its pre-roll counts from its start.
PRE_MARGIN_S = 5.0
# Parallel recordings per camera (one per zone with an open event); more events share no clip.
MAX_RECORDINGS = 4
# Unfinished clip files older than this are crash leftovers.
STALE_PARTIAL_S = 24 * 3600


def clip_dir(settings: Settings) -> Path:
    """Where clips are stored (shared by workers and the API on one machine)."""
    return settings.data_dir / "clips"


@dataclass(frozen=True, slots=True)
class ClipConfig:
    """How much to keep before an event, how long a clip may grow, how much memory a camera's ring may use."""

    pre_s: float = 5.0
    max_s: float = 60.0
    ring_bytes: int = 8 * 1024 * 1024
    max_bytes: int = 64 * 1024 * 1024

    @classmethod
    def from_settings(cls, s: Settings) -> ClipConfig:
        """The clip settings."""
        return cls(pre_s=s.clip_pre_s, max_s=s.clip_max_s, ring_bytes=s.clip_ring_bytes, max_bytes=s.clip_max_bytes)


class _Recording:
    """One event's MP4 being written."""

    def __init__(self, alert_id: str, path: Path, template: Any, time_base: Fraction, cfg: ClipConfig) -> None:
        self.alert_id = alert_id
        self.path = path
        self._cfg = cfg
        self._time_base = time_base
        self._out = av.open(str(path), mode="w", format="mp4")
        self._stream = self._out.add_stream_from_template(template)
        self._offset: int | None = None
        self._last_dts = -1
        self.bytes = 0
        self.packets = 0
        self.full = False

    def write(self, entry: RingEntry) -> None:
        """Mux one packet; sets ``full`` once a cap is reached."""
        if self._offset is None:
            self._offset = entry.dts
        dts = entry.dts - self._offset
        if dts <= self._last_dts:  # a camera clock step: keep the file valid, monotonic dts
            dts = self._last_dts + 1
        pts = max(dts, entry.pts - self._offset)
        # A copy (a few µs): the reader's packet may still be decoded by the camera's pipeline, which must
        # not find it re-pointed at this output stream or re-timed.
        packet = av.Packet(entry.packet)  # type: ignore[arg-type]  # PyAV takes any buffer; the stub says bytes
        packet.is_keyframe = entry.key
        packet.stream = self._stream
        packet.time_base = self._time_base
        packet.pts, packet.dts, packet.duration = pts, dts, entry.duration
        self._out.mux(packet)
        self._last_dts = dts
        self.bytes += entry.size
        self.packets += 1
        if self.bytes >= self._cfg.max_bytes or float((dts + entry.duration) * self._time_base) >= self._cfg.max_s:
            self.full = True

    def finish(self) -> None:
        """Write the MP4 trailer and fsync (background thread)."""
        self._out.close()
        with open(self.path, "rb") as fh:
            os.fsync(fh.fileno())

    def abandon(self) -> None:
        """Drop a broken recording."""
        with contextlib.suppress(av.FFmpegError, OSError):
            self._out.close()
        self.path.unlink(missing_ok=True)


class _CameraClips:
    def __init__(self, cfg: ClipConfig) -> None:
        self.lock = threading.Lock()
        self.ring = PacketRing(cfg.ring_bytes, cfg.pre_s + PRE_MARGIN_S)
        self.recordings: dict[str, _Recording] = {}
        # Stream parameters copied into a container we own, so a recording can start after the reader has
        # closed the camera's input (whose streams must not be touched then).
        self.holder: Any = None
        self.template: Any = None


class FileClipStore:
    """Finished clips as ``root/ab/<alert id>.mp4``; unfinished ones under ``root/.partial``."""

    def __init__(self, root: Path) -> None:
        self.root = root
        self.partial = root / ".partial"

    def _path(self, alert_id: str) -> Path:
        if not _ID.match(alert_id):
            raise ValueError(f"alert id {alert_id!r} is not a hex id")
        return self.root / alert_id[:2] / f"{alert_id}.mp4"

    def partial_path(self, alert_id: str) -> Path:
        """Where a clip is written while its event runs (same filesystem, so the final move is atomic)."""
        self._path(alert_id)
        self.partial.mkdir(parents=True, exist_ok=True)
        return self.partial / f"{alert_id}.{os.getpid()}.mp4"

    def put_file(self, alert_id: str, source: Path) -> None:
        """Move a finished clip into place atomically."""
        path = self._path(alert_id)
        path.parent.mkdir(parents=True, exist_ok=True)
        os.replace(source, path)

    def path(self, alert_id: str) -> Path | None:
        """The finished clip's file, or None (not recorded, still recording, or expired)."""
        path = self._path(alert_id)
        return path if path.is_file() else None

    def recording(self, alert_id: str) -> bool:
        """True while the clip is still being written."""
        self._path(alert_id)
        return any(self.partial.glob(f"{alert_id}.*.mp4"))

    def purge(self, older_than_s: float) -> int:
        """Delete clips older than ``older_than_s`` seconds and stale partial files; returns how many."""
        now = time.time()
        removed = 0
        for path in self.root.glob("*/*.mp4"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < now - older_than_s:
                    path.unlink(missing_ok=True)
                    removed += 1
        for path in self.partial.glob("*.mp4"):
            with contextlib.suppress(FileNotFoundError):
                if path.stat().st_mtime < now - max(older_than_s, STALE_PARTIAL_S):
                    path.unlink(missing_ok=True)
                    removed += 1
        return removed


class ClipRecorders:
    """Rings and recordings of every camera of a worker."""

    def __init__(self, store: FileClipStore, config: ClipConfig) -> None:
        self.store = store
        self.config = config
        self._cameras: dict[str, _CameraClips] = {}
        self._lock = threading.Lock()
        self._finishing: queue.Queue[_Recording | None] = queue.Queue()
        self._finisher = threading.Thread(target=self._finish_loop, name="clip-finisher", daemon=True)
        self._finisher.start()
        self.finished = 0
        self.failed = 0

    def _camera(self, camera_id: str) -> _CameraClips:
        with self._lock:
            cam = self._cameras.get(camera_id)
            if cam is None:
                cam = self._cameras[camera_id] = _CameraClips(self.config)
            return cam

    def ring(self, camera_id: str) -> PacketRing:
        """The camera's ring (created on first use)."""
        return self._camera(camera_id).ring

    def push(self, camera_id: str, packet: Packet[Any], arrived: float | None = None) -> None:
        """Call for every demuxed packet of the camera's video stream, in order. Cheap: no decoding.

        ``arrived`` is the packet's wall-clock arrival (default: now), the clock event starts are given in.
        """
        cam = self._camera(camera_id)
        with cam.lock:
            ring = cam.ring
            if ring.new_stream(packet):
                self._end_all(cam, "the stream was reopened")
                ring.adopt_stream(packet)
                self._take_template(cam, packet)
            entry = ring.push(packet, arrived)
            if entry is None or not cam.recordings:
                return
            for alert_id, rec in list(cam.recordings.items()):
                try:
                    rec.write(entry)
                except (av.FFmpegError, OSError) as exc:
                    log.warning("clip %s: write failed, clip dropped: %s", alert_id, exc)
                    del cam.recordings[alert_id]
                    rec.abandon()
                    self.failed += 1
                    continue
                if rec.full:
                    del cam.recordings[alert_id]
                    self._finishing.put(rec)

    def _take_template(self, cam: _CameraClips, packet: Packet[Any]) -> None:
        old = cam.holder
        cam.holder = av.open(io.BytesIO(), mode="w", format="mp4")
        cam.template = cam.holder.add_stream_from_template(packet.stream)
        if old is not None:
            with contextlib.suppress(av.FFmpegError):
                old.close()

    def event_started(self, camera_id: str, alert_id: str, start_s: float) -> bool:
        """Start the clip of an event that began at ``start_s`` (Unix s). False when no clip can be made."""
        cam = self._camera(camera_id)
        with cam.lock:
            ring = cam.ring
            entries = ring.since(start_s - self.config.pre_s)
            if not entries or cam.template is None or ring.time_base is None:
                return False
            if alert_id in cam.recordings or len(cam.recordings) >= MAX_RECORDINGS:
                return alert_id in cam.recordings
            try:
                rec = _Recording(alert_id, self.store.partial_path(alert_id), cam.template, ring.time_base, self.config)
                for entry in entries:
                    rec.write(entry)
                    if rec.full:
                        break
            except (av.FFmpegError, OSError) as exc:
                log.warning("clip %s of camera %s could not start: %s", alert_id, camera_id, exc)
                self.failed += 1
                return False
            if rec.full:
                self._finishing.put(rec)
            else:
                cam.recordings[alert_id] = rec
            return True

    def event_ended(self, camera_id: str, alert_id: str) -> None:
        """Finish the event's clip (in the background)."""
        cam = self._camera(camera_id)
        with cam.lock:
            rec = cam.recordings.pop(alert_id, None)
        if rec is not None:
            self._finishing.put(rec)

    def reset(self, camera_id: str) -> None:
        """The camera's stream closed or the camera was removed: finish its clips, free its ring."""
        with self._lock:
            cam = self._cameras.pop(camera_id, None)
        if cam is None:
            return
        with cam.lock:
            self._end_all(cam, "the camera stopped")
            cam.ring.reset()
            if cam.holder is not None:
                with contextlib.suppress(av.FFmpegError):
                    cam.holder.close()
                cam.holder = cam.template = None

    def _end_all(self, cam: _CameraClips, why: str) -> None:
        for alert_id, rec in list(cam.recordings.items()):
            log.info("clip %s finished early: %s", alert_id, why)
            self._finishing.put(rec)
        cam.recordings.clear()

    def memory_bytes(self) -> int:
        """Bytes held by every ring."""
        with self._lock:
            cams = list(self._cameras.values())
        return sum(c.ring.bytes for c in cams)

    def _finish_loop(self) -> None:
        while True:
            rec = self._finishing.get()
            try:
                if rec is None:
                    return
                try:
                    rec.finish()
                    self.store.put_file(rec.alert_id, rec.path)
                    self.finished += 1
                except (av.FFmpegError, OSError) as exc:
                    log.warning("clip %s could not be finished: %s", rec.alert_id, exc)
                    rec.abandon()
                    self.failed += 1
            finally:
                self._finishing.task_done()

    def drain(self) -> None:
        """Wait until every clip handed to the finisher is stored."""
        self._finishing.join()

    def close(self) -> None:
        """Finish every open clip and stop the finisher thread."""
        with self._lock:
            cameras = list(self._cameras)
        for camera_id in cameras:
            self.reset(camera_id)
        self._finishing.put(None)
        self._finisher.join(timeout=30)
