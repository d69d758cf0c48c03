"""Camera passwords at rest: the key file, encryption, and a host with the wrong key."""

from __future__ import annotations

import logging
import stat
from pathlib import Path

import pytest
import redis
from cryptography.fernet import Fernet

from config.settings import Settings
from ingest.cameras import CameraSpec
from ingest.registry import CameraRegistry
from ingest.secretbox import SecretBox, SecretKeyError, key_path, load_secret_box


def test_first_start_creates_a_private_key_file_and_says_so(
    settings: Settings, caplog: pytest.LogCaptureFixture
) -> None:
    path = key_path(settings)
    assert not path.exists()
    with caplog.at_level(logging.WARNING, logger="ingest.secretbox"):
        box = load_secret_box(settings)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert f"generated a new secret key for camera passwords at {path}" in caplog.text
    assert box.decrypt(box.encrypt("pw")) == "pw"
    # The second start reuses it, quietly.
    caplog.clear()
    again = load_secret_box(settings)
    assert again.fingerprint == box.fingerprint and "generated" not in caplog.text
    assert path.read_bytes().strip().decode() not in repr(box)


def test_a_named_key_file_must_exist(settings: Settings, tmp_path: Path) -> None:
    missing = settings.model_copy(update={"secret_key_file": tmp_path / "nope.key"})
    with pytest.raises(SecretKeyError, match="does not exist: copy the key file from the first host"):
        load_secret_box(missing)
    bad = tmp_path / "bad.key"
    bad.write_text("not a key\n")
    with pytest.raises(SecretKeyError, match="not a Fernet key"):
        load_secret_box(settings.model_copy(update={"secret_key_file": bad}))


def test_ciphertext_differs_each_time_and_another_key_cannot_read_it() -> None:
    box = SecretBox(Fernet.generate_key())
    one, two = box.encrypt("same"), box.encrypt("same")
    assert one != two
    with pytest.raises(SecretKeyError, match="cannot be decrypted with the key"):
        SecretBox(Fernet.generate_key()).decrypt(one)


def test_a_host_with_another_key_cannot_store_passwords(rclient: redis.Redis) -> None:
    spec = CameraSpec.model_validate(
        {
            "name": "a",
            "stream_url": "rtsp://10.0.0.1/s",
            "location": {"lat": 0, "lon": 0},
            "username": "u",
            "password": "p",
        }
    )
    CameraRegistry(rclient, SecretBox(Fernet.generate_key())).create(spec, "first-host")
    other = CameraRegistry(rclient, SecretBox(Fernet.generate_key()))
    with pytest.raises(SecretKeyError, match="is not the one the registry's passwords are encrypted with"):
        other.create(spec.model_copy(update={"external_id": None}), "second-host")
    assert len(other.ids()) == 1


def test_processes_starting_at_once_agree_on_one_key(settings: Settings) -> None:
    from concurrent.futures import ThreadPoolExecutor

    with ThreadPoolExecutor(8) as pool:
        boxes = list(pool.map(lambda _: load_secret_box(settings), range(16)))
    assert len({b.fingerprint for b in boxes}) == 1
    assert [p.name for p in key_path(settings).parent.iterdir()] == ["secret.key"]
