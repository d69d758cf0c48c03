"""The worker's end of the alert path: event to alert, snapshot and clip taken, alert stored durably.

``AlertSink.emit`` is called from the camera threads. With an outbox (``AlertSink.from_settings``, the normal
case) it returns once the alert is fsynced to the worker's outbox: that is the acknowledgement. Publishing to
Redis happens on the sink's drain thread (``alerts/drain.py``). Without an outbox (the plain constructor,
kept as the benchmark baseline) it publishes directly and loses the alert if Redis stays away for ~6 s.

Snapshots: on an event's start the detection frame is stored at once, so that the wall has a picture right
away. When the camera has a main stream of its own, a keyframe of it (``ingest/mainstream.py``) then replaces
that snapshot, same alert id and same reference, at the main stream's resolution; if the main stream fails,
the detection snapshot stays.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import TYPE_CHECKING

import av
import redis

from alerts.clips import ClipConfig, ClipRecorders, FileClipStore, clip_dir
from alerts.drain import DrainConfig, Drainer, outbox_dir
from alerts.models import Alert, clip_path, snapshot_path
from alerts.outbox import Outbox, OutboxFull
from alerts.publisher import AlertPublisher
from alerts.snapshots import FileSnapshotStore, SnapshotStore, snapshot_dir, snapshot_jpeg
from detectors.events import Event, EventPhase
from detectors.motion import BBox
from ingest.cameras import Camera, redact_url
from ingest.mainstream import MainStreamGrabber
from ingest.reader import ReaderOptions

if TYPE_CHECKING:
    from config.settings import Settings

log = logging.getLogger(__name__)

# Direct mode only: 0.2 s, then 0.4 s, ... up to 5 tries (about 6 s in all), enough to ride out a failover.
PUBLISH_TRIES = 5
PUBLISH_FIRST_DELAY_S = 0.2
# Open events whose snapshot and clip references are remembered for their later messages: far more than a
# worker's cameras times their zones, a bound only against events that never end (a detector bug).
MAX_OPEN_EVENTS = 100_000
# A main stream whose aspect ratio differs from the detection stream's by more than this shows another picture
# (a substream cropped to 4:3 from a 16:9 sensor differs by 25 %): zones and boxes, normalized to the detection
# frame, would land elsewhere in it, privacy masks included, so the detection snapshot stays. 3 % absorbs the
# rounding of encoded sizes (1280x720 against 640x368).
MAX_ASPECT_MISMATCH = 0.03


@dataclass(frozen=True, slots=True)
class SinkStatus:
    """What the sink has accepted and what it could not."""

    accepted: int
    rejected: int
    outbox_depth: int
    outbox_full: bool
    redis_outage: bool


# The camera's main-stream URL with its credentials, or None: given by the worker, which holds the key.
MainStreamUrl = Callable[[Camera], str | None]


@dataclass(frozen=True, slots=True)
class _Media:
    snapshot: str | None
    clip: str | None


class AlertSink:
    """Turns events into stored alerts. Shared by every camera thread of a worker; thread-safe."""

    def __init__(
        self,
        publisher: AlertPublisher,
        snapshots: SnapshotStore,
        jpeg_quality: int,
        *,
        outbox: Outbox | None = None,
        client: redis.Redis | None = None,
        clips: ClipRecorders | None = None,
        drain_config: DrainConfig | None = None,
        clusters: bool = False,
        retention_s: float | None = None,
        worker: str | None = None,
        grabber: MainStreamGrabber | None = None,
        main_stream_url: MainStreamUrl | None = None,
    ) -> None:
        """``grabber`` and ``main_stream_url`` together turn on main-stream snapshots: ``main_stream_url(camera)``
        is the URL to open, credentials included (the sink never decrypts a password itself)."""
        self._publisher = publisher
        self._snapshots = snapshots
        self._quality = jpeg_quality
        self._outbox = outbox
        self.clips = clips
        self.grabber = grabber if main_stream_url is not None else None
        self._main_stream_url = main_stream_url
        self._stop = threading.Event()
        self._lock = threading.Lock()
        # Snapshot and clip references of open events, so their update and end messages carry them too.
        self._media: dict[str, _Media] = {}
        self._alarm = False
        self.published = 0
        self.accepted = 0
        self.failed = 0
        self.drainer: Drainer | None = None
        if outbox is not None:
            if client is None:
                raise ValueError("an outbox needs the Redis client its drain publishes with")
            housekeeping = []
            if retention_s is not None:
                housekeeping.append(lambda: snapshots.purge(retention_s))
                if clips is not None:
                    housekeeping.append(lambda: clips.store.purge(retention_s))
            self.drainer = Drainer(
                outbox,
                publisher,
                client,
                worker=worker,
                config=drain_config,
                clusters=clusters,
                housekeeping=housekeeping,
            )
            self.drainer.start()
        else:
            log.warning("alert sink without an outbox: alerts are lost if Redis is away for more than ~6 s")

    @classmethod
    def from_settings(
        cls,
        settings: Settings,
        client: redis.Redis,
        worker: str | None = None,
        drain_config: DrainConfig | None = None,
        main_stream_url: MainStreamUrl | None = None,
    ) -> AlertSink:
        """The sink a worker runs: durable outbox, drain thread, snapshots, clips, retention, aggregation.

        With ``main_stream_url`` (the worker's credential resolver) and ``snapshot_main_stream`` on, snapshots
        are replaced by a main-stream keyframe where the camera has a main stream.
        """
        clips = None
        if settings.clips_enabled:
            clips = ClipRecorders(FileClipStore(clip_dir(settings)), ClipConfig.from_settings(settings))
        grabber = None
        if settings.snapshot_main_stream and main_stream_url is not None:
            # The camera readers' own timeouts: a main stream is the same camera, over the same network.
            options = ReaderOptions(open_timeout_s=settings.open_timeout_s, read_timeout_s=settings.read_timeout_s)
            grabber = MainStreamGrabber(options)
        return cls(
            AlertPublisher.from_settings(settings, client),
            FileSnapshotStore(snapshot_dir(settings)),
            settings.snapshot_quality,
            outbox=Outbox.claim(outbox_dir(settings.data_dir), settings.outbox_quota_bytes),
            client=client,
            clips=clips,
            drain_config=drain_config,
            clusters=settings.incident_cluster_radius_m > 0,
            retention_s=settings.snapshot_retention_days * 86400.0,
            worker=worker,
            grabber=grabber,
            main_stream_url=main_stream_url,
        )

    # --- the camera threads' side ---------------------------------------------------------------------------

    def emit(self, event: Event, camera: Camera, params: str, frame: av.VideoFrame | None) -> Alert:
        """Store ``event`` as an alert; on its start, ``frame`` (full resolution) becomes the snapshot.

        Returns once the alert is durable in the outbox (or, without one, published). Never raises for Redis
        or disk trouble: a full outbox raises the alarm and counts the alert as rejected.
        """
        alert = Alert.from_event(event, camera, params, snapshot=False)
        media = self._media_for(alert, event, camera, frame)
        if media.snapshot or media.clip:
            alert = alert.model_copy(update={"snapshot": media.snapshot, "clip": media.clip})
        if self._outbox is None:
            self._publish_direct(alert, camera)
            return alert
        try:
            self._outbox.append(alert.model_dump_json())
        except OutboxFull as exc:
            self.failed += 1
            self._raise_alarm(alert, camera, exc)
            return alert
        self.accepted += 1
        if self._alarm and not self._outbox.full:
            self._alarm = False
            log.warning("outbox below its quota again; %d alert(s) were refused while full", self._outbox.rejected)
        if self.drainer is not None:
            self.drainer.wake()
        return alert

    def _media_for(self, alert: Alert, event: Event, camera: Camera, frame: av.VideoFrame | None) -> _Media:
        if event.phase is not EventPhase.START:
            with self._lock:
                if event.phase is EventPhase.UPDATE:
                    media = self._media.get(alert.id)
                else:
                    media = self._media.pop(alert.id, None)
            if event.phase is EventPhase.END and self.clips is not None:
                self.clips.event_ended(camera.id, alert.id)
            return media or _Media(None, None)
        snapshot = None
        if frame is not None:
            try:
                self._snapshots.put(alert.id, snapshot_jpeg(frame, camera.zones, event.bbox, self._quality))
                snapshot = snapshot_path(alert.id)
            except (OSError, ValueError, av.FFmpegError) as exc:
                log.warning("alert %s of camera %s: no snapshot: %s", alert.id, camera.id, exc)
        if snapshot is not None and frame is not None:
            self._ask_main_stream(alert.id, camera, event.bbox, (frame.width, frame.height))
        clip = None
        if self.clips is not None and self.clips.event_started(camera.id, alert.id, event.start_s):
            clip = clip_path(alert.id)
        media = _Media(snapshot, clip)
        with self._lock:
            self._media[alert.id] = media
            if len(self._media) > MAX_OPEN_EVENTS:  # an event whose end never came: forget the oldest
                del self._media[next(iter(self._media))]
        return media

    def _ask_main_stream(
        self, alert_id: str, camera: Camera, bbox: BBox | None, detection_size: tuple[int, int]
    ) -> None:
        """Have the grabber replace the detection snapshot just stored with a main-stream keyframe."""
        if self.grabber is None or self._main_stream_url is None:
            return
        if camera.main_stream_url is None or camera.main_stream_url == camera.stream_url:
            return  # the detection frame is the camera's best picture already
        url = self._main_stream_url(camera)
        if url is None:
            return

        def store(frame: av.VideoFrame) -> None:
            width, height = detection_size
            if abs((frame.width / frame.height) / (width / height) - 1) > MAX_ASPECT_MISMATCH:
                log.warning(
                    "alert %s of camera %s: the main stream (%dx%d) does not show the detection stream's picture "
                    "(%dx%d), so its zones would not fit: the detection snapshot stays",
                    alert_id,
                    camera.id,
                    frame.width,
                    frame.height,
                    width,
                    height,
                )
                return
            try:
                self._snapshots.put(alert_id, snapshot_jpeg(frame, camera.zones, bbox, self._quality))
            except (OSError, ValueError, av.FFmpegError) as exc:
                log.warning(
                    "alert %s of camera %s: main-stream snapshot not stored, the detection snapshot stays: %s",
                    alert_id,
                    camera.id,
                    exc,
                )

        def keep(reason: str) -> None:
            log.warning(
                "alert %s of camera %s: no main-stream keyframe from %s, the detection snapshot stays: %s",
                alert_id,
                camera.id,
                redact_url(url),  # never the URL as is: it carries the password
                reason,
            )

        if not self.grabber.submit(camera.id, url, store, keep):
            # Counted in the grabber's stats; a storm would make a warning per alert a flood.
            log.debug("alert %s of camera %s: main-stream grab dropped (busy)", alert_id, camera.id)

    def _raise_alarm(self, alert: Alert, camera: Camera, exc: OutboxFull) -> None:
        if not self._alarm:
            self._alarm = True
            log.critical(
                "OUTBOX FULL: alert %s of camera %s (%s) was NOT stored: %s. Redis has been unreachable long "
                "enough to fill the outbox quota; restore Redis or raise SHARPEYES_OUTBOX_QUOTA_BYTES.",
                alert.id,
                camera.id,
                alert.type.value,
                exc,
            )
        else:
            log.error("outbox full: alert %s of camera %s not stored", alert.id, camera.id)

    def _publish_direct(self, alert: Alert, camera: Camera) -> None:
        delay = PUBLISH_FIRST_DELAY_S
        for attempt in range(PUBLISH_TRIES):
            try:
                self._publisher.publish(alert)
                self.published += 1
                return
            except redis.RedisError as exc:
                log.warning("publishing alert %s failed (try %d): %s", alert.id, attempt + 1, exc)
                if self._stop.wait(delay):
                    break
                delay *= 2
        self.failed += 1
        log.error("alert %s of camera %s was not published", alert.id, camera.id)

    # --- status and shutdown --------------------------------------------------------------------------------

    def status(self) -> SinkStatus:
        """Counts and alarms, for health reports and tests."""
        outbox = self._outbox
        return SinkStatus(
            accepted=self.accepted,
            rejected=outbox.rejected if outbox is not None else self.failed,
            outbox_depth=self.drainer.depth() if self.drainer is not None else 0,
            outbox_full=outbox.full if outbox is not None else False,
            redis_outage=self.drainer is not None and self.drainer.outage_since is not None,
        )

    def flush(self, timeout: float) -> bool:
        """Wait until the outbox is empty (everything published and confirmed); False on timeout."""
        return self.drainer.wait_empty(timeout) if self.drainer is not None else True

    def close(self) -> None:
        """Stop main-stream grabs (their snapshots stay the detection frames), stop the drain after a last
        publish attempt, and finish open clips.

        Alerts emitted after this (events ended by stopping cameras) are still stored in the outbox and
        published by the next worker that adopts it.
        """
        self._stop.set()
        if self.grabber is not None:
            self.grabber.close()
        if self.drainer is not None:
            self.drainer.stop()
        if self.clips is not None:
            self.clips.close()

    def release(self) -> None:
        """After :meth:`close`: release the outbox file (removed if drained). Emitting afterwards fails."""
        if self.drainer is not None:
            self.drainer.close_outboxes()
        elif self._outbox is not None:
            self._outbox.close(delete_if_empty=True)
