"""Camera lists as files: CSV (an installer's spreadsheet) and JSON (the API's shape), read and written.

Reading turns each row into the fields it sets, with its line number. A CSV cell left empty, or a JSON
key left out, leaves that field as it is (so an export, which carries no passwords, imports back without
touching them); in JSON, ``null`` clears an optional field. File-level problems (not UTF-8, malformed
JSON, unknown columns) raise :class:`CameraFileError` and nothing is imported.
"""

from __future__ import annotations

import csv
import io
import json
import re
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from enum import StrEnum
from typing import Any

from ingest.cameras import Camera, CameraFields, CameraSpec

CSV_COLUMNS = (
    "id",
    "external_id",
    "name",
    "lat",
    "lon",
    "address",
    "district",
    "grid_cell",
    "stream_url",
    "main_stream_url",
    "onvif_url",
    "username",
    "password",
    "tags",
    "enabled",
    "zones",
    "schedule",
)
LOCATION_COLUMNS = ("lat", "lon", "address", "district", "grid_cell")
JSON_KEYS = frozenset({"id", *CameraSpec.model_fields})
_FIELDS = set(CameraFields.model_fields)
_TAG_SPLIT = re.compile(r"[;,|]")
_TRUE = frozenset({"true", "yes", "y", "1", "on"})
_FALSE = frozenset({"false", "no", "n", "0", "off"})


class FileFormat(StrEnum):
    """The formats imports read and exports write."""

    CSV = "csv"
    JSON = "json"


class CameraFileError(ValueError):
    """The file as a whole cannot be read; the message says where and why."""


@dataclass(frozen=True, slots=True)
class RowError:
    """One bad row: its line, the installer's id if it has one, the field, and why."""

    line: int
    field: str
    reason: str
    external_id: str | None = None

    def __str__(self) -> str:
        who = f" (external_id {self.external_id!r})" if self.external_id else ""
        return f"line {self.line}{who}: {self.field}: {self.reason}"


@dataclass(frozen=True, slots=True)
class FileRow:
    """One readable row: the camera it targets (by id, else by external id) and the fields it sets."""

    line: int
    camera_id: str | None
    external_id: str | None
    changes: dict[str, Any]


def sniff_format(data: bytes, content_type: str | None = None) -> FileFormat:
    """JSON or CSV, from the content type when it says, else from the first character."""
    kind = (content_type or "").split(";")[0].strip().lower()
    if kind in ("application/json", "text/json"):
        return FileFormat.JSON
    if kind in ("text/csv", "application/csv"):
        return FileFormat.CSV
    head = data.lstrip(b"\xef\xbb\xbf \t\r\n")[:1]
    return FileFormat.JSON if head in (b"[", b"{") else FileFormat.CSV


def decode_text(data: bytes) -> str:
    """The file as text: UTF-8, with or without the byte-order mark spreadsheets write."""
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as exc:
        line = data[: exc.start].count(b"\n") + 1
        raise CameraFileError(
            f"the file is not UTF-8 (line {line}, byte {exc.start}): save it as 'CSV UTF-8' or UTF-8 JSON"
        ) from None


def read_rows(data: bytes, fmt: FileFormat) -> tuple[list[FileRow], list[RowError]]:
    """Every row of the file, and the rows that could not even be read."""
    text = decode_text(data)
    rows = _read_csv(text) if fmt is FileFormat.CSV else _read_json(text)
    good: list[FileRow] = []
    bad: list[RowError] = []
    for item in rows:
        if isinstance(item, FileRow):
            good.append(item)
        else:
            bad.append(item)
    bad.extend(_duplicates(good))
    failed = {e.line for e in bad}
    return [r for r in good if r.line not in failed], sorted(bad, key=lambda e: e.line)


def _duplicates(rows: list[FileRow]) -> list[RowError]:
    errors: list[RowError] = []
    for field in ("external_id", "camera_id"):
        lines: dict[str, list[int]] = {}
        for row in rows:
            key = getattr(row, field)
            if key is not None:
                lines.setdefault(key, []).append(row.line)
        name = "id" if field == "camera_id" else field
        for key, at in lines.items():
            if len(at) > 1:
                where = ", ".join(str(n) for n in at)
                for line in at:
                    reason = f"{key!r} appears on lines {where}: each camera may appear once"
                    errors.append(RowError(line, name, reason, key if field == "external_id" else None))
    return errors


