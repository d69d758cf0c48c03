"""The camera registry's write side: create, update, delete, import rows, record probes, re-encrypt passwords.

Every change runs as one optimistic transaction: WATCH on the keys the change depends on (the documents
of the cameras it touches and their external-id index entries, and the recorded key fingerprint when it
encrypts a password), so writers of different cameras never conflict; the camera documents, the indexes,
the audit entries and the version move together or not at all, and a change computed from a state someone
else changed meanwhile is recomputed. The Redis layout and the read side are in :mod:`ingest.registry_read`.
"""

from __future__ import annotations

import random
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, cast

import redis

from api.audit import add_audit
from ingest.cameras import Camera, CameraSpec, field_values
from ingest.probe_result import ProbeResult
from ingest.registry_read import (
    CAMERA_IDS,
    CAMERA_KEY,
    EXTERNAL_ID_KEY,
    KEY_FINGERPRINT,
    PROBE_KEY,
    READ_CHUNK,
    VERSION_KEY,
    Change,
    DuplicateExternalId,
    RegistryReader,
    new_camera_id,
)
from ingest.registry_types import RegistrySnapshot, RowChange, RowOutcome, RowStatus, StreamPolicy, field_errors
from ingest.secretbox import SecretBox, SecretKeyError

__all__ = [
    "CAMERA_IDS",
    "CAMERA_KEY",
    "EXTERNAL_ID_KEY",
    "KEY_FINGERPRINT",
    "PROBE_KEY",
    "READ_CHUNK",
    "VERSION_KEY",
    "CameraRegistry",
    "DuplicateExternalId",
    "RegistryBusy",
    "RegistryReader",
    "RegistrySnapshot",
    "RekeySummary",
    "RowChange",
    "RowOutcome",
    "RowStatus",
    "StreamPolicy",
    "field_errors",
    "new_camera_id",
]

# Optimistic transactions retry when another writer got in first; writes are short, so a handful of
# attempts with a little jitter gets through even a busy import running beside operators' edits.
WATCH_ATTEMPTS = 20


class RegistryBusy(RuntimeError):
    """The registry kept changing under a transaction: try again."""


@dataclass(frozen=True, slots=True)
class RekeySummary:
    """What :meth:`CameraRegistry.rekey` did: the key passwords are on now and the one before; how many passwords
    it re-encrypted, how many were on the key already, and the cameras whose password no key of this host reads."""

    key: str
    previous: str | None
    rekeyed: int
    current: int
    failed: tuple[str, ...]


