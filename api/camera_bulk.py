"""Bulk import and export of cameras (CSV or JSON), the installer's way in.

The import body is read raw (``curl --data-binary @cameras.csv -H 'Content-Type: text/csv'``) and capped
at ``import_max_bytes``: a larger body gets 413 before it is read, or as soon as it passes the cap.
"""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request, Response, status
from fastapi.concurrency import run_in_threadpool
from fastapi.responses import JSONResponse
from pydantic import BaseModel

from api.deps import OnboardingDep, Operator, ResourcesDep
from ingest.bulk_probe import probe_many
from ingest.camera_files import CameraFileError, FileFormat, export_csv, export_json, sniff_format
from ingest.importer import ImportReport, run_import
from ingest.registry import StreamPolicy

router = APIRouter()


class ProbeFailureView(BaseModel):
    """One camera the post-import probe could not probe."""

    camera_id: str
    external_id: str | None
    error: str
    message: str


class ProbeSummaryView(BaseModel):
    """How the post-import probe went."""

    probed: int
    ok: int
    failed: int
    by_error: dict[str, int]
    failures: list[ProbeFailureView]


class ImportReply(ImportReport):
    """The import report, and the probe summary when ``probe=true``."""

    probe: ProbeSummaryView | None = None


async def _read_capped(request: Request, limit: int) -> bytes:
    too_big = HTTPException(
        status.HTTP_413_CONTENT_TOO_LARGE,
        {
            "message": f"body: the import is larger than the limit of {limit:,} bytes (import_max_bytes): "
            "split the file, or raise SHARPEYES_IMPORT_MAX_BYTES",
            "field": "body",
            "limit": limit,
        },
    )
    declared = request.headers.get("content-length")
    if declared is not None and declared.isdigit() and int(declared) > limit:
        raise too_big
    chunks: list[bytes] = []
    size = 0
    async for chunk in request.stream():
        size += len(chunk)
        if size > limit:
            raise too_big
        chunks.append(chunk)
    return b"".join(chunks)


@router.post(
    "/import",
    response_model=ImportReply,
    openapi_extra={
        "requestBody": {
            "required": True,
            "content": {"text/csv": {"schema": {"type": "string"}}, "application/json": {"schema": {"type": "object"}}},
        }
    },
)
async def import_cameras(
    request: Request,
    who: Operator,
    res: ResourcesDep,
    ob: OnboardingDep,
    format: Annotated[FileFormat | None, Query(description="csv or json (default: from Content-Type)")] = None,
    dry_run: Annotated[bool, Query(description="Validate and report, write nothing")] = False,
    strict: Annotated[bool, Query(description="Write nothing if any row is bad")] = False,
    probe: Annotated[bool, Query(description="Then probe the imported cameras that have an ONVIF address")] = False,
) -> JSONResponse:
    """Import cameras from CSV or JSON: every row validated first, bad rows reported by line, field and reason,
    good rows upserted by external id (a re-import changes only what changed)."""
    body = await _read_capped(request, res.settings.import_max_bytes)
    fmt = format or sniff_format(body, request.headers.get("content-type"))
    try:
        result = await run_in_threadpool(
            run_import,
            ob.registry,
            body,
            fmt,
            who.name,
            batch_size=res.settings.import_batch_size,
            dry_run=dry_run,
            strict=strict,
        )
    except CameraFileError as exc:
        raise HTTPException(
            status.HTTP_422_UNPROCESSABLE_CONTENT, {"message": f"body: {exc}", "field": "body"}
        ) from None
    reply = ImportReply(**result.report.model_dump())
    if probe and result.report.written:
        never = await run_in_threadpool(ob.registry.probes, result.imported_ids)
        ids = sorted(set(result.changed_ids) | {i for i in result.imported_ids if i not in never})
        summary = await probe_many(
            ob.registry, ids, ob.probe, who.name, concurrency=res.settings.probe_concurrency, policy=StreamPolicy.FILL
        )
        failures = [
            ProbeFailureView(camera_id=f.camera_id, external_id=f.external_id, error=f.kind.value, message=f.message)
            for f in summary.failures
        ]
        reply = reply.model_copy(
            update={
                "probe": ProbeSummaryView(
                    probed=summary.probed,
                    ok=summary.ok,
                    failed=len(summary.failures),
                    by_error=summary.by_kind(),
                    failures=failures,
                )
            }
        )
    report = result.report
    nothing_good = report.errors and report.created + report.updated + report.unchanged == 0
    failed_strict = strict and report.errors
    code = status.HTTP_422_UNPROCESSABLE_CONTENT if nothing_good or failed_strict else status.HTTP_200_OK
    return JSONResponse(reply.model_dump(mode="json"), status_code=code)


@router.get("/export", response_class=Response)
def export_cameras(
    who: Operator,
    ob: OnboardingDep,
    format: Annotated[FileFormat, Query(description="csv or json")] = FileFormat.CSV,
) -> Response:
    """Every camera as an import file (no passwords): edit it and import it back."""
    cameras = ob.registry.snapshot().cameras
    if format is FileFormat.CSV:
        body, media = export_csv(cameras), "text/csv; charset=utf-8"
    else:
        body, media = export_json(cameras), "application/json"
    return Response(
        body,
        media_type=media,
        headers={"Content-Disposition": f'attachment; filename="cameras.{format.value}"', "Cache-Control": "no-store"},
    )
