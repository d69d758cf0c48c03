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


def _spec(external_id: str, password: str | None = "p") -> CameraSpec:
    return CameraSpec.model_validate(
        {
            "name": external_id,
            "external_id": external_id,
            "stream_url": "rtsp://10.0.0.1/s",
            "location": {"lat": 0, "lon": 0},
            "username": "u",
            "password": password,
        }
    )


def test_a_key_file_holds_keys_newest_first(settings: Settings, tmp_path: Path) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    path = tmp_path / "keys"
    path.write_bytes(b"# rotated 2025-05\n" + new + b"\n\n" + old + b"\n")
    path.chmod(0o600)
    box = load_secret_box(settings.model_copy(update={"secret_key_file": path}))
    assert box.fingerprints == (SecretBox(new).fingerprint, SecretBox(old).fingerprint)
    sealed_by_old = SecretBox(old).encrypt("pw")
    assert box.decrypt(sealed_by_old) == "pw" and box.key_of(sealed_by_old) == SecretBox(old).fingerprint
    assert box.key_of(box.encrypt("pw")) == box.fingerprint == SecretBox(new).fingerprint
    assert box.key_of(SecretBox(Fernet.generate_key()).encrypt("pw")) is None
    path.write_bytes(new + b"\nnot-a-key\n")
    with pytest.raises(SecretKeyError, match=r"line 2 of the secret key file .* is not a Fernet key"):
        load_secret_box(settings.model_copy(update={"secret_key_file": path}))
    path.write_bytes(b"# nothing yet\n")
    with pytest.raises(SecretKeyError, match="holds no key"):
        load_secret_box(settings.model_copy(update={"secret_key_file": path}))


def test_rotation_rekeys_every_password_and_the_old_key_can_go(rclient: redis.Redis) -> None:
    from api.audit import read_audit

    old, new = Fernet.generate_key(), Fernet.generate_key()
    first = CameraRegistry(rclient, SecretBox(old))
    cameras = [first.create(_spec(f"R-{i}"), "installer") for i in range(3)]
    first.create(_spec("R-none", password=None), "installer")
    # A host given the new key file keeps to the registry's recorded key until the rekey, so hosts still on the
    # old file read what it writes.
    rotated = CameraRegistry(rclient, SecretBox([new, old]))
    during = rotated.create(_spec("R-3", password="during"), "operator")
    assert during.password_enc is not None and first.password(during) == "during"
    version = rotated.version()

    seen: list[tuple[int, int]] = []
    summary = rotated.rekey("cli:admin", progress=lambda phase, done, total: seen.append((done, total)))
    assert (summary.rekeyed, summary.current, summary.failed) == (4, 0, ())
    assert (summary.key, summary.previous) == (SecretBox(new).fingerprint, SecretBox(old).fingerprint)
    assert seen[-1] == (5, 5) and rotated.version() == version + 1
    # Only the key changed: not the password's date nor the camera's (workers do not restart it).
    for before in [*cameras, during]:
        after = rotated.get(before.id)
        assert after is not None and after.password_enc != before.password_enc
        assert (after.updated_at, after.password_updated_at) == (before.updated_at, before.password_updated_at)

    # The old key removed: every password still reads, and new ones go on the new key.
    new_only = CameraRegistry(rclient, SecretBox(new))
    assert sorted(new_only.password(c) or "" for c in new_only.all()) == ["", "during", "p", "p", "p"]
    later = new_only.create(_spec("R-4", password="later"), "operator")
    assert later.password_enc is not None and SecretBox(new).key_of(later.password_enc) == SecretBox(new).fingerprint
    # A host left with the old key only can neither store passwords nor read the new ones.
    with pytest.raises(SecretKeyError, match="is not the one the registry's passwords are encrypted with"):
        first.create(_spec("R-5"), "operator")
    with pytest.raises(SecretKeyError, match="cannot be decrypted"):
        first.password(later)

    # Idempotent: a second run changes and audits no camera.
    again = new_only.rekey("cli:admin")
    assert (again.rekeyed, again.current, again.failed) == (0, 5, ())
    entries = read_audit(rclient, 100, None)
    rekeyed = [e for e in entries if e["action"] == "camera.rekey"]
    assert sorted(e["target"] for e in rekeyed) == sorted(c.id for c in [*cameras, during])
    assert rekeyed[0]["before"] == {"key": SecretBox(old).fingerprint}
    assert rekeyed[0]["after"] == {"key": SecretBox(new).fingerprint} and rekeyed[0]["actor"] == "cli:admin"
    runs = [e["after"] for e in entries if e["action"] == "registry.rekey"]
    assert runs == [
        {"previous": SecretBox(new).fingerprint, "rekeyed": 0, "current": 5, "failed": 0},
        {"previous": SecretBox(old).fingerprint, "rekeyed": 4, "current": 0, "failed": 0},
    ]


def test_rekey_refuses_a_host_without_the_registry_key_and_reports_unreadable_passwords(
    rclient: redis.Redis,
) -> None:
    old, stray = Fernet.generate_key(), Fernet.generate_key()
    registry = CameraRegistry(rclient, SecretBox(old))
    camera = registry.create(_spec("U-1"), "installer")
    with pytest.raises(SecretKeyError, match="which this host's key file lacks"):
        CameraRegistry(rclient, SecretBox(stray)).rekey("cli:admin")
    # A password no key reads (stored by a host with a stray key) is reported, not touched.
    doc = camera.model_copy(update={"password_enc": SecretBox(stray).encrypt("x")})
    rclient.set(f"sharpeyes:camera:{camera.id}", doc.model_dump_json())
    summary = registry.rekey("cli:admin")
    assert summary.failed == (camera.id,) and summary.rekeyed == 0


def test_a_write_planned_with_the_old_key_while_rekey_runs_is_redone_with_the_new(rclient: redis.Redis) -> None:
    old, new = Fernet.generate_key(), Fernet.generate_key()
    CameraRegistry(rclient, SecretBox(old)).create(_spec("W-0"), "installer")

    class RekeyedMeanwhile(CameraRegistry):
        """Runs a rekey (another host) right after this host read the current key under WATCH."""

        calls = 0

        def _current_key(self, box: SecretBox) -> str:
            key = super()._current_key(box)
            self.calls += 1
            if self.calls == 2:  # the second plan: the recorded key is WATCHed by now
                CameraRegistry(rclient, SecretBox([new, old])).rekey("cli:admin")
            return key

    writer = RekeyedMeanwhile(rclient, SecretBox([new, old]))
    camera = writer.create(_spec("W-1"), "operator")
    assert writer.calls == 3  # planned again after the rekey, which found no W-1 yet to re-encrypt
    assert camera.password_enc is not None and SecretBox(new).key_of(camera.password_enc) == SecretBox(new).fingerprint
