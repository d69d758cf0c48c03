"""Bulk import: every row validated first, then the valid ones upserted in batches, one transaction each.

A row is matched to a camera by ``id`` when it has one, else by ``external_id`` (the installer's id); a
row whose external id is new creates a camera. A row that changes nothing writes nothing, so importing the
same file twice changes nothing the second time. With ``strict``, one bad row stops the whole import
before anything is written; otherwise the bad rows are reported and the good ones imported.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field

from pydantic import BaseModel, ConfigDict, Field

from ingest.camera_files import CSV_COLUMNS, FileFormat, FileRow, RowError, read_rows
from ingest.registry import CameraRegistry, RowChange, RowStatus

# phase ("validating" | "writing"), rows done, rows in total
Progress = Callable[[str, int, int], None]


class RowErrorView(BaseModel):
    """One bad row, as the API reports it."""

    model_config = ConfigDict(frozen=True)

    line: int
    external_id: str | None
    field: str
    reason: str


class ImportReport(BaseModel):
    """What an import did, or would do (``dry_run``), and every bad row."""

    model_config = ConfigDict(frozen=True)

    format: FileFormat
    rows: int = Field(description="Rows in the file (blank lines not counted)")
    created: int
    updated: int
    unchanged: int
    failed: int
    dry_run: bool
    written: bool = Field(description="False when nothing was written: dry run, strict with errors, or no rows")
    errors: list[RowErrorView]


@dataclass(slots=True)
class ImportResult:
    """The report, plus the ids of the cameras created or updated (for probing them afterwards)."""

    report: ImportReport
    changed_ids: list[str] = field(default_factory=list)
    imported_ids: list[str] = field(default_factory=list)


def run_import(
    registry: CameraRegistry,
    data: bytes,
    fmt: FileFormat,
    actor: str,
    *,
    batch_size: int = 500,
    dry_run: bool = False,
    strict: bool = False,
    progress: Progress | None = None,
) -> ImportResult:
    """Validate every row of ``data``, then (unless ``dry_run``, or ``strict`` with errors) upsert the valid
    ones. Raises ``CameraFileError`` for problems with the file as a whole, before anything is written."""
    rows, errors = read_rows(data, fmt)
    total = len(rows) + len(errors)
    changes = [RowChange(r.line, r.camera_id, r.external_id, r.changes) for r in rows]
    by_line = {r.line: r for r in rows}
    counts = {status: 0 for status in RowStatus}
    valid: list[RowChange] = []
    for start in range(0, len(changes), batch_size):
        batch = changes[start : start + batch_size]
        for change, outcome in zip(batch, registry.check_rows(batch, actor), strict=True):
            if outcome.status is RowStatus.FAILED:
                errors.append(_row_error(by_line[change.line], outcome.field or "camera", outcome.reason or "", fmt))
            else:
                counts[outcome.status] += 1
                valid.append(change)
        if progress is not None:
            progress("validating", min(start + batch_size, len(changes)), len(changes))
    write = bool(valid) and not dry_run and not (strict and errors)
    result = ImportResult(_report(fmt, total, counts, errors, dry_run, written=False))
    if not write:
        return result
    counts = {status: 0 for status in RowStatus}
    for start in range(0, len(valid), batch_size):
        batch = valid[start : start + batch_size]
        for change, outcome in zip(batch, registry.apply_rows(batch, actor), strict=True):
            counts[outcome.status] += 1
            if outcome.status is RowStatus.FAILED:
                # The registry changed between validation and writing (another operator got there first).
                errors.append(_row_error(by_line[change.line], outcome.field or "camera", outcome.reason or "", fmt))
                continue
            assert outcome.camera is not None
            result.imported_ids.append(outcome.camera.id)
            if outcome.status is not RowStatus.UNCHANGED:
                result.changed_ids.append(outcome.camera.id)
        if progress is not None:
            progress("writing", min(start + batch_size, len(valid)), len(valid))
    result.report = _report(fmt, total, counts, errors, dry_run, written=True)
    registry.note(
        actor,
        "camera.import",
        f"{fmt.value} file, {total} rows",
        after=result.report.model_dump(mode="json", exclude={"errors"}) | {"errors": len(errors)},
    )
    return result


def _report(
    fmt: FileFormat, total: int, counts: dict[RowStatus, int], errors: list[RowError], dry_run: bool, written: bool
) -> ImportReport:
    errors.sort(key=lambda e: (e.line, e.field))
    return ImportReport(
        format=fmt,
        rows=total,
        created=counts[RowStatus.CREATED],
        updated=counts[RowStatus.UPDATED],
        unchanged=counts[RowStatus.UNCHANGED],
        failed=len({e.line for e in errors}),
        dry_run=dry_run,
        written=written,
        errors=[RowErrorView(line=e.line, external_id=e.external_id, field=e.field, reason=e.reason) for e in errors],
    )


def _row_error(row: FileRow, field: str, reason: str, fmt: FileFormat) -> RowError:
    """The error with its field named as the file names it (a CSV column, or the JSON path)."""
    if fmt is FileFormat.CSV:
        head = field.split(".", 1)
        if head[0] == "location" and len(head) == 2 and head[1] in CSV_COLUMNS:
            field = head[1]
        elif field == "location":
            field = "lat"  # a new camera without a position: lat (and lon) are what is missing
    return RowError(row.line, field, reason, row.external_id)
