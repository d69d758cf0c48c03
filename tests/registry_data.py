"""A generated city: an installer's camera spreadsheet of any size, with known errors sprinkled in.

Shared by tests/test_importer.py and benchmarks/bench_registry.py. Deterministic: the same arguments give
the same bytes.
"""

from __future__ import annotations

import csv
import io
import json
from dataclasses import dataclass

DISTRICTS = (
    ("CEN", "Centrum"),
    ("NRD", "Noord"),
    ("OST", "Oost"),
    ("ZUD", "Zuid"),
    ("WST", "West"),
    ("NWW", "Nieuw-West"),
    ("ZOS", "Zuidoost"),
    ("HAV", "Havens"),
    ("WES", "Westpoort"),
    ("IJB", "IJburg"),
    ("BOS", "Bos en Lommer"),
    ("DEP", "De Pijp"),
    ("OUD", "Oud-Zuid"),
    ("WAT", "Watergraafsmeer"),
    ("SLO", "Slotervaart"),
)
COLUMNS = (
    "external_id",
    "name",
    "lat",
    "lon",
    "address",
    "district",
    "grid_cell",
    "stream_url",
    "onvif_url",
    "username",
    "password",
    "tags",
    "enabled",
    "zones",
)
ZONES = json.dumps([{"name": "street", "polygon": [[0, 0.3], [1, 0.3], [1, 1], [0, 1]]}])


@dataclass(frozen=True, slots=True)
class Expected:
    """An error the import must report for a sprinkled-in bad row."""

    line: int
    external_id: str | None
    field: str
    reason: str


def external_id(i: int) -> str:
    """The installer's id of camera ``i``."""
    return f"{DISTRICTS[i % len(DISTRICTS)][0]}-{i:05d}"


def city_row(i: int) -> dict[str, str]:
    """The spreadsheet row of camera ``i``: every fifth by ONVIF address only, every third with a password."""
    code, district = DISTRICTS[i % len(DISTRICTS)]
    net = f"10.{i % len(DISTRICTS)}.{(i // 250) % 250}.{i % 250 + 1}"
    return {
        "external_id": external_id(i),
        "name": f"{district} camera {i}",
        "lat": str(round(52.30 + (i * 7919 % 12000) / 100_000, 6)),
        "lon": str(round(4.75 + (i * 104_729 % 27_000) / 100_000, 6)),
        "address": f"Straat {i % 300} nr {i % 97}",
        "district": district,
        "grid_cell": f"{chr(65 + i % 20)}{i % 30}",
        "stream_url": "" if i % 5 == 0 else f"rtsp://{net}:554/Streaming/Channels/102",
        "onvif_url": f"{net}:80" if i % 5 == 0 else "",
        "username": "viewer" if i % 3 == 0 else "",
        "password": f"pw-{i % 97}" if i % 3 == 0 else "",
        "tags": ";".join((f"district-{code.lower()}", ("school", "park", "traffic")[i % 3])),
        "enabled": "false" if i % 50 == 0 else "true",
        "zones": ZONES if i % 10 == 0 else "",
    }


def to_csv(rows: list[dict[str, str]], extra_cells: dict[int, int] | None = None) -> bytes:
    """The rows as CSV with a header line; ``extra_cells`` adds stray cells to some rows (by index)."""
    out = io.StringIO(newline="")
    writer = csv.writer(out, lineterminator="\n")
    writer.writerow(COLUMNS)
    for index, row in enumerate(rows):
        cells = [row[c] for c in COLUMNS]
        cells += ["stray"] * (extra_cells or {}).get(index, 0)
        writer.writerow(cells)
    return out.getvalue().encode("utf-8")


def city_file(n: int = 11_000, with_errors: bool = True) -> tuple[bytes, list[Expected]]:
    """A CSV of ``n`` cameras and the exact errors its import must report (line = index + 2)."""
    rows = [city_row(i) for i in range(n)]
    expected: list[Expected] = []
    extra: dict[int, int] = {}
    if with_errors and n >= 11_000:
        line = {i: i + 2 for i in range(n)}

        def bad(i: int, field: str, reason: str, ext: str | None = "same") -> None:
            expected.append(Expected(line[i], rows[i]["external_id"] if ext == "same" else ext, field, reason))

        rows[17]["lat"] = "91.5"
        bad(17, "lat", "Input should be less than or equal to 90 (got 91.5)")
        rows[1003]["lon"] = "4,9x"
        bad(1003, "lon", "'4,9x' is not a number")
        rows[2500]["stream_url"] = "rtsp://admin:secret@10.1.1.1/s"
        bad(
            2500,
            "stream_url",
            "must not embed credentials: put them in the username and password fields (got 'rtsp://admin:***@10.1.1.1/s')",
        )
        rows[9000]["external_id"] = rows[4100]["external_id"]
        dup = f"{rows[4100]['external_id']!r} appears on lines {line[4100]}, {line[9000]}: each camera may appear once"
        bad(4100, "external_id", dup)
        bad(9000, "external_id", dup)
        rows[5555]["zones"] = json.dumps([{"name": "x", "polygon": [[0, 0], [1, 1], [1, 0], [0, 0.6]]}])
        bad(5555, "zones.0.polygon", "polygon is self-intersecting: edge 0 crosses edge 2")
        rows[7777]["name"] = ""
        bad(7777, "name", "Field required")
        rows[8080]["enabled"] = "maybe"
        bad(8080, "enabled", "'maybe' is not true or false")
        rows[10001]["zones"] = "[[0,0],[1"
        bad(10001, "zones", "is not valid JSON (Expecting ',' delimiter at character 9)")
        rows[10500]["tags"] = "bad tag!"
        bad(
            10500,
            "tags",
            "tag 'bad tag!' is invalid: 1 to 32 letters, digits or . : / + # - _, starting with a letter or digit",
        )
        extra[10999] = 1
        bad(10999, "row", f"has {len(COLUMNS) + 1} cells, the header has {len(COLUMNS)} columns", ext=None)
        expected.sort(key=lambda e: (e.line, e.field))
    return to_csv(rows, extra), expected