# --- CSV -------------------------------------------------------------------------------------------


def _read_csv(text: str) -> Iterator[FileRow | RowError]:
    first = text.split("\n", 1)[0]
    delimiter = ";" if first.count(";") > first.count(",") else ","
    reader = csv.reader(io.StringIO(text, newline=""), delimiter=delimiter, strict=True)
    try:
        header = next(reader)
    except StopIteration:
        raise CameraFileError("the file is empty: the first line must name the columns") from None
    except csv.Error as exc:
        raise CameraFileError(f"line 1: {exc}") from None
    columns = [h.strip().lower() for h in header]
    unknown = [c for c in columns if c not in CSV_COLUMNS]
    if unknown:
        raise CameraFileError(
            f"line 1: unknown column(s) {', '.join(repr(c) for c in unknown)}; the columns are "
            + ", ".join(CSV_COLUMNS)
        )
    repeated = sorted({c for c in columns if columns.count(c) > 1})
    if repeated:
        raise CameraFileError(f"line 1: column(s) {', '.join(repr(c) for c in repeated)} appear more than once")
    if "external_id" not in columns and "id" not in columns:
        raise CameraFileError("line 1: an external_id (or id) column is needed to know which camera a row is")
    line = 1
    while True:
        start = reader.line_num + 1
        try:
            cells = next(reader)
        except StopIteration:
            return
        except csv.Error as exc:
            raise CameraFileError(f"line {reader.line_num}: {exc}") from None
        line = start
        if not any(c.strip() for c in cells):
            continue  # blank lines are common at the end of spreadsheets
        if len(cells) != len(columns):
            yield RowError(line, "row", f"has {len(cells)} cells, the header has {len(columns)} columns")
            continue
        yield _csv_row(line, dict(zip(columns, cells, strict=True)), delimiter)


def _csv_row(line: int, cells: dict[str, str], delimiter: str) -> FileRow | RowError:
    values = {k: v.strip() for k, v in cells.items() if v.strip()}
    ext = values.get("external_id")
    changes: dict[str, Any] = {}
    location: dict[str, Any] = {}
    try:
        for column, raw in values.items():
            if column == "id":
                continue
            if column in ("lat", "lon"):
                location[column] = _number(column, raw, delimiter)
            elif column in LOCATION_COLUMNS:
                location[column] = raw
            elif column == "tags":
                changes["tags"] = [t.strip() for t in _TAG_SPLIT.split(raw) if t.strip()]
            elif column == "enabled":
                changes["enabled"] = _boolean(raw)
            elif column in ("zones", "schedule"):
                changes[column] = _json_cell(column, raw)
            elif column == "password":
                changes["password"] = cells[column]  # spaces may be part of a password
            else:
                changes[column] = raw
    except _CellError as exc:
        return RowError(line, exc.field, exc.reason, ext)
    if location:
        changes["location"] = location
    return FileRow(line, values.get("id"), ext, changes)


class _CellError(ValueError):
    def __init__(self, field: str, reason: str) -> None:
        super().__init__(reason)
        self.field = field
        self.reason = reason


def _number(column: str, raw: str, delimiter: str) -> float:
    text = raw.replace(",", ".") if delimiter == ";" and "." not in raw else raw
    try:
        return float(text)
    except ValueError:
        raise _CellError(column, f"{raw!r} is not a number") from None


def _boolean(raw: str) -> bool:
    low = raw.lower()
    if low in _TRUE:
        return True
    if low in _FALSE:
        return False
    raise _CellError("enabled", f"{raw!r} is not true or false")


def _json_cell(column: str, raw: str) -> Any:
    if column == "schedule" and raw.lower() in ("always", "none"):
        return None
    try:
        return json.loads(raw)
    except json.JSONDecodeError as exc:
        raise _CellError(column, f"is not valid JSON ({exc.msg} at character {exc.pos})") from None


# --- JSON ------------------------------------------------------------------------------------------


