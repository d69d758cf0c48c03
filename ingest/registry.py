"""The camera registry in Redis: one JSON document per camera, an id set, and a version counter.

Workers poll the version counter (one GET per second per worker) and reload only when it moved.
"""

from __future__ import annotations

import secrets
from collections.abc import Iterable
from datetime import UTC, datetime
from typing import cast

import redis

from ingest.cameras import Camera, CameraSpec

CAMERA_KEY = "sharpeyes:camera:{id}"
CAMERA_IDS = "sharpeyes:cameras"
EXTERNAL_IDS = "sharpeyes:camera_external_ids"
VERSION_KEY = "sharpeyes:registry:version"


class DuplicateExternalId(ValueError):
    """Another camera already carries this external id."""


def new_camera_id() -> str:
    """A short random id; cameras are named by people, identified by this."""
    return "cam_" + secrets.token_hex(6)


class CameraRegistry:
    """Create, read, update and delete cameras. Every write bumps the registry version."""

    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    def version(self) -> int:
        """The registry version: it changes whenever any camera does."""
        raw = self._r.get(VERSION_KEY)
        return int(cast(bytes, raw)) if raw else 0

    def create(self, spec: CameraSpec, actor: str) -> Camera:
        """Register a new camera."""
        now = datetime.now(UTC)
        camera = Camera(
            **spec.model_dump(),
            id=new_camera_id(),
            created_at=now,
            updated_at=now,
            created_by=actor,
            updated_by=actor,
        )
        self._write(camera, previous=None)
        return camera

    def update(self, camera_id: str, spec: CameraSpec, actor: str) -> tuple[Camera, Camera] | None:
        """Replace a camera's spec; returns (before, after), or None if there is no such camera."""
        before = self.get(camera_id)
        if before is None:
            return None
        after = Camera(
            **spec.model_dump(),
            id=camera_id,
            created_at=before.created_at,
            created_by=before.created_by,
            updated_at=datetime.now(UTC),
            updated_by=actor,
        )
        self._write(after, previous=before)
        return before, after

    def _write(self, camera: Camera, previous: Camera | None) -> None:
        ext = camera.external_id
        if ext is not None and (previous is None or previous.external_id != ext):
            owner = self._r.hget(EXTERNAL_IDS, ext)
            if owner is not None and cast(bytes, owner).decode() != camera.id:
                raise DuplicateExternalId(
                    f"external_id {ext!r} already belongs to camera {cast(bytes, owner).decode()}"
                )
        with self._r.pipeline(transaction=True) as pipe:
            pipe.set(CAMERA_KEY.format(id=camera.id), camera.model_dump_json())
            pipe.sadd(CAMERA_IDS, camera.id)
            if previous is not None and previous.external_id and previous.external_id != ext:
                pipe.hdel(EXTERNAL_IDS, previous.external_id)
            if ext is not None:
                pipe.hset(EXTERNAL_IDS, ext, camera.id)
            pipe.incr(VERSION_KEY)
            pipe.execute()

    def delete(self, camera_id: str) -> Camera | None:
        """Remove a camera; returns what it was, or None if there was no such camera."""
        before = self.get(camera_id)
        if before is None:
            return None
        with self._r.pipeline(transaction=True) as pipe:
            pipe.delete(CAMERA_KEY.format(id=camera_id))
            pipe.srem(CAMERA_IDS, camera_id)
            if before.external_id:
                pipe.hdel(EXTERNAL_IDS, before.external_id)
            pipe.incr(VERSION_KEY)
            pipe.execute()
        return before

    def get(self, camera_id: str) -> Camera | None:
        """One camera, or None."""
        raw = self._r.get(CAMERA_KEY.format(id=camera_id))
        return Camera.model_validate_json(cast(bytes, raw)) if raw else None

    def by_external_id(self, external_id: str) -> Camera | None:
        """The camera carrying ``external_id`` (the installer's id), or None."""
        owner = self._r.hget(EXTERNAL_IDS, external_id)
        return self.get(cast(bytes, owner).decode()) if owner else None

    def upsert(self, spec: CameraSpec, actor: str) -> tuple[Camera | None, Camera]:
        """Create or replace the camera with ``spec.external_id``; returns (before, after)."""
        if spec.external_id is None:
            raise ValueError("upsert needs an external_id")
        existing = self.by_external_id(spec.external_id)
        if existing is None:
            return None, self.create(spec, actor)
        changed = self.update(existing.id, spec, actor)
        assert changed is not None
        return changed

    def ids(self) -> list[str]:
        """All camera ids, sorted."""
        return sorted(m.decode() for m in cast(Iterable[bytes], self._r.smembers(CAMERA_IDS)))

    def all(self) -> list[Camera]:
        """Every camera, in id order, fetched in batches of 500 so 11,000 cameras are 22 round trips."""
        ids = self.ids()
        cameras: list[Camera] = []
        for start in range(0, len(ids), 500):
            chunk = ids[start : start + 500]
            raws = cast(list[bytes | None], self._r.mget([CAMERA_KEY.format(id=i) for i in chunk]))
            cameras.extend(Camera.model_validate_json(raw) for raw in raws if raw)
        return cameras
