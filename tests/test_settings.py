"""Settings: parsed once, errors name the setting and the value."""

from __future__ import annotations

from pathlib import Path

import pytest

from config.settings import Settings, SettingsError, load_settings


@pytest.fixture(autouse=True)
def clean_env(monkeypatch: pytest.MonkeyPatch) -> None:
    import os

    for var in [v for v in os.environ if v.startswith("SHARPEYES_")]:
        monkeypatch.delenv(var)


def test_defaults_mean_embedded_valkey() -> None:
    settings = load_settings()
    assert settings.redis_url is None
    assert settings.api_port == 8080


def test_environment_wins_over_file(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text('api_port = 9000\ndetect_width = 160\nredis_url = "redis://127.0.0.1:7000/0"\n')
    monkeypatch.setenv("SHARPEYES_API_PORT", "9100")
    settings = load_settings(toml)
    assert (settings.api_port, settings.detect_width) == (9100, 160)
    assert settings.redis_url == "redis://127.0.0.1:7000/0"


def test_overrides_win_over_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("SHARPEYES_WORKER_PROCS", "3")
    assert load_settings(worker_procs=5).worker_procs == 5


@pytest.mark.parametrize(
    ("env", "expected"),
    [
        ({"SHARPEYES_API_PORT": "eighty"}, "SHARPEYES_API_PORT='eighty'"),
        ({"SHARPEYES_API_PORT": "70000"}, "SHARPEYES_API_PORT='70000'"),
        ({"SHARPEYES_REDIS_URL": "http://localhost"}, "SHARPEYES_REDIS_URL='http://localhost'"),
        ({"SHARPEYES_MOTION_THRESHOLD": "0"}, "SHARPEYES_MOTION_THRESHOLD='0'"),
        ({"SHARPEYES_DETECT_WITDH": "320"}, "unknown setting SHARPEYES_DETECT_WITDH='320'"),
    ],
)
def test_bad_environment_names_setting_and_value(
    env: dict[str, str], expected: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for key, value in env.items():
        monkeypatch.setenv(key, value)
    with pytest.raises(SettingsError, match=expected.replace("(", r"\(").replace("?", r"\?")):
        load_settings()


def test_bad_file_value_names_setting(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text("analysis_fps = -1\n")
    with pytest.raises(SettingsError, match=r"analysis_fps=-1"):
        load_settings(toml)


def test_unknown_file_key_is_refused(tmp_path: Path) -> None:
    toml = tmp_path / "s.toml"
    toml.write_text("apiport = 1\n")
    with pytest.raises(SettingsError, match="unknown setting apiport=1"):
        load_settings(toml)


def test_missing_or_broken_file(tmp_path: Path) -> None:
    with pytest.raises(SettingsError, match="does not exist"):
        load_settings(tmp_path / "nope.toml")
    broken = tmp_path / "broken.toml"
    broken.write_text("api_port = = 1\n")
    with pytest.raises(SettingsError, match=r"broken\.toml"):
        load_settings(broken)


def test_every_setting_is_documented() -> None:
    assert all(field.description for field in Settings.model_fields.values())


def test_readme_settings_table_is_current() -> None:
    from config.doc import render

    readme = (Path(__file__).resolve().parent.parent / "README.md").read_text(encoding="utf-8")
    assert render(readme) == readme, "README's settings table is stale: run `make docs`"
