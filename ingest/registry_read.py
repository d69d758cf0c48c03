"""The camera registry's layout in Redis and everything short of writing to it: reading cameras, probe results
and passwords, and planning what a change would make of a camera (``check_rows`` is an import's dry run).

The registry is one JSON document per camera, an id set, an external-id index, the latest probe result per
camera, and a version counter. Workers poll the version counter (one GET per second per worker) and reload
only when it moved; the API keeps the parsed registry per version and re-parses only the documents whose
bytes changed. Writing (transactions, audit, re-encryption) is :class:`ingest.registry.CameraRegistry`,
built on this class.
"""

from __future__ import annotations

import secrets
import threading
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime
from typing import cast

import redis
from pydantic import ValidationError

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

CAMERA_KEY = "sharpeyes:camera:{id}"
PROBE_KEY = "sharpeyes:camera_probe:{id}"
CAMERA_IDS = "sharpeyes:cameras"
# One key per external id (not one hash), so a transaction can WATCH exactly the ids it claims.
EXTERNAL_ID_KEY = "sharpeyes:camera_external_id:{ext}"
VERSION_KEY = "sharpeyes:registry:version"
# The fingerprint of the key camera passwords are encrypted with (see ingest.secretbox).
KEY_FINGERPRINT = "sharpeyes:registry:key_fingerprint"
# MGET chunk: 500 documents of ~1 kB are one comfortable round trip; 11,000 cameras are 22 of them.
READ_CHUNK = 500

# A planned change: (before, after); None before: created, None after: deleted.
Change = tuple[Camera | None, Camera | None]


class DuplicateExternalId(ValueError):
    """Another camera already carries this external id."""


def new_camera_id() -> str:
    """A short random id; cameras are named by people, identified by this."""
    return "cam_" + secrets.token_hex(6)


class RegistryReader:
    """Reads cameras, probe results and passwords, and plans changes without writing them. ``box`` decrypts and
    encrypts passwords; without it, cameras are read without their credentials and :meth:`password` raises
    :class:`SecretKeyError`."""

    def __init__(self, client: redis.Redis, box: SecretBox | None = None) -> None:
        self._r = client
        self._box = box
        self._snapshot: RegistrySnapshot | None = None
        self._parsed: dict[str, tuple[bytes, Camera, str]] = {}
        self._snapshot_lock = threading.Lock()
        # Per thread (the API plans from a thread pool): the key the current transaction attempt encrypts with.
        self._attempt = threading.local()

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

    # --- planning ------------------------------------------------------------------------------

    def check_rows(self, rows: Sequence[RowChange], actor: str, *, replace: bool = False) -> list[RowOutcome]:
        """What :meth:`apply_rows` would do, without writing anything (passwords are not encrypted either)."""
        return self._plan_rows(rows, actor, replace, dry=True)[0]

    def _plan_rows(
        self, rows: Sequence[RowChange], actor: str, replace: bool, dry: bool = False
    ) -> tuple[list[RowOutcome], list[Change]]:
        existing = self._targets(rows)
        wanted = sorted({e for r in rows for e in (r.external_id, r.changes.get("external_id")) if isinstance(e, str)})
        owners = dict(zip(wanted, self.ids_of_external(wanted), strict=True))
        outcomes: list[RowOutcome] = []
        changes: list[Change] = []
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
    ) -> tuple[RowOutcome, Change | None]:
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
        key = getattr(self._attempt, "key", None)
        if key is None:
            key = self._attempt.key = self._current_key(self._box)
        return self._box.encrypt(plain, key)

    def _current_key(self, box: SecretBox) -> str:
        """The fingerprint of the key passwords are encrypted with: the one the registry records (this host's
        newest, on a registry without one). Hosts keep to the recorded key until :meth:`rekey` moves it to the
        newest, so while a new key file is copied host by host, every host can read every password."""
        stored = self._r.set(KEY_FINGERPRINT, box.fingerprint, nx=True, get=True)
        current = box.fingerprint if stored is None else cast(bytes, stored).decode()
        if current not in box.fingerprints:
            raise SecretKeyError(
                f"this host's secret key ({box.fingerprint}) is not the one the registry's passwords are "
                f"encrypted with ({current}): copy the secret key file of a host that has it here and point "
                "SHARPEYES_SECRET_KEY_FILE at it"
            )
        return current

    def _check_external_ids(self, cameras: Sequence[Camera]) -> None:
        for camera in cameras:
            if camera.external_id is None:
                continue
            owner = self._r.get(EXTERNAL_ID_KEY.format(ext=camera.external_id))
            if owner is not None and cast(bytes, owner).decode() != camera.id:
                raise DuplicateExternalId(
                    f"external_id {camera.external_id!r} already belongs to camera {cast(bytes, owner).decode()}"
                )
