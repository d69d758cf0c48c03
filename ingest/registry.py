"""The camera registry in Redis: one JSON document per camera, an id set, an external-id index, the
latest probe result per camera, and a version counter.

Workers poll the version counter (one GET per second per worker) and reload only when it moved.

Every change runs as one optimistic transaction: WATCH on the keys the change depends on (the documents
of the cameras it touches and their external-id index entries), so writers of different cameras never
conflict; the camera documents, the indexes, the audit entries and the version move together or not at
all, and a change computed from a state someone else changed meanwhile is recomputed.
"""

from __future__ import annotations

import random
import secrets
import threading
import time
from collections.abc import Callable, Iterable, Sequence
from datetime import UTC, datetime
from typing import Any, cast

import redis
from pydantic import ValidationError

from api.audit import add_audit
from ingest.cameras import Camera, CameraSpec, field_values, spec_with, stream_url_with_credentials
from ingest.probe_result import ProbeResult
from ingest.registry_types import (
    RegistrySnapshot,
    RowChange,
    RowOutcome,
    RowStatus,
    StreamPolicy,
    field_errors,
    search_text,
)
from ingest.secretbox import SecretBox, SecretKeyError

__all__ = [
    "CAMERA_IDS",
    "CAMERA_KEY",
    "EXTERNAL_ID_KEY",
    "PROBE_KEY",
    "READ_CHUNK",
    "VERSION_KEY",
    "CameraRegistry",
    "DuplicateExternalId",
    "RegistryBusy",
    "RegistrySnapshot",
    "RowChange",
    "RowOutcome",
    "RowStatus",
    "StreamPolicy",
    "field_errors",
    "new_camera_id",
]

CAMERA_KEY = "sharpeyes:camera:{id}"
PROBE_KEY = "sharpeyes:camera_probe:{id}"
CAMERA_IDS = "sharpeyes:cameras"
# One key per external id (not one hash), so a transaction can WATCH exactly the ids it claims.
EXTERNAL_ID_KEY = "sharpeyes:camera_external_id:{ext}"
VERSION_KEY = "sharpeyes:registry:version"
KEY_FINGERPRINT = "sharpeyes:registry:key_fingerprint"
# MGET chunk: 500 documents of ~1 kB are one comfortable round trip; 11,000 cameras are 22 of them.
READ_CHUNK = 500
# Optimistic transactions retry when another writer got in first; writes are short, so a handful of
# attempts with a little jitter gets through even a busy import running beside operators' edits.
WATCH_ATTEMPTS = 20


class DuplicateExternalId(ValueError):
    """Another camera already carries this external id."""


class RegistryBusy(RuntimeError):
    """The registry kept changing under a transaction: try again."""


def new_camera_id() -> str:
    """A short random id; cameras are named by people, identified by this."""
    return "cam_" + secrets.token_hex(6)