class CameraRegistry(RegistryReader):
    """Create, read, update and delete cameras. Every write bumps the registry version and is audited.

    ``box`` encrypts and decrypts camera passwords; without it, writing a password raises
    :class:`SecretKeyError` and cameras are read without their credentials.
    """

    # --- writing -------------------------------------------------------------------------------

    def create(self, spec: CameraSpec, actor: str) -> Camera:
        """Register a new camera."""

        def plan() -> list[Change]:
            camera = self._build(spec, None, new_camera_id(), actor)
            self._check_external_ids([camera])
            return [(None, camera)]

        [(_, after)] = self._transact(plan, actor)
        assert after is not None
        return after

    def update(self, camera_id: str, spec: CameraSpec, actor: str) -> tuple[Camera, Camera] | None:
        """Replace a camera's fields (the password is kept when ``spec`` has none); returns (before, after),
        after being ``before`` itself when nothing changed, or None if there is no such camera."""
        found: list[Camera] = []

        def plan() -> list[Change]:
            found.clear()
            before = self.get(camera_id)
            if before is None:
                return []
            found.append(before)
            after = self._build(spec, before, camera_id, actor)
            if after is before:
                return []
            self._check_external_ids([after])
            return [(before, after)]

        changes = self._transact(plan, actor)
        if not found:
            return None
        if not changes:
            return found[0], found[0]
        before, after = changes[0]
        assert before is not None and after is not None
        return before, after

    def delete(self, camera_id: str, actor: str = "system") -> Camera | None:
        """Remove a camera; returns what it was, or None if there was no such camera."""

        def plan() -> list[Change]:
            before = self.get(camera_id)
            return [] if before is None else [(before, None)]

        changes = self._transact(plan, actor)
        return changes[0][0] if changes else None

    def upsert(self, spec: CameraSpec, actor: str) -> tuple[Camera | None, Camera]:
        """Create or replace the camera with ``spec.external_id``; returns (before, after)."""
        if spec.external_id is None:
            raise ValueError("upsert needs an external_id")
        changes: dict[str, Any] = {**field_values(spec), "password": spec.password}
        [outcome] = self.apply_rows([RowChange(0, None, spec.external_id, changes)], actor, replace=True)
        if outcome.status is RowStatus.FAILED:
            if outcome.field == "external_id":
                raise DuplicateExternalId(outcome.reason)
            raise ValueError(f"{outcome.field}: {outcome.reason}")
        assert outcome.camera is not None
        before = None if outcome.status is RowStatus.CREATED else outcome.camera
        return before, outcome.camera

    def apply_rows(self, rows: Sequence[RowChange], actor: str, *, replace: bool = False) -> list[RowOutcome]:
        """Create or update the cameras of ``rows`` in one transaction; rows that fail validation are reported
        (field and reason) and skipped. ``replace`` sets all fields from the row instead of merging."""
        outcomes: list[RowOutcome] = []

        def plan() -> list[Change]:
            outcomes.clear()
            planned, changes = self._plan_rows(rows, actor, replace)
            outcomes.extend(planned)
            return changes

        self._transact(plan, actor)
        return list(outcomes)

    def note(self, actor: str, action: str, target: str, after: Any = None) -> None:
        """Write an audit entry about the registry that is not a camera change (e.g. an import's summary)."""
        add_audit(self._r, actor, action, target, after=after)

    def record_probes(
        self, results: Sequence[tuple[str, ProbeResult]], policy: StreamPolicy, actor: str
    ) -> list[Camera | None]:
        """Store probe results and, per ``policy``, the streams they found; returns the cameras as stored
        (None for cameras deleted meanwhile). The stream change is audited; the result itself is kept beside
        the camera, so refreshing it does not restart the camera's worker."""
        stored: list[Camera | None] = []

        def plan() -> list[Change]:
            stored.clear()
            cameras = self.get_many([cid for cid, _ in results])
            changes: list[Change] = []
            for (_, result), before in zip(results, cameras, strict=True):
                after = before
                if before is not None:
                    after = self._with_streams(before, result, policy, actor)
                    if after is not before:
                        changes.append((before, after))
                stored.append(after)
            return changes

        def extra(pipe: redis.client.Pipeline) -> None:
            for (cid, result), camera in zip(results, stored, strict=True):
                if camera is not None:
                    pipe.set(PROBE_KEY.format(id=cid), result.model_dump_json())
                    add_audit(pipe, actor, "camera.probe", cid, after=_probe_summary(result))

        self._transact(plan, actor, extra=extra)
        return list(stored)

    def rekey(self, actor: str, progress: Callable[[str, int, int], None] | None = None) -> RekeySummary:
        """Re-encrypt every stored password with this host's newest key, and record that key as the one passwords
        use. Idempotent: passwords already on it are left alone. Each re-encrypted camera is audited
        (``camera.rekey``), and so is the run (``registry.rekey``). ``updated_at`` is kept: the password did not
        change, so workers do not restart the cameras."""
        box = self._box
        if box is None:
            raise SecretKeyError("this process has no secret key, so it cannot re-encrypt camera passwords")
        stored = self._r.get(KEY_FINGERPRINT)
        previous = cast(bytes, stored).decode() if stored else None
        if previous is not None and previous not in box.fingerprints:
            raise SecretKeyError(
                f"the registry's passwords are encrypted with the key {previous}, which this host's key file "
                f"lacks (it has {', '.join(box.fingerprints)}): put that key on a line after the newest one"
            )
        # Recorded first: from now on writers encrypt with the newest key (their transactions WATCH this key, so
        # one planned with the old key is redone), and the scan below finds every password left on an older one.
        self._r.set(KEY_FINGERPRINT, box.fingerprint)
        ids = self.ids()
        rekeyed, current, failed = 0, 0, []
        for start in range(0, len(ids), READ_CHUNK):
            found, changed = self._rekey_chunk(box, ids[start : start + READ_CHUNK], actor)
            rekeyed += changed
            current += sum(1 for key in found.values() if key == box.fingerprint)
            failed += [cid for cid, key in found.items() if key is None]
            if progress is not None:
                progress("rekeying", min(start + READ_CHUNK, len(ids)), len(ids))
        summary = RekeySummary(box.fingerprint, previous, rekeyed, current, tuple(failed))
        counts = {"rekeyed": rekeyed, "current": current, "failed": len(failed)}
        self.note(actor, "registry.rekey", box.fingerprint, after={"previous": previous, **counts})
        return summary

    # --- internals -----------------------------------------------------------------------------

    def _rekey_chunk(self, box: SecretBox, ids: Sequence[str], actor: str) -> tuple[dict[str, str | None], int]:
        """Re-encrypt the passwords of ``ids`` not on the newest key in one transaction; returns the key each
        password was found on (None: none of this host's) and how many were re-encrypted."""
        found: dict[str, str | None] = {}

        def plan() -> list[Change]:
            found.clear()
            changes: list[Change] = []
            for camera in self.get_many(ids):
                if camera is None or camera.password_enc is None:
                    continue
                key = found[camera.id] = box.key_of(camera.password_enc)
                if key is not None and key != box.fingerprint:
                    enc = box.encrypt(box.decrypt(camera.password_enc))
                    changes.append((camera, camera.model_copy(update={"password_enc": enc})))
            return changes

        def queue(pipe: redis.client.Pipeline, before: Camera | None, after: Camera | None, who: str) -> None:
            assert before is not None and after is not None
            pipe.set(CAMERA_KEY.format(id=after.id), after.model_dump_json())
            keys = {"before": {"key": found[before.id]}, "after": {"key": box.fingerprint}}
            add_audit(pipe, who, "camera.rekey", after.id, **keys)

        return found, len(self._transact(plan, actor, queue=queue))

    def _transact(
        self,
        plan: Callable[[], list[Change]],
        actor: str,
        extra: Callable[[redis.client.Pipeline], None] | None = None,
        queue: Callable[[redis.client.Pipeline, Camera | None, Camera | None, str], None] | None = None,
    ) -> list[Change]:
        watched: set[str] = set()
        try:
            for attempt in range(WATCH_ATTEMPTS):
                with self._r.pipeline(transaction=True) as pipe:
                    try:
                        if watched:
                            pipe.watch(*watched)  # type: ignore[no-untyped-call]
                        self._attempt.key = None  # each plan reads the recorded key afresh when it encrypts
                        changes = plan()
                        needed = _dependencies(changes)
                        if self._attempt.key is not None:
                            needed.add(KEY_FINGERPRINT)  # a rekey meanwhile must make this plan run again
                        if not needed <= watched:
                            # The plan depends on keys not yet watched: watch them too and plan again.
                            watched |= needed
                            pipe.reset()
                            continue
                        if not changes and extra is None:
                            pipe.unwatch()
                            return changes
                        pipe.multi()
                        for before, after in changes:
                            (queue or _queue_change)(pipe, before, after, actor)
                        if extra is not None:
                            extra(pipe)
                        if changes:
                            pipe.incr(VERSION_KEY)
                        pipe.execute()
                        return changes
                    except redis.WatchError:
                        time.sleep(random.uniform(0, 0.005 * (attempt + 1)))
        finally:
            self._attempt.key = None
        raise RegistryBusy(f"the registry changed {WATCH_ATTEMPTS} times during one write: try again")


