"""Camera files: reading CSV and JSON with line numbers, refusing broken files, and the export round trip."""

from __future__ import annotations

import json
import re

import pytest
import redis
from cryptography.fernet import Fernet

from ingest.camera_files import (
    CameraFileError,
    FileFormat,
    export_csv,
    export_json,
    read_rows,
    sniff_format,
)
from ingest.importer import run_import
from ingest.registry import CameraRegistry
from ingest.secretbox import SecretBox
from tests.registry_data import city_row, to_csv

HEADER = "external_id,name,lat,lon,stream_url\n"


def test_csv_rows_carry_their_line_and_only_the_cells_given() -> None:
    data = (HEADER + 'A-1,"Gate, north",52.1,4.3,rtsp://10.0.0.1/s\n\nA-2,,52.2,,\n').encode()
    rows, errors = read_rows(data, FileFormat.CSV)
    assert errors == []
    assert [(r.line, r.external_id) for r in rows] == [(2, "A-1"), (4, "A-2")]
    assert rows[0].changes == {
        "external_id": "A-1",
        "name": "Gate, north",
        "stream_url": "rtsp://10.0.0.1/s",
        "location": {"lat": 52.1, "lon": 4.3},
    }
    assert rows[1].changes == {"external_id": "A-2", "location": {"lat": 52.2}}


def test_spreadsheet_csv_with_bom_semicolons_and_decimal_commas() -> None:
    data = "\ufeffexternal_id;name;lat;lon;tags\nA-1;Gate;52,1;4,3;school, park|night\n".encode()
    rows, errors = read_rows(data, FileFormat.CSV)
    assert errors == [] and rows[0].changes["location"] == {"lat": 52.1, "lon": 4.3}
    assert rows[0].changes["tags"] == ["school", "park", "night"]


def test_a_quoted_cell_over_several_lines_keeps_the_row_start_line() -> None:
    data = (HEADER + 'A-1,"two\nlines",52.1,4.3,rtsp://h/s\nA-2,x,91,4.3,rtsp://h/s\n').encode()
    rows, _ = read_rows(data, FileFormat.CSV)
    assert [r.line for r in rows] == [2, 4]


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b"", "the file is empty"),
        (b"external_id,name,lattitude\n", "line 1: unknown column(s) 'lattitude'; the columns are id, external_id"),
        (b"name,lat\n", "an external_id (or id) column is needed"),
        (b"external_id,name,name\n", "column(s) 'name' appear more than once"),
        (
            b"external_id,name\nA-1,Caf\xe9\n",
            "the file is not UTF-8 (line 2, byte 24): save it as 'CSV UTF-8' or UTF-8 JSON",
        ),
    ],
)
def test_broken_csv_files_are_refused_whole(data: bytes, message: str) -> None:
    with pytest.raises(CameraFileError, match=re.escape(message)):
        read_rows(data, FileFormat.CSV)


def test_json_rows_carry_their_line_and_unknown_fields_are_named() -> None:
    data = b"""{"source": "installer", "cameras": [
  {"external_id": "A-1", "name": "Gate", "location": {"lat": 1, "lon": 2}, "stream_url": "rtsp://h/s"},
  {"external_id": "A-2",
   "colour": "red"},
  "not an object",
  {"external_id": "A-3", "location": null}
]}"""
    rows, errors = read_rows(data, FileFormat.JSON)
    assert [(r.line, r.external_id) for r in rows] == [(2, "A-1"), (6, "A-3")]
    assert rows[1].changes == {"external_id": "A-3", "location": None}
    assert [(e.line, e.field) for e in errors] == [(3, "colour"), (5, "camera")]
    assert errors[0].reason.startswith("unknown field; known fields are enabled, external_id, id")


@pytest.mark.parametrize(
    ("data", "message"),
    [
        (b'[{"external_id": "A-1",}]', "malformed JSON at line 1 column 24"),
        (b'[{"a": 1}\n {"b": 2}]', "malformed JSON at line 2: expected ',' or ']' after a camera"),
        (b'{"rows": []}', 'the JSON object has no "cameras" list'),
        (b'"cameras"', "JSON imports are a list of cameras"),
    ],
)
def test_broken_json_is_refused_whole_with_its_position(data: bytes, message: str) -> None:
    with pytest.raises(CameraFileError, match=re.escape(message)):
        read_rows(data, FileFormat.JSON)


def test_duplicates_within_a_file_are_reported_on_every_line() -> None:
    data = (HEADER + "A-1,a,1,2,rtsp://h/s\nA-2,b,1,2,rtsp://h/s\nA-1,c,1,2,rtsp://h/s\n").encode()
    rows, errors = read_rows(data, FileFormat.CSV)
    assert [r.line for r in rows] == [3]
    assert [(e.line, e.field, e.reason) for e in errors] == [
        (2, "external_id", "'A-1' appears on lines 2, 4: each camera may appear once"),
        (4, "external_id", "'A-1' appears on lines 2, 4: each camera may appear once"),
    ]


def test_format_is_sniffed_from_the_content_type_or_the_first_character() -> None:
    assert sniff_format(b"[]", None) is FileFormat.JSON
    assert sniff_format(b"\xef\xbb\xbf  {", None) is FileFormat.JSON
    assert sniff_format(b"external_id\n", None) is FileFormat.CSV
    assert sniff_format(b"[]", "text/csv; charset=utf-8") is FileFormat.CSV


@pytest.mark.parametrize("fmt", list(FileFormat))
def test_export_imports_back_unchanged(rclient: redis.Redis, fmt: FileFormat) -> None:
    registry = CameraRegistry(rclient, SecretBox(Fernet.generate_key()))
    rows = [city_row(i) for i in range(60)]
    run_import(registry, to_csv(rows), FileFormat.CSV, "installer")
    cameras = registry.snapshot().cameras
    exported = export_csv(cameras) if fmt is FileFormat.CSV else export_json(cameras)
    assert b"pw-" not in exported and b"password" not in exported
    if fmt is FileFormat.JSON:
        first = json.loads(exported)["cameras"][0]
        assert first["id"].startswith("cam_") and "has_password" not in first
    again = run_import(registry, exported, fmt, "installer").report
    assert (again.unchanged, again.updated, again.created, again.errors) == (60, 0, 0, [])
    assert registry.password(registry.snapshot().cameras[0]) in {None, *(r["password"] for r in rows)}
