"""Probe many cameras at once, a bounded number at a time, and store the results in batches.

Results are written every ``write_every`` probes (one transaction, one registry version step), not one by
one: a version step makes every worker reload the registry.
"""

from __future__ import annotations

import asyncio
from collections import Counter
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field

from ingest.cameras import Camera
from ingest.onvif_probe import ProbeConfig, probe_camera
from ingest.probe_result import ProbeErrorKind, ProbeResult
from ingest.registry import CameraRegistry, StreamPolicy
from ingest.secretbox import SecretKeyError

# cameras probed so far, cameras to probe
ProbeProgress = Callable[[int, int], None]
# Results stored per transaction: a worker reload per 100 probes keeps reloads rare during a big probe run.
WRITE_EVERY = 100


@dataclass(frozen=True, slots=True)
class ProbeFailure:
    """One camera that could not be probed."""

    camera_id: str
    external_id: str | None
    kind: ProbeErrorKind
    message: str


@dataclass(slots=True)
class ProbeSummary:
    """How a bulk probe went."""

    probed: int = 0
    ok: int = 0
    skipped: int = 0  # no ONVIF address, or deleted meanwhile
    failures: list[ProbeFailure] = field(default_factory=list)

    def by_kind(self) -> dict[str, int]:
        """Failures counted by kind."""
        return dict(Counter(f.kind.value for f in self.failures))


async def probe_many(
    registry: CameraRegistry,
    camera_ids: Sequence[str],
    config: ProbeConfig,
    actor: str,
    *,
    concurrency: int,
    policy: StreamPolicy = StreamPolicy.FILL,
    progress: ProbeProgress | None = None,
    write_every: int = WRITE_EVERY,
) -> ProbeSummary:
    """Probe the cameras with these ids that have an ONVIF address, ``concurrency`` at a time."""
    cameras = [c for c in await asyncio.to_thread(registry.get_many, list(camera_ids)) if c is not None]
    targets = [c for c in cameras if c.onvif_url is not None]
    summary = ProbeSummary(skipped=len(camera_ids) - len(targets))
    gate = asyncio.Semaphore(concurrency)
    pending: list[tuple[str, ProbeResult]] = []

    async def one(camera: Camera, password: str | None) -> tuple[Camera, ProbeResult]:
        assert camera.onvif_url is not None
        async with gate:
            return camera, await probe_camera(camera.onvif_url, camera.username, password, config)

    tasks = []
    for camera in targets:
        try:
            password = registry.password(camera)
        except SecretKeyError as exc:
            summary.failures.append(
                ProbeFailure(camera.id, camera.external_id, ProbeErrorKind.BAD_CREDENTIALS, str(exc))
            )
            continue
        tasks.append(asyncio.create_task(one(camera, password)))
    total = len(tasks)
    if progress is not None:
        progress(0, total)
    for done in asyncio.as_completed(tasks):
        camera, result = await done
        summary.probed += 1
        if result.ok:
            summary.ok += 1
        else:
            assert result.error is not None
            summary.failures.append(ProbeFailure(camera.id, camera.external_id, result.error, result.message or ""))
        pending.append((camera.id, result))
        if len(pending) >= write_every:
            batch, pending[:] = list(pending), []
            await asyncio.to_thread(registry.record_probes, batch, policy, actor)
        if progress is not None:
            progress(summary.probed, total)
    if pending:
        await asyncio.to_thread(registry.record_probes, list(pending), policy, actor)
    return summary
