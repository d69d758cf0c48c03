"""The worker's end of the alert path: event to alert, snapshot taken, alert published."""

from __future__ import annotations

import logging
import threading
from typing import cast

import av
import numpy as np
import numpy.typing as npt
import redis

from alerts.models import Alert
from alerts.publisher import AlertPublisher
from alerts.snapshots import SnapshotStore, render_snapshot
from detectors.events import Event, EventPhase
from ingest.cameras import Camera

log = logging.getLogger(__name__)

# Publishing retries: 0.2 s, then 0.4 s, ... up to 5 tries (about 6 s in all), enough to ride out a
# Redis failover; beyond that the alert is logged as lost until the durable outbox lands (issue 6).
PUBLISH_TRIES = 5
PUBLISH_FIRST_DELAY_S = 0.2


class AlertSink:
    """Turns events into published alerts. Shared by every camera thread of a worker; thread-safe."""

    def __init__(self, publisher: AlertPublisher, snapshots: SnapshotStore, jpeg_quality: int) -> None:
        self._publisher = publisher
        self._snapshots = snapshots
        self._quality = jpeg_quality
        self._stop = threading.Event()
        self.published = 0
        self.failed = 0

    def close(self) -> None:
        """Stop waiting in retries (shutdown)."""
        self._stop.set()

    def emit(self, event: Event, camera: Camera, params: str, frame: av.VideoFrame | None) -> Alert:
        """Publish ``event``; on its start, ``frame`` (full resolution) becomes the snapshot."""
        snapshot = False
        alert = Alert.from_event(event, camera, params, snapshot=False)
        if event.phase is EventPhase.START and frame is not None:
            # The only colour conversion in the worker: once per event, at full resolution.
            bgr = cast(npt.NDArray[np.uint8], frame.to_ndarray(format="bgr24", threads=1))
            self._snapshots.put(alert.id, render_snapshot(bgr, camera.zones, event.bbox, self._quality))
            snapshot = True
        if snapshot:
            alert = alert.model_copy(update={"snapshot": f"/api/v1/alerts/{alert.id}/snapshot"})
        delay = PUBLISH_FIRST_DELAY_S
        for attempt in range(PUBLISH_TRIES):
            try:
                self._publisher.publish(alert)
                self.published += 1
                return alert
            except redis.RedisError as exc:
                log.warning("publishing alert %s failed (try %d): %s", alert.id, attempt + 1, exc)
                if self._stop.wait(delay):
                    break
                delay *= 2
        self.failed += 1
        log.error("alert %s of camera %s was not published", alert.id, camera.id)
        return alert