class CameraRegistry:
    """Create, read, update and delete cameras. Every write bumps the registry version and is audited.

    ``box`` encrypts and decrypts camera passwords; without it, writing a password raises
    :class:`SecretKeyError` and cameras are read without their credentials.
    """

    def __init__(self, client: redis.Redis, box: SecretBox | None = None) -> None:
        self._r = client
        self._box = box
        self._snapshot: RegistrySnapshot | None = None
        self._parsed: dict[str, tuple[bytes, Camera, str]] = {}
        self._key_checked = False  # the key fingerprint is checked once per process, at the first password
        self._snapshot_lock = threading.Lock()

    # --- reading -------------------------------------------------------------------------------

    def version(self) -> int:
        """The registry version: it changes whenever any camera does."""
        raw = self._r.get(VERSION_KEY)
        return int(cast(bytes, raw)) if raw else 0

    def get(self, camera_id: str) -> Camera | None:
        """One camera, or None."""
        raw = self._r.get(CAMERA_KEY.format(id=camera_id))
        return Camera.model_validate_json(cast(bytes, raw)) if raw else None

    def get_many(self, camera_ids: Sequence[str]) -> list[Camera | None]:
        """The cameras with these ids, in order; None where there is none."""
        out: list[Camera | None] = []
        for start in range(0, len(camera_ids), READ_CHUNK):
            chunk = camera_ids[start : start + READ_CHUNK]
            raws = cast(list[bytes | None], self._r.mget([CAMERA_KEY.format(id=i) for i in chunk]))
            out.extend(self._parse(cid, raw) if raw else None for cid, raw in zip(chunk, raws, strict=True))
        return out

    def _parse(self, camera_id: str, raw: bytes) -> Camera:
        """The camera stored as ``raw``, reusing the parse of identical bytes seen before (zone checks are slow)."""
        known = self._parsed.get(camera_id)
        if known is not None and known[0] == raw:
            return known[1]
        camera = Camera.model_validate_json(raw)
        self._parsed[camera_id] = (raw, camera, search_text(camera))
        return camera

    def ids_of_external(self, external_ids: Sequence[str]) -> list[str | None]:
        """The camera ids carrying these external ids, in order; None where there is none."""
        out: list[str | None] = []
        for start in range(0, len(external_ids), READ_CHUNK):
            chunk = list(external_ids[start : start + READ_CHUNK])
            keys = [EXTERNAL_ID_KEY.format(ext=e) for e in chunk]
            raws = cast(list[bytes | None], self._r.mget(keys)) if chunk else []
            out.extend(raw.decode() if raw else None for raw in raws)
        return out

    def by_external_id(self, external_id: str) -> Camera | None:
        """The camera carrying ``external_id`` (the installer's id), or None."""
        owner = self._r.get(EXTERNAL_ID_KEY.format(ext=external_id))
        return self.get(cast(bytes, owner).decode()) if owner else None

    def ids(self) -> list[str]:
        """All camera ids, sorted."""
        return sorted(m.decode() for m in cast(Iterable[bytes], self._r.smembers(CAMERA_IDS)))

    def all(self) -> list[Camera]:
        """Every camera, in id order (from :meth:`snapshot`: one GET when nothing changed)."""
        return list(self.snapshot().cameras)

    def snapshot(self) -> RegistrySnapshot:
        """Every camera, reloaded only when the registry version moved (one GET otherwise).

        A reload fetches every document (22 round trips for 11,000 cameras) but parses only those whose
        bytes changed: parsing is what costs (~60 us a camera, most of it zone validation).
        """
        version = self.version()
        with self._snapshot_lock:
            current = self._snapshot
            if current is not None and current.version == version:
                return current
            ids = self.ids()
            parsed: dict[str, tuple[bytes, Camera, str]] = {}
            for start in range(0, len(ids), READ_CHUNK):
                chunk = ids[start : start + READ_CHUNK]
                raws = cast(list[bytes | None], self._r.mget([CAMERA_KEY.format(id=i) for i in chunk]))
                for cid, raw in zip(chunk, raws, strict=True):
                    if raw is None:
                        continue
                    self._parse(cid, raw)
                    parsed[cid] = self._parsed[cid]
            self._parsed = parsed
            cameras = tuple(camera for _, camera, _ in parsed.values())
            by_district: dict[str, list[int]] = {}
            by_tag: dict[str, list[int]] = {}
            for position, camera in enumerate(cameras):
                if camera.location.district:
                    by_district.setdefault(camera.location.district.casefold(), []).append(position)
                for tag in camera.tags:
                    by_tag.setdefault(tag, []).append(position)
            current = RegistrySnapshot(
                version,
                cameras,
                {c.id: c for c in cameras},
                tuple(parsed),
                tuple(text for _, _, text in parsed.values()),
                {k: tuple(v) for k, v in by_district.items()},
                {k: tuple(v) for k, v in by_tag.items()},
            )
            self._snapshot = current
            return current

    def probe(self, camera_id: str) -> ProbeResult | None:
        """The latest probe result of a camera."""
        raw = self._r.get(PROBE_KEY.format(id=camera_id))
        return ProbeResult.model_validate_json(cast(bytes, raw)) if raw else None

    def probes(self, camera_ids: Sequence[str]) -> dict[str, ProbeResult]:
        """Latest probe results of these cameras; cameras never probed are absent."""
        out: dict[str, ProbeResult] = {}
        for start in range(0, len(camera_ids), READ_CHUNK):
            chunk = camera_ids[start : start + READ_CHUNK]
            raws = cast(list[bytes | None], self._r.mget([PROBE_KEY.format(id=i) for i in chunk]))
            out.update((cid, ProbeResult.model_validate_json(raw)) for cid, raw in zip(chunk, raws, strict=True) if raw)
        return out

    def password(self, camera: Camera) -> str | None:
        """The camera's password in plain text (for the reader and the probe only; never log it)."""
        if camera.password_enc is None:
            return None
        if self._box is None:
            raise SecretKeyError("this process has no secret key, so it cannot read camera passwords")
        return self._box.decrypt(camera.password_enc)

    def reader_url(self, camera: Camera) -> str | None:
        """The detection stream URL with the camera's credentials in it, for the worker; None without a stream."""
        return stream_url_with_credentials(camera.stream_url, camera.username, self.password(camera))

    # --- writing -------------------------------------------------------------------------------

    def create(self, spec: CameraSpec, actor: str) -> Camera:
        """Register a new camera."""

        def plan() -> list[tuple[Camera | None, Camera | None]]:
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

        def plan() -> list[tuple[Camera | None, Camera | None]]:
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

        def plan() -> list[tuple[Camera | None, Camera | None]]:
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

        def plan() -> list[tuple[Camera | None, Camera | None]]:
            outcomes.clear()
            planned, changes = self._plan_rows(rows, actor, replace)
            outcomes.extend(planned)
            return changes

        self._transact(plan, actor)
        return list(outcomes)

    def check_rows(self, rows: Sequence[RowChange], actor: str, *, replace: bool = False) -> list[RowOutcome]:
        """What :meth:`apply_rows` would do, without writing anything (passwords are not encrypted either)."""
        return self._plan_rows(rows, actor, replace, dry=True)[0]

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

        def plan() -> list[tuple[Camera | None, Camera | None]]:
            stored.clear()
            cameras = self.get_many([cid for cid, _ in results])
            changes: list[tuple[Camera | None, Camera | None]] = []
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

    # --- internals -----------------------------------------------------------------------------

    def _plan_rows(
        self, rows: Sequence[RowChange], actor: str, replace: bool, dry: bool = False
    ) -> tuple[list[RowOutcome], list[tuple[Camera | None, Camera | None]]]:
        existing = self._targets(rows)
        wanted = sorted({e for r in rows for e in (r.external_id, r.changes.get("external_id")) if isinstance(e, str)})
        owners = dict(zip(wanted, self.ids_of_external(wanted), strict=True))
        outcomes: list[RowOutcome] = []
        changes: list[tuple[Camera | None, Camera | None]] = []
        for row, before in zip(rows, existing, strict=True):
            outcome, change = self._plan_row(row, before, actor, replace, owners, dry)
            outcomes.append(outcome)
            if change is not None:
                changes.append(change)
        return outcomes, changes

    def _targets(self, rows: Sequence[RowChange]) -> list[Camera | None]:
        by_ext = [r.external_id for r in rows if r.camera_id is None and r.external_id is not None]
        ext_ids = dict(zip(by_ext, self.ids_of_external(by_ext), strict=True))
        target_ids = [r.camera_id or ext_ids.get(r.external_id or "") for r in rows]
        wanted = [t for t in target_ids if t is not None]
        found = dict(zip(wanted, self.get_many(wanted), strict=True))
        return [found.get(t) if t is not None else None for t in target_ids]

    def _plan_row(
        self,
        row: RowChange,
        before: Camera | None,
        actor: str,
        replace: bool,
        owners: dict[str, str | None],
        dry: bool = False,
    ) -> tuple[RowOutcome, tuple[Camera | None, Camera | None] | None]:
        """One row's outcome and change; ``owners`` maps external ids to the cameras holding them (updated)."""
        if row.camera_id is not None and before is None:
            return RowOutcome(
                row.line, RowStatus.FAILED, field="id", reason=f"no camera with id {row.camera_id!r}"
            ), None
        try:
            spec = spec_with(None if replace else before, row.changes)
        except ValidationError as exc:
            field, reason = field_errors(exc)[0]
            return RowOutcome(row.line, RowStatus.FAILED, field=field, reason=reason), None
        camera_id = before.id if before is not None else new_camera_id()
        try:
            after = self._build(spec, before, camera_id, actor, dry)
        except SecretKeyError as exc:
            return RowOutcome(row.line, RowStatus.FAILED, field="password", reason=str(exc)), None
        ext = after.external_id
        if ext is not None:
            owner = owners.get(ext)
            if owner is not None and owner != camera_id:
                reason = f"{ext!r} already belongs to camera {owner}"
                return RowOutcome(row.line, RowStatus.FAILED, field="external_id", reason=reason), None
            owners[ext] = camera_id
        if after is before:
            return RowOutcome(row.line, RowStatus.UNCHANGED, camera=before), None
        status = RowStatus.CREATED if before is None else RowStatus.UPDATED
        return RowOutcome(row.line, status, camera=after), (before, after)

    def _build(self, spec: CameraSpec, before: Camera | None, camera_id: str, actor: str, dry: bool = False) -> Camera:
        """The camera ``spec`` describes, or ``before`` itself when that changes nothing (``dry``: a placeholder
        stands in for the encrypted password)."""
        password_enc = before.password_enc if before is not None else None
        password_at = before.password_updated_at if before is not None else None
        if spec.password is not None:
            plain = spec.password.get_secret_value()
            if not plain:
                password_enc, password_at = None, None
            elif before is None or before.password_enc is None or self._plain(before) != plain:
                password_enc = "(not encrypted: dry run)" if dry else self._encrypt(plain)
                password_at = datetime.now(UTC)
        fields = field_values(spec)
        if before is not None and before.fields() == fields and password_enc == before.password_enc:
            return before
        now = datetime.now(UTC)
        # model_construct: ``fields`` come from a validated spec; validating them again costs ~60 us a camera.
        return Camera.model_construct(
            **fields,
            id=camera_id,
            created_at=before.created_at if before is not None else now,
            created_by=before.created_by if before is not None else actor,
            updated_at=now,
            updated_by=actor,
            password_enc=password_enc,
            password_updated_at=password_at,
        )

    def _with_streams(self, camera: Camera, result: ProbeResult, policy: StreamPolicy, actor: str) -> Camera:
        if not result.ok or policy is StreamPolicy.KEEP:
            return camera
        detection, main = result.detection_stream, result.main_stream
        stream = detection.uri if detection else None
        main_uri = main.uri if main else None
        if policy is StreamPolicy.FILL:
            stream = camera.stream_url or stream
            main_uri = camera.main_stream_url or main_uri
        if (stream, main_uri) == (camera.stream_url, camera.main_stream_url):
            return camera
        return camera.model_copy(
            update={
                "stream_url": stream,
                "main_stream_url": main_uri,
                "updated_at": datetime.now(UTC),
                "updated_by": actor,
            }
        )

    def _plain(self, camera: Camera) -> str | None:
        try:
            return self.password(camera)
        except SecretKeyError:
            return None  # unreadable: treat as different, so the new password is stored

    def _encrypt(self, plain: str) -> str:
        if self._box is None:
            raise SecretKeyError("this process has no secret key, so it cannot store camera passwords")
        if not self._key_checked:
            self._check_key(self._box)
            self._key_checked = True
        return self._box.encrypt(plain)

    def _check_key(self, box: SecretBox) -> None:
        stored = self._r.set(KEY_FINGERPRINT, box.fingerprint, nx=True, get=True)
        if stored is not None and cast(bytes, stored).decode() != box.fingerprint:
            raise SecretKeyError(
                f"this host's secret key ({box.fingerprint}) is not the one the registry's passwords are "
                f"encrypted with ({cast(bytes, stored).decode()}): copy that host's secret key file here and "
                "point SHARPEYES_SECRET_KEY_FILE at it"
            )

    def _check_external_ids(self, cameras: Sequence[Camera]) -> None:
        for camera in cameras:
            if camera.external_id is None:
                continue
            owner = self._r.get(EXTERNAL_ID_KEY.format(ext=camera.external_id))
            if owner is not None and cast(bytes, owner).decode() != camera.id:
                raise DuplicateExternalId(
                    f"external_id {camera.external_id!r} already belongs to camera {cast(bytes, owner).decode()}"
                )

    def _transact(
        self,
        plan: Callable[[], list[tuple[Camera | None, Camera | None]]],
        actor: str,
        extra: Callable[[redis.client.Pipeline], None] | None = None,
    ) -> list[tuple[Camera | None, Camera | None]]:
        watched: set[str] = set()
        for attempt in range(WATCH_ATTEMPTS):
            with self._r.pipeline(transaction=True) as pipe:
                try:
                    if watched:
                        pipe.watch(*watched)  # type: ignore[no-untyped-call]
                    changes = plan()
                    needed = _dependencies(changes)
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
                        _queue_change(pipe, before, after, actor)
                    if extra is not None:
                        extra(pipe)
                    if changes:
                        pipe.incr(VERSION_KEY)
                    pipe.execute()
                    return changes
                except redis.WatchError:
                    time.sleep(random.uniform(0, 0.005 * (attempt + 1)))
        raise RegistryBusy(f"the registry changed {WATCH_ATTEMPTS} times during one write: try again")


def _dependencies(changes: list[tuple[Camera | None, Camera | None]]) -> set[str]:
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
