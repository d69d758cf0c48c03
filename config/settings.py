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
    receive_batch_s: float = Field(
        default=0.25,
        ge=0,
        le=1.0,
        description=(
            "Live streams are read in batches this long apart once caught up: far fewer thread wakeups "
            "(about a quarter less CPU per camera), alerts at most this much later; at most read_timeout_s / 4 "
            "is used, so a pause never looks like a stall. 0: every packet as it arrives."
        ),
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
        # 8, not Frigate's 25-30: illumination is divided out and the threshold also follows each pixel's
        # noise, so a low floor keeps pale people and vehicles without rain alarms (bench_accuracy: 25 missed
        # pale objects; 10 still missed people whose brightness matches the ground, 8 misses none of them).
        default=8,
        ge=1,
        le=255,
        description="Day: luma difference floor (0-255) that counts a pixel as changed.",
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
    snapshot_main_stream: bool = Field(
        default=True,
        description="Replace each alert's snapshot by a keyframe of the camera's main stream, when it has one.",
    )

    # --- ingest engine: idle/active decoding, pool, reconnects (add new ingest settings below) ---
    idle_interval_s: float = Field(
        default=1.0, ge=0.1, le=60, description="Idle cameras decode and analyse one keyframe per this many seconds."
    )
    active_hold_s: float = Field(
        default=10.0,
        ge=0,
        le=600,
        description="After motion or an alarm, a camera decodes every frame until quiet for this long.",
    )
    adaptive_idle: bool = Field(
        default=True, description="Analyse only every 2nd (3rd) keyframe of cameras quiet for minutes."
    )
    idle_slow_after_s: float = Field(
        default=120.0, ge=0, le=86400, description="Quiet this long: analyse every 2nd keyframe (adaptive_idle)."
    )
    idle_slower_after_s: float = Field(
        default=600.0, ge=0, le=86400, description="Quiet this long: analyse every 3rd keyframe (adaptive_idle)."
    )
    idle_skip_loop_filter: bool = Field(
        default=True, description="Decode idle keyframes without the deblocking filter (about 10 % cheaper)."
    )
    max_lag_s: float = Field(
        default=3.0, gt=0, le=60, description="A camera this far behind real time drops frames (counted) to catch up."
    )
    max_gop_bytes: int = Field(
        default=4_000_000,
        ge=100_000,
        le=100_000_000,
        description="Compressed bytes kept since the last keyframe, for escalating mid-GOP.",
    )
    no_keyframe_s: float = Field(
        default=15.0, gt=0, le=600, description="No keyframe for this long: decode every frame of that camera."
    )
    keyframe_warn_s: float = Field(
        default=4.0, gt=0, le=600, description="Warn when a camera's keyframe interval is longer than this."
    )
    opens_per_second: int = Field(
        default=20, ge=1, le=1000, description="Stream opens per second per worker process (reconnect budget)."
    )
    reconnect_base_s: float = Field(
        default=1.0, gt=0, le=60, description="Ceiling of the first reconnect delay (full jitter, doubling)."
    )
    reconnect_max_s: float = Field(
        default=60.0, gt=0, le=3600, description="Largest reconnect delay after transient failures."
    )
    degraded_window_s: float = Field(
        default=10.0, gt=0, le=600, description="Window over which low frame rate or corrupt data is judged."
    )
    degraded_fps_fraction: float = Field(
        default=0.5, gt=0, le=1, description="Receiving under this fraction of the declared fps marks degraded."
    )

    # --- detectors: lighting, tamper, loitering, storm caps (add new detector settings below) ---
    detect_noise_factor: float = Field(
        default=4.0, ge=1, le=20, description="Day: pixel threshold = max(motion_threshold, this x local noise)."
    )
    detect_night_threshold: int = Field(
        # The same floor as by day: the noise term (detect_night_noise_factor) lifts it where the IR grain is strong.
        default=8,
        ge=1,
        le=255,
        description="Night (infrared) set: luma difference floor of a changed pixel.",
    )
    detect_night_noise_factor: float = Field(
        default=4.5, ge=1, le=20, description="Night set: pixel threshold = max(floor, this x local noise)."
    )
    loiter_s: float = Field(
        default=60.0, ge=1, le=86400, description="Activity in one zone this long also raises a loitering event."
    )
    alert_cap_per_hour: int = Field(
        default=30, ge=0, le=100000, description="Zone alerts per camera per hour; then one summary (0 = no cap)."
    )
    tamper_enabled: bool = Field(default=True, description="Detect covered, defocused and turned cameras.")
    tamper_confirm_s: float = Field(
        default=3.0, ge=0, le=60, description="A tamper condition must hold this long before it is raised."
    )
    tamper_defocus_ratio: float = Field(
        default=0.5, gt=0, lt=1, description="Defocus when sharpness falls below this share of the reference."
    )
    tamper_cooldown_s: float = Field(
        default=300.0, ge=0, le=86400, description="No new tamper event of the same kind within this time."
    )
    video_loss_grace_s: float = Field(
        default=10.0, ge=0, le=3600, description="A camera without video this long raises a video_loss event."
    )

    # --- registry, onboarding, access control (add new registry settings below) ---
    secret_key_file: Path | None = Field(
        default=None,
        description="Key file that encrypts camera passwords; the same file on every host. "
        "Unset: <data_dir>/secret.key, created (mode 0600) on first start.",
    )
    probe_allowed_networks: str = Field(
        default="10.0.0.0/8,172.16.0.0/12,192.168.0.0/16",
        max_length=4096,
        pattern=r"^\s*([0-9A-Fa-f:.]+(/\d{1,3})?\s*(,\s*[0-9A-Fa-f:.]+(/\d{1,3})?\s*)*)?$",
        description="Comma-separated networks (CIDR) ONVIF probes may reach; others are refused. "
        "Default: the private ranges cameras live on, not loopback. Empty: probing off.",
    )
    probe_timeout_s: float = Field(default=10.0, gt=0, le=120, description="Time limit of one whole ONVIF probe.")
    probe_concurrency: int = Field(default=16, ge=1, le=256, description="Cameras probed at once after an import.")
    probe_max_clock_skew_s: float = Field(
        default=300.0,
        gt=0,
        le=86400,
        description="A camera clock further off than this is reported (and blamed when its login fails).",
    )
    import_max_bytes: int = Field(
        default=32 * 1024 * 1024, ge=1024, le=1 << 30, description="Largest camera import the API takes (413 above)."
    )
    import_batch_size: int = Field(
        default=500, ge=1, le=10_000, description="Cameras written per Redis transaction by imports."
    )

    # --- incidents: outbox, retention, aggregation, consumer (add new incident settings below) ---
    outbox_quota_bytes: int = Field(
        default=1024**3,
        ge=64 * 1024,
        description="Disk quota of each worker's alert outbox; when full, new alerts are refused and an alarm raised.",
    )
    incidents_maxlen: int = Field(
        default=1_000_000,
        ge=1000,
        description="Approximate MAXLEN of sharpeyes:incidents; must exceed what a consumer outage can leave unread.",
    )
    incidents_retention_days: float = Field(
        default=30.0,
        ge=0,
        le=3650,
        description="Incidents older than this are trimmed from sharpeyes:incidents (MINID); 0 keeps them.",
    )
    incident_merge_window_s: float = Field(
        default=300.0,
        ge=0,
        le=86400,
        description="Storm control: events of one camera and zone within this of an incident join it; 0 is off.",
    )
    incident_cluster_radius_m: float = Field(
        default=0.0,
        ge=0,
        le=50_000,
        description="Events of cameras within this radius and the cluster window form one incident; 0 is off.",
    )
    incident_cluster_window_s: float = Field(
        default=60.0,
        gt=0,
        le=3600,
        description="Time window of a cluster; its incident is published when the window closes.",
    )
    clips_enabled: bool = Field(default=True, description="Record an MP4 clip (pre-event seconds and the event).")
    clip_pre_s: float = Field(default=5.0, ge=0, le=60, description="Seconds before an event's start in its clip.")
    clip_max_s: float = Field(default=60.0, gt=0, le=3600, description="Longest event clip, in seconds.")
    clip_ring_bytes: int = Field(
        default=2 * 1024**2,
        ge=64 * 1024,
        le=1024**3,
        description="Memory cap of each camera's packet ring (pre-event buffer); the pre-roll shortens above it.",
    )
    clip_max_bytes: int = Field(default=64 * 1024**2, ge=64 * 1024, description="Largest event clip, in bytes.")
    cases_max_tries: int = Field(
        default=10, ge=1, le=1000, description="Deliveries of an incident before the consumer dead-letters it."
    )
    cases_retry_s: float = Field(
        default=30.0,
        gt=0,
        le=3600,
        description="Consumer: an unacknowledged incident is retried (or reclaimed) after this long.",
    )
    cases_webhook_timeout_s: float = Field(default=10.0, gt=0, le=120, description="Consumer: webhook HTTP timeout.")

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