def _dependencies(changes: list[Change]) -> set[str]:
    """The keys a planned change read: documents of existing cameras, and every external id it claims or frees.

    A new camera's own document is not one: its id is fresh, so nobody else can have written it.
    """
    keys: set[str] = set()
    for before, after in changes:
        if before is not None:
            keys.add(CAMERA_KEY.format(id=before.id))
        for camera in (before, after):
            if camera is not None and camera.external_id:
                keys.add(EXTERNAL_ID_KEY.format(ext=camera.external_id))
    return keys


def _queue_change(pipe: redis.client.Pipeline, before: Camera | None, after: Camera | None, actor: str) -> None:
    if after is None:
        assert before is not None
        pipe.delete(CAMERA_KEY.format(id=before.id), PROBE_KEY.format(id=before.id))
        pipe.srem(CAMERA_IDS, before.id)
        if before.external_id:
            pipe.delete(EXTERNAL_ID_KEY.format(ext=before.external_id))
        add_audit(pipe, actor, "camera.delete", before.id, before=before.public())
        return
    pipe.set(CAMERA_KEY.format(id=after.id), after.model_dump_json())
    pipe.sadd(CAMERA_IDS, after.id)
    if before is not None and before.external_id and before.external_id != after.external_id:
        pipe.delete(EXTERNAL_ID_KEY.format(ext=before.external_id))
    if after.external_id is not None:
        pipe.set(EXTERNAL_ID_KEY.format(ext=after.external_id), after.id)
    action = "camera.create" if before is None else "camera.update"
    add_audit(pipe, actor, action, after.id, before=before.public() if before else None, after=after.public())


def _probe_summary(result: ProbeResult) -> dict[str, Any]:
    summary: dict[str, Any] = {"ok": result.ok, "error": result.error, "message": result.message}
    if result.ok:
        summary.update(
            manufacturer=result.manufacturer,
            model=result.model,
            detection=result.detection_profile,
            main=result.main_profile,
            clock_skew_s=result.clock_skew_s,
        )
    return summary
