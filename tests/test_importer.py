"""Bulk import of a generated 11,000-camera city with errors sprinkled in: exact report, upserts, idempotence."""

from __future__ import annotations

import pytest
import redis
from cryptography.fernet import Fernet

from api.audit import AUDIT_STREAM, read_audit
from ingest.camera_files import FileFormat
from ingest.importer import run_import
from ingest.registry import CameraRegistry
from ingest.secretbox import SecretBox
from tests.registry_data import city_file, city_row, external_id, to_csv


@pytest.fixture
def registry(rclient: redis.Redis) -> CameraRegistry:
    return CameraRegistry(rclient, SecretBox(Fernet.generate_key()))


def test_eleven_thousand_cameras_exact_report_upserts_and_idempotent_second_run(
    registry: CameraRegistry, rclient: redis.Redis
) -> None:
    data, expected = city_file(11_000)
    phases: list[tuple[str, int, int]] = []
    first = run_import(registry, data, FileFormat.CSV, "installer", progress=lambda *p: phases.append(p))
    report = first.report
    got = [(e.line, e.external_id, e.field, e.reason) for e in report.errors]
    assert got == [(e.line, e.external_id, e.field, e.reason) for e in expected]
    bad_lines = {e.line for e in expected}
    assert (report.rows, report.failed) == (11_000, len(bad_lines))
    assert (report.created, report.updated, report.unchanged) == (11_000 - len(bad_lines), 0, 0)
    assert report.written and phases[-1] == ("writing", 11_000 - len(bad_lines), 11_000 - len(bad_lines))
    assert len(first.changed_ids) == 11_000 - len(bad_lines)

    # What was stored is what the spreadsheet says.
    stored = registry.by_external_id(external_id(3000))
    assert stored is not None
    row = city_row(3000)
    assert (stored.name, stored.location.lat, stored.location.lon) == (
        row["name"],
        float(row["lat"]),
        float(row["lon"]),
    )
    assert stored.location.district == row["district"] and stored.tags == ("district-cen", "school")
    assert stored.username == "viewer" and registry.password(stored) == row["password"]
    assert stored.zones[0].name == "street" and stored.enabled is False  # 3000 % 50 == 0
    by_onvif = registry.by_external_id(external_id(3005))
    assert by_onvif is not None and by_onvif.stream_url is None
    assert by_onvif.onvif_url == f"http://{city_row(3005)['onvif_url']}/onvif/device_service"
    for line in sorted(bad_lines - {4102, 9002}):
        assert registry.by_external_id(external_id(line - 2)) is None

    # Every change is in the audit stream, plus one summary entry.
    assert rclient.xlen(AUDIT_STREAM) == report.created + 1
    [summary] = read_audit(rclient, 1, None)
    assert summary["action"] == "camera.import" and summary["after"]["created"] == report.created

    # The same file again changes nothing at all.
    version, audited = registry.version(), rclient.xlen(AUDIT_STREAM)
    second = run_import(registry, data, FileFormat.CSV, "installer").report
    assert (second.created, second.updated, second.unchanged) == (0, 0, report.created)
    assert [(e.line, e.field, e.reason) for e in second.errors] == [(e.line, e.field, e.reason) for e in expected]
    assert registry.version() == version and rclient.xlen(AUDIT_STREAM) == audited + 1


def test_a_reimport_changes_only_what_changed_and_keeps_passwords(registry: CameraRegistry) -> None:
    rows = [city_row(i) for i in range(600)]
    run_import(registry, to_csv(rows), FileFormat.CSV, "installer", batch_size=100)
    rows[3]["name"] = "Renamed by the installer"
    rows[9]["lat"] = "52.5"
    for row in rows:
        row["password"] = ""  # a sheet without passwords keeps the stored ones
    result = run_import(registry, to_csv(rows), FileFormat.CSV, "installer", batch_size=100)
    assert (result.report.updated, result.report.unchanged, result.report.created) == (2, 598, 0)
    renamed = registry.by_external_id(external_id(3))
    assert renamed is not None and renamed.name == "Renamed by the installer"
    assert registry.password(renamed) == city_row(3)["password"]


def test_strict_and_dry_run_write_nothing(registry: CameraRegistry) -> None:
    rows = [city_row(i) for i in range(600)]
    rows[42]["lat"] = "-95"
    data = to_csv(rows)
    strict = run_import(registry, data, FileFormat.CSV, "installer", strict=True, batch_size=100).report
    assert not strict.written and [(e.line, e.field) for e in strict.errors] == [(44, "lat")]
    assert registry.ids() == []
    dry = run_import(registry, data, FileFormat.CSV, "installer", dry_run=True, batch_size=100).report
    assert dry.dry_run and not dry.written and (dry.created, dry.failed) == (599, 1)
    assert registry.ids() == [] and registry.version() == 0
