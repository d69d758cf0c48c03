"""`sharpeyes cameras import|export|probe` as an operator runs them (in-process, real Redis, real ipycam)."""

from __future__ import annotations

import csv
from pathlib import Path

import pytest
import redis

from ingest.registry import CameraRegistry
from sharpeyes.cli import main
from tests.ipycam_fixtures import IpyCam
from tests.registry_data import city_row, to_csv


@pytest.fixture
def env(monkeypatch: pytest.MonkeyPatch, redis_url: str, rclient: redis.Redis, tmp_path: Path) -> Path:
    import os

    for var in [v for v in os.environ if v.startswith("SHARPEYES_") and v != "SHARPEYES_TEST_REDIS_URL"]:
        monkeypatch.delenv(var)
    monkeypatch.setenv("SHARPEYES_REDIS_URL", redis_url)
    monkeypatch.setenv("SHARPEYES_DATA_DIR", str(tmp_path / "data"))
    monkeypatch.setenv("SHARPEYES_PROBE_ALLOWED_NETWORKS", "127.0.0.0/8")
    return tmp_path


def test_import_reports_bad_rows_and_export_round_trips(
    env: Path, rclient: redis.Redis, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [city_row(i) for i in range(120)]
    rows[7]["lon"] = "east"
    sheet, errors = env / "district.csv", env / "errors.csv"
    sheet.write_bytes(to_csv(rows))
    assert main(["cameras", "import", str(sheet), "--errors", str(errors)]) == 1
    out = capsys.readouterr()
    assert "120 rows: 119 cameras were created, 0 updated, 0 unchanged; 1 rows bad" in out.out
    assert f"line 9 ({rows[7]['external_id']}): lon: 'east' is not a number" in out.err
    assert "writing" in out.err and "119/119" in out.err  # the progress lines
    assert list(csv.reader(errors.open())) == [
        ["line", "external_id", "field", "reason"],
        ["9", rows[7]["external_id"], "lon", "'east' is not a number"],
    ]
    export = env / "export.csv"
    assert main(["cameras", "export", "-o", str(export)]) == 0
    assert main(["cameras", "import", str(export)]) == 0
    assert "119 rows: 0 cameras were created, 0 updated, 119 unchanged; 0 rows bad" in capsys.readouterr().out


def test_dry_run_strict_and_broken_files(env: Path, rclient: redis.Redis, capsys: pytest.CaptureFixture[str]) -> None:
    rows = [city_row(i) for i in range(10)]
    rows[2]["lat"] = "100"
    sheet = env / "cams.csv"
    sheet.write_bytes(to_csv(rows))
    assert main(["cameras", "import", str(sheet), "--dry-run"]) == 1
    assert "9 cameras would be created" in capsys.readouterr().out
    assert main(["cameras", "import", str(sheet), "--strict"]) == 2
    assert "nothing was written" in capsys.readouterr().out
    broken = env / "broken.json"
    broken.write_text('[{"external_id": "x",]')
    assert main(["cameras", "import", str(broken)]) == 2
    assert "malformed JSON at line 1" in capsys.readouterr().err
    assert CameraRegistry(rclient).ids() == []


def test_import_with_probe_and_probe_command(
    env: Path, rclient: redis.Redis, locked_camera: IpyCam, capsys: pytest.CaptureFixture[str]
) -> None:
    rows = [city_row(i) for i in (0, 5)]
    for row in rows:
        row.update(stream_url="", onvif_url=f"127.0.0.1:{locked_camera.onvif_port}", username="admin")
    rows[0]["password"], rows[1]["password"] = "s3cret pass", "wrong"
    sheet = env / "onvif.csv"
    sheet.write_bytes(to_csv(rows))
    assert main(["cameras", "import", str(sheet), "--probe"]) == 0
    out = capsys.readouterr()
    assert "probed 2 cameras: 1 ok, 1 failed" in out.out and "bad_credentials: 1" in out.out
    assert f"{rows[1]['external_id']}: bad_credentials: the camera refused" in out.err
    registry = CameraRegistry(rclient)
    ok = registry.by_external_id(rows[0]["external_id"])
    assert ok is not None and ok.stream_url == f"rtsp://127.0.0.1:{locked_camera.rtsp_port}/video_sub"
    assert main(["cameras", "probe", "--external-id", rows[0]["external_id"]]) == 0
    assert "probed 1 cameras: 1 ok, 0 failed" in capsys.readouterr().out
    with pytest.raises(SystemExit, match="no camera with external id 'NOPE'"):
        main(["cameras", "probe", "--external-id", "NOPE"])


def test_rekey_moves_every_password_to_the_newest_key(
    env: Path, rclient: redis.Redis, capsys: pytest.CaptureFixture[str], monkeypatch: pytest.MonkeyPatch
) -> None:
    from cryptography.fernet import Fernet

    from api.audit import read_audit
    from ingest.cameras import CameraSpec
    from ingest.secretbox import SecretBox

    old, new = Fernet.generate_key(), Fernet.generate_key()
    keys = env / "secret.key"
    keys.write_bytes(old + b"\n")
    keys.chmod(0o600)
    monkeypatch.setenv("SHARPEYES_SECRET_KEY_FILE", str(keys))
    registry = CameraRegistry(rclient, SecretBox(old))
    for i in range(3):
        spec = {"name": f"c{i}", "stream_url": "rtsp://10.0.0.1/s", "location": {"lat": 0, "lon": 0}}
        registry.create(CameraSpec.model_validate({**spec, "username": "u", "password": "pw"}), "installer")

    keys.write_bytes(b"# newest first\n" + new + b"\n" + old + b"\n")
    assert main(["cameras", "rekey"]) == 0
    out = capsys.readouterr()
    fingerprint = SecretBox(new).fingerprint
    assert f"3 camera passwords re-encrypted with the key {fingerprint}, 0 were on it already" in out.out
    assert "the older keys in" in out.out and "rekeying" in out.err and "3/3" in out.err

    keys.write_bytes(new + b"\n")  # the old key deleted
    assert main(["cameras", "rekey"]) == 0
    assert "0 camera passwords re-encrypted with the key" in capsys.readouterr().out
    assert [CameraRegistry(rclient, SecretBox(new)).password(c) for c in registry.all()] == ["pw"] * 3
    assert sum(e["action"] == "camera.rekey" for e in read_audit(rclient, 100, None)) == 3

    keys.write_bytes(Fernet.generate_key() + b"\n")  # a host with the wrong key file refuses, naming the key
    with pytest.raises(SystemExit, match=f"encrypted with the key {fingerprint}, which this host's key file lacks"):
        main(["cameras", "rekey"])
