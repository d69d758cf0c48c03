"""What an ONVIF probe found out about a camera, or why it failed, in words an operator can act on."""

from __future__ import annotations

from datetime import datetime
from enum import StrEnum

from pydantic import BaseModel, ConfigDict, Field

# The detection stream is the smallest profile at least this wide: motion runs on ~320 px of luma.
MIN_DETECTION_WIDTH = 320
# Codecs the reader decodes well; JPEG/MPEG-4 profiles are used only when nothing else is offered.
PREFERRED_CODECS = frozenset({"H264", "H265", "HEVC"})


class ProbeErrorKind(StrEnum):
    """Why a probe failed. Each has a fixed meaning the operator can act on."""

    NOT_ALLOWED = "not_allowed"  # the host is outside the networks probing may reach
    UNREACHABLE = "unreachable"  # no TCP connection (refused, no route, no answer to connect)
    TIMEOUT = "timeout"  # connected, but no complete answer in time
    NOT_ONVIF = "not_onvif"  # something answers, but not an ONVIF device service
    BAD_CREDENTIALS = "bad_credentials"  # the camera refused the username/password
    CLOCK_SKEW = "clock_skew"  # login refused and the camera's clock is too far off to tell
    NO_VIDEO = "no_video"  # ONVIF works, but no profile offers an RTSP video stream
    DEVICE_ERROR = "device_error"  # the camera answered a request with a fault we cannot classify further

    @property
    def permanent(self) -> bool:
        """True when probing again without changing something (address, password, camera) cannot help."""
        return self in {
            ProbeErrorKind.NOT_ALLOWED,
            ProbeErrorKind.NOT_ONVIF,
            ProbeErrorKind.BAD_CREDENTIALS,
            ProbeErrorKind.CLOCK_SKEW,
            ProbeErrorKind.NO_VIDEO,
        }


class StreamProfile(BaseModel):
    """One media profile as the camera reports it; fields the camera leaves out stay None."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    token: str
    name: str | None = None
    uri: str | None = Field(default=None, description="RTSP URI without credentials")
    codec: str | None = None
    width: int | None = None
    height: int | None = None
    fps: float | None = None
    gop: int | None = Field(default=None, description="Frames between key frames (GovLength)")
    bitrate_kbps: int | None = None

    @property
    def pixels(self) -> int:
        """Width x height, 0 when unknown."""
        return (self.width or 0) * (self.height or 0)


class ProbeResult(BaseModel):
    """The outcome of one probe: the device's facts and chosen streams, or the error in words."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    probed_at: datetime
    onvif_url: str
    ok: bool
    error: ProbeErrorKind | None = None
    message: str | None = Field(default=None, description="What went wrong and what to do, for the operator")
    manufacturer: str | None = None
    model: str | None = None
    firmware: str | None = None
    serial: str | None = None
    hardware_id: str | None = None
    services: tuple[str, ...] = ()
    capabilities: tuple[str, ...] = ()
    profiles: tuple[StreamProfile, ...] = ()
    detection_profile: str | None = None
    main_profile: str | None = None
    clock_skew_s: float | None = Field(default=None, description="Camera clock minus ours, in seconds")
    warnings: tuple[str, ...] = ()

    def profile(self, token: str | None) -> StreamProfile | None:
        """The profile called ``token``."""
        return next((p for p in self.profiles if p.token == token), None)

    @property
    def detection_stream(self) -> StreamProfile | None:
        """The chosen detection profile."""
        return self.profile(self.detection_profile)

    @property
    def main_stream(self) -> StreamProfile | None:
        """The chosen main (largest) profile."""
        return self.profile(self.main_profile)


def choose_streams(profiles: tuple[StreamProfile, ...]) -> tuple[StreamProfile | None, StreamProfile | None, list[str]]:
    """(detection, main, warnings): the smallest profile at least 320 px wide, and the largest one.

    Only profiles with an RTSP URI count. H.264/H.265 are preferred over JPEG and MPEG-4 when both exist.
    """
    usable = [p for p in profiles if p.uri]
    warnings: list[str] = []
    if not usable:
        return None, None, warnings
    preferred = [p for p in usable if (p.codec or "").upper() in PREFERRED_CODECS] or usable
    main = max(preferred, key=lambda p: (p.pixels, p.fps or 0.0))
    wide_enough = [p for p in preferred if (p.width or 0) >= MIN_DETECTION_WIDTH]
    if wide_enough:
        detection = min(wide_enough, key=lambda p: (p.pixels, -(p.fps or 0.0)))
    else:
        detection = main
        warnings.append(
            f"no profile is at least {MIN_DETECTION_WIDTH} px wide: detecting on {detection.token} "
            f"({detection.width}x{detection.height})"
        )
    return detection, main, warnings