def _read_json(text: str) -> Iterator[FileRow | RowError]:
    decoder = json.JSONDecoder()
    pos = _skip(text, 0)
    if text.startswith("{", pos):
        pos = _find_cameras_array(text, pos, decoder)
    if not text.startswith("[", pos):
        raise CameraFileError('JSON imports are a list of cameras, or an object {"cameras": [...]}')
    pos = _skip(text, pos + 1)
    if text.startswith("]", pos):
        return
    while True:
        line = text.count("\n", 0, pos) + 1
        try:
            item, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise CameraFileError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
        yield _json_row(line, item)
        pos = _skip(text, pos)
        if text.startswith(",", pos):
            pos = _skip(text, pos + 1)
            continue
        if text.startswith("]", pos):
            return
        line = text.count("\n", 0, pos) + 1
        raise CameraFileError(f"malformed JSON at line {line}: expected ',' or ']' after a camera")


def _skip(text: str, pos: int) -> int:
    while pos < len(text) and text[pos] in " \t\r\n":
        pos += 1
    return pos


def _find_cameras_array(text: str, pos: int, decoder: json.JSONDecoder) -> int:
    """Position of the list under the top-level "cameras" key (other keys are parsed and ignored)."""
    pos = _skip(text, pos + 1)
    while pos < len(text) and not text.startswith("}", pos):
        try:
            key, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise CameraFileError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
        pos = _skip(text, pos)
        if not text.startswith(":", pos):
            raise CameraFileError(f"malformed JSON at line {text.count(chr(10), 0, pos) + 1}: expected ':'")
        pos = _skip(text, pos + 1)
        if key == "cameras":
            return pos
        try:
            _, pos = decoder.raw_decode(text, pos)
        except json.JSONDecodeError as exc:
            raise CameraFileError(f"malformed JSON at line {exc.lineno} column {exc.colno}: {exc.msg}") from None
        pos = _skip(text, pos)
        if text.startswith(",", pos):
            pos = _skip(text, pos + 1)
    raise CameraFileError('the JSON object has no "cameras" list')


def _json_row(line: int, item: Any) -> FileRow | RowError:
    if not isinstance(item, dict):
        return RowError(line, "camera", f"must be a JSON object, got {type(item).__name__}")
    ext = item.get("external_id") if isinstance(item.get("external_id"), str) else None
    unknown = sorted(set(item) - JSON_KEYS)
    if unknown:
        return RowError(line, unknown[0], f"unknown field; known fields are {', '.join(sorted(JSON_KEYS))}", ext)
    camera_id = item.get("id")
    if camera_id is not None and not isinstance(camera_id, str):
        return RowError(line, "id", "must be a string", ext)
    changes = {k: v for k, v in item.items() if k != "id"}
    return FileRow(line, camera_id, ext, changes)


# --- writing ---------------------------------------------------------------------------------------


def export_json(cameras: Iterable[Camera]) -> bytes:
    """The cameras as a JSON import file (no passwords, no provenance)."""
    items = [{"id": c.id, **c.model_dump(mode="json", include=_FIELDS)} for c in cameras]
    return json.dumps({"cameras": items}, ensure_ascii=False, indent=1).encode("utf-8")


def export_csv(cameras: Iterable[Camera]) -> bytes:
    """The cameras as a CSV import file (no passwords, no provenance); zones and schedule as JSON cells."""
    out = io.StringIO(newline="")
    columns = [c for c in CSV_COLUMNS if c != "password"]
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(columns)
    for camera in cameras:
        data = camera.model_dump(mode="json", include=_FIELDS)
        loc = data.pop("location")
        cells = {
            **data,
            **loc,
            "id": camera.id,
            "tags": ";".join(camera.tags),
            "enabled": "true" if camera.enabled else "false",
            "zones": json.dumps(data["zones"], separators=(",", ":")),
            "schedule": json.dumps(data["schedule"], separators=(",", ":")) if camera.schedule else "",
        }
        writer.writerow(["" if cells.get(c) is None else _csv_cell(cells[c]) for c in columns])
    return out.getvalue().encode("utf-8")


def _csv_cell(value: Any) -> str:
    return repr(value) if isinstance(value, float) else str(value)
