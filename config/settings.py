"""The one settings model, read from ``SHARPEYES_*`` environment variables and an optional TOML file.

Nothing here reads the environment at import time: :func:`load_settings` is called once by the CLI
(or a test) and the resulting :class:`Settings` object is passed down.
"""

from __future__ import annotations

import os
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from pydantic import Field, ValidationError, field_validator
from pydantic_settings import (
    BaseSettings,
    PydanticBaseSettingsSource,
    SettingsConfigDict,
    TomlConfigSettingsSource,
)

ENV_PREFIX = "SHARPEYES_"
# Variables read by clients and tests, not by the services: allowed beside the settings.
CLIENT_VARIABLES = frozenset({"SHARPEYES_CONFIG", "SHARPEYES_TEST_REDIS_URL", "SHARPEYES_TOKEN", "SHARPEYES_API_URL"})


class SettingsError(ValueError):
    """Invalid settings; the message names each bad setting and the value it was given."""


class Settings(BaseSettings):
    """Everything a sharpeyes process can be told. Each field is documented in the README's table."""

    model_config = SettingsConfigDict(
        env_prefix=ENV_PREFIX,
        extra="forbid",
        frozen=True,
        validate_default=True,
    )

    redis_url: str | None = Field(
        default=None,
        description="Redis/Valkey URL. Unset: start the embedded Valkey server under data_dir.",
    )
    data_dir: Path = Field(default=Path("var"), description="Snapshots, outbox and embedded Valkey data.")
    api_host: str = Field(default="127.0.0.1", description="Address the API and wall listen on.")
    api_port: int = Field(default=8080, ge=1, le=65535, description="Port of the API and wall.")
    worker_procs: int = Field(default=1, ge=1, le=256, description="Worker processes per `sharpeyes worker`.")
    detect_width: int = Field(
        default=320,
        ge=64,
        le=1920,
        description="Width of the luma frame motion runs on (height keeps aspect).",
    )
    open_timeout_s: float = Field(default=5.0, gt=0, le=120, description="RTSP connect/open timeout.")
    read_timeout_s: float = Field(
        default=5.0, gt=0, le=120, description="No packet for this long means the stream stalled."
    )
    registry_poll_s: float = Field(default=1.0, gt=0, le=60, description="How often workers look for registry changes.")
    health_interval_s: float = Field(
        default=2.0, gt=0, le=60, description="Per-camera health is written to Redis at most this often."
    )
    analysis_fps: float = Field(
        default=5.0,
        gt=0,
        le=30,
        description="Frames per second analysed per camera while decoding every frame.",
    )
    motion_threshold: int = Field(
        default=25, ge=1, le=255, description="Luma difference (0-255) that counts a pixel as changed."
    )
    zone_min_fraction: float = Field(
        default=0.01,
        gt=0,
        le=1,
        description="Fraction of a zone's pixels that must change to count as motion.",
    )
    event_min_duration_s: float = Field(
        default=0.4, ge=0, le=60, description="Motion must persist this long before an event starts."
    )
    event_end_quiet_s: float = Field(
        default=4.0, gt=0, le=600, description="An event ends after this long without motion."
    )
    event_cooldown_s: float = Field(
        default=30.0, ge=0, le=3600, description="No new event for the same camera and zone within this time."
    )
    stream_maxlen: int = Field(
        default=1_000_000, ge=1000, description="Approximate MAXLEN of sharpeyes:alerts and :incidents."
    )
    snapshot_retention_days: int = Field(default=30, ge=1, le=3650, description="Snapshots older are deleted.")
    snapshot_quality: int = Field(default=85, ge=10, le=100, description="JPEG quality of snapshots.")

    # --- ingest engine: idle/active decoding, pool, reconnects (add new ingest settings below) ---

    # --- detectors: lighting, tamper, loitering, storm caps (add new detector settings below) ---

    # --- registry, onboarding, access control (add new registry settings below) ---

    # --- incidents: outbox, retention, aggregation, consumer (add new incident settings below) ---

    @field_validator("redis_url")
    @classmethod
    def _check_redis_url(cls, value: str | None) -> str | None:
        if value is None or value == "":
            return None
        if not value.startswith(("redis://", "rediss://", "unix://", "valkey://", "valkeys://")):
            raise ValueError("must start with redis://, rediss:// or unix://")
        return value

    @classmethod
    def settings_customise_sources(
        cls,
        settings_cls: type[BaseSettings],
        init_settings: PydanticBaseSettingsSource,
        env_settings: PydanticBaseSettingsSource,
        dotenv_settings: PydanticBaseSettingsSource,
        file_secret_settings: PydanticBaseSettingsSource,
    ) -> tuple[PydanticBaseSettingsSource, ...]:
        # Precedence: explicit arguments, then the environment, then the TOML file.
        init_kwargs: dict[str, Any] = getattr(init_settings, "init_kwargs", {})
        toml_file = init_kwargs.pop("_toml_file", None)
        sources: list[PydanticBaseSettingsSource] = [init_settings, env_settings]
        if toml_file is not None:
            sources.append(TomlConfigSettingsSource(settings_cls, toml_file=toml_file))
        return tuple(sources)


def _describe(errors: list[Any], env: Mapping[str, str]) -> str:
    lines = []
    for err in errors:
        field = ".".join(str(p) for p in err["loc"]) or "settings"
        env_name = ENV_PREFIX + field.upper()
        value = err.get("input")
        source = f"{env_name}={value!r}" if env_name in env else f"{field}={value!r}"
        if err["type"] == "extra_forbidden":
            lines.append(f"unknown setting {source}: remove it (see `sharpeyes --help-settings`)")
        else:
            lines.append(f"invalid setting {source}: {err['msg']}")
    return "; ".join(lines)


def load_settings(toml_file: Path | None = None, **overrides: Any) -> Settings:
    """Parse settings from ``SHARPEYES_*`` environment variables, ``toml_file`` and ``overrides``.

    Precedence: ``overrides`` (command-line flags), then the environment, then the file.
    Raises :class:`SettingsError` naming every bad setting and its value.
    """
    environ = os.environ
    if toml_file is not None and not toml_file.is_file():
        raise SettingsError(f"config file {str(toml_file)!r} does not exist: check the --config path")
    # Unknown SHARPEYES_* variables are a typo more often than not: refuse them.
    known = {ENV_PREFIX + name.upper() for name in Settings.model_fields} | CLIENT_VARIABLES
    unknown = sorted(k for k in environ if k.startswith(ENV_PREFIX) and k not in known)
    if unknown:
        raise SettingsError(
            "unknown setting " + ", ".join(f"{k}={environ[k]!r}" for k in unknown) + ": check the spelling"
        )
    try:
        return Settings(_toml_file=toml_file, **overrides)  # type: ignore[call-arg]
    except ValidationError as exc:
        raise SettingsError(_describe(exc.errors(), environ)) from None
    except (OSError, ValueError) as exc:  # a TOML syntax error surfaces as a ValueError
        raise SettingsError(f"config file {str(toml_file)!r}: {exc}") from None
