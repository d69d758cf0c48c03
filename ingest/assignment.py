"""Which cameras a worker process holds. One small interface, so that the local split can later be
replaced by leases shared by workers on many machines without touching the readers."""

from __future__ import annotations

import zlib
from collections.abc import Iterable
from typing import Protocol

from ingest.cameras import Camera


class Assignment(Protocol):
    """Decides the cameras one worker process is responsible for."""

    def select(self, cameras: Iterable[Camera]) -> list[Camera]: ...


class LocalSplit:
    """Enabled cameras split across ``count`` local processes by a stable hash of the camera id.

    A hash, not a round-robin over a sorted list, so that adding one camera moves no other camera.
    """

    def __init__(self, index: int, count: int) -> None:
        if not 0 <= index < count:
            raise ValueError(f"worker index {index} is outside 0..{count - 1}")
        self.index = index
        self.count = count

    def owns(self, camera_id: str) -> bool:
        """True when this process holds ``camera_id``."""
        return zlib.crc32(camera_id.encode()) % self.count == self.index

    def select(self, cameras: Iterable[Camera]) -> list[Camera]:
        """The enabled cameras this process holds."""
        return [c for c in cameras if c.enabled and self.owns(c.id)]
