"""Ask a camera over ONVIF who it is and where its streams are (onvif-zeep-async), and say in words why not.

One probe, in order:

1. the network guard resolves the host and refuses it unless it lies in ``probe_allowed_networks``;
2. a plain TCP connect tells "unreachable" (refused, no route, no answer) from everything later;
3. an unauthenticated GetSystemDateAndTime, sent by hand, tells an ONVIF device from any other web
   server and reads the camera's clock (from the SOAP answer, or the HTTP Date header when the camera
   wants a login even for that);
4. onvif-zeep-async then does GetServices/GetCapabilities, GetDeviceInformation, GetProfiles and
   GetStreamUri, always at the guarded address: service addresses the camera advertises are rewritten
   to the host:port that was probed (cameras behind NAT advertise their LAN address).

A refused login is reported as clock skew when the camera's clock is off by more than
``probe_max_clock_skew_s`` (WS-Security logins carry a timestamp the camera checks), else as bad
credentials. The whole probe is bounded by ``probe_timeout_s``. Reading the replies is ``ingest.onvif_replies``.
"""

from __future__ import annotations

import asyncio
import contextlib
import errno
import logging
import time
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from typing import Any
from urllib.parse import urlsplit

import aiohttp
import zeep.exceptions
from onvif import ONVIFCamera
from onvif.exceptions import ONVIFAuthError, ONVIFError, ONVIFTimeoutError
from onvif.util import replace_host_port

from config.settings import Settings
from ingest.cameras import onvif_host_port
from ingest.netguard import NetGuard, NetworkNotAllowed
from ingest.onvif_replies import (
    bracket,
    clean_stream_uri,
    describe_skew,
    parse_soap,
    profile_token,
    service_names,
    soap_time,
    stream_profile,
    text,
)
from ingest.probe_result import ProbeErrorKind, ProbeResult, StreamProfile, choose_streams

log = logging.getLogger(__name__)

# Answers larger than this are not a camera's GetSystemDateAndTime; reading on would only cost memory.
MAX_PREFLIGHT_BYTES = 256 * 1024
_TIME_REQUEST = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope"><s:Body>'
    '<GetSystemDateAndTime xmlns="http://www.onvif.org/ver10/device/wsdl"/>'
    "</s:Body></s:Envelope>"
)
_TIME_HEADERS = {
    "Content-Type": 'application/soap+xml; charset=utf-8; action="http://www.onvif.org/ver10/device/wsdl/'
    'GetSystemDateAndTime"'
}
# Words cameras put in faults when a login is refused (WS-Security and vendor phrasings seen in the field).
_AUTH_WORDS = ("notauthorized", "not authorized", "unauthorized", "failedauthentication", "authority", "password")


@dataclass(frozen=True, slots=True)
class ProbeConfig:
    """How probes behave: the guard, the time limit and the clock-skew limit."""

    guard: NetGuard
    timeout_s: float
    max_clock_skew_s: float

    @classmethod
    def from_settings(cls, settings: Settings) -> ProbeConfig:
        """The probe configuration of ``settings``."""
        return cls(
            NetGuard.from_setting(settings.probe_allowed_networks),
            settings.probe_timeout_s,
            settings.probe_max_clock_skew_s,
        )


class ProbeFailed(Exception):
    """A classified probe failure; ``message`` is for the operator."""

    def __init__(self, kind: ProbeErrorKind, message: str) -> None:
        super().__init__(message)
        self.kind = kind
        self.message = message


@dataclass(slots=True)
class _Run:
    """State of one probe, for error messages and the result."""

    onvif_url: str
    host: str
    port: int
    address: str = ""
    step: str = "resolving the host"
    skew_s: float | None = None
    has_credentials: bool = False
    auth_scheme: str | None = None
    compensated: bool = False  # the client shifts its login timestamps by the camera's reported offset
    lan_hosts: frozenset[str] = frozenset()


async def probe_camera(onvif_url: str, username: str | None, password: str | None, config: ProbeConfig) -> ProbeResult:
    """Probe the camera at ``onvif_url`` (normalised); never raises for camera problems, returns ``ok=False``."""
    host, port = onvif_host_port(onvif_url)
    run = _Run(onvif_url, host, port, has_credentials=bool(username))
    started = time.monotonic()
    try:
        async with asyncio.timeout(config.timeout_s):
            result = await _probe(run, username, password, config)
    except ProbeFailed as exc:
        result = _failure(run, exc.kind, exc.message)
    except TimeoutError:
        if run.step == "connecting":
            result = _failure(
                run,
                ProbeErrorKind.UNREACHABLE,
                f"no answer to a connection attempt on {host}:{port} within {config.timeout_s:g} s: the host is "
                "down, or a firewall drops the traffic",
            )
        else:
            result = _failure(
                run,
                ProbeErrorKind.TIMEOUT,
                f"no complete answer within {config.timeout_s:g} s (while {run.step}): the camera is overloaded "
                "or this is not an ONVIF port; try again, or raise probe_timeout_s",
            )
    # Failures are worth a line in the log (an 11,000-camera import probes a lot); successes only when debugging.
    level = logging.DEBUG if result.ok else logging.INFO
    log.log(level, "probe %s:%d: %s in %.2f s", host, port, result.error or "ok", time.monotonic() - started)
    return result


def _failure(run: _Run, kind: ProbeErrorKind, message: str) -> ProbeResult:
    return ProbeResult(
        probed_at=datetime.now(UTC),
        onvif_url=run.onvif_url,
        ok=False,
        error=kind,
        message=message,
        clock_skew_s=run.skew_s,
    )


async def _probe(run: _Run, username: str | None, password: str | None, config: ProbeConfig) -> ProbeResult:
    try:
        run.address = await config.guard.resolve(run.host, run.port)
    except NetworkNotAllowed as exc:
        raise ProbeFailed(ProbeErrorKind.NOT_ALLOWED, str(exc)) from None
    run.step = "connecting"
    await _tcp_connect(run)
    run.step = "asking for the camera's time"
    await _preflight(run)
    warnings: list[str] = []
    if run.skew_s is not None and abs(run.skew_s) > config.max_clock_skew_s:
        warnings.append(f"the camera's clock is {describe_skew(run.skew_s)}: set up NTP on it")
    camera = _PinnedCamera(run.address, run.port, username or "", password or "", no_cache=True, adjust_time=True)
    try:
        return await _query(run, camera, config, warnings)
    except (zeep.exceptions.Fault, zeep.exceptions.TransportError, ONVIFError) as exc:
        run.compensated = camera.dt_diff is not None
        raise _classify(run, exc, config) from None
    except aiohttp.ClientConnectorError as exc:
        raise ProbeFailed(ProbeErrorKind.UNREACHABLE, f"connection lost while {run.step}: {exc}") from None
    except (aiohttp.ClientError, zeep.exceptions.Error) as exc:
        raise ProbeFailed(
            ProbeErrorKind.DEVICE_ERROR, f"the camera broke off while {run.step}: {type(exc).__name__}: {exc}"
        ) from None
    finally:
        await camera.close()


class _PinnedCamera(ONVIFCamera):  # type: ignore[misc]
    """Talks only to the guarded host:port: advertised service addresses are rewritten, and remembered."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, nat_override=True, **kwargs)
        self.advertised: list[str] = []

    def rewrite_url(self, url: str | None) -> str | None:
        rewritten: str | None = replace_host_port(url, self.host, self.port)
        if url and rewritten != url:
            self.advertised.append(url)
        return rewritten

    async def _adjust_time(self, devicemgmt: Any) -> Any:
        try:
            return await super()._adjust_time(devicemgmt)
        except (AttributeError, TypeError, ValueError):
            # Firmwares that report only LocalDateTime give nothing to correct by: go on uncorrected.
            return devicemgmt

    @property
    def advertised_hosts(self) -> set[str]:
        """Hosts the camera named in its service addresses, other than the one probed (its LAN address)."""
        return {h for h in (urlsplit(u).hostname for u in self.advertised) if h}


async def _tcp_connect(run: _Run) -> None:
    try:
        _, writer = await asyncio.open_connection(run.address, run.port)
    except ConnectionRefusedError:
        raise ProbeFailed(
            ProbeErrorKind.UNREACHABLE,
            f"nothing accepts connections on {run.host}:{run.port}: check the port (ONVIF is often on 80, 8000 "
            "or 8080) and that the camera is powered",
        ) from None
    except OSError as exc:
        reason = {errno.EHOSTUNREACH: "no route to the host", errno.ENETUNREACH: "the network is unreachable"}.get(
            exc.errno or 0, exc.strerror or str(exc)
        )
        raise ProbeFailed(ProbeErrorKind.UNREACHABLE, f"cannot connect to {run.host}:{run.port}: {reason}") from None
    writer.close()
    with contextlib.suppress(OSError):
        await writer.wait_closed()


async def _preflight(run: _Run) -> None:
    """Unauthenticated GetSystemDateAndTime: is this ONVIF, does it want a login, what time is it there."""
    url = f"http://{bracket(run.address)}:{run.port}/onvif/device_service"
    try:
        async with (
            aiohttp.ClientSession() as session,
            session.post(url, data=_TIME_REQUEST, headers=_TIME_HEADERS, allow_redirects=False) as response,
        ):
            body = await response.content.read(MAX_PREFLIGHT_BYTES)
            status, content_type = response.status, response.headers.get("Content-Type", "?")
            date_header = response.headers.get("Date")
            auth_header = response.headers.get("WWW-Authenticate")
    except aiohttp.ClientConnectorError as exc:
        raise ProbeFailed(
            ProbeErrorKind.UNREACHABLE, f"cannot connect to {run.host}:{run.port}: {exc.os_error}"
        ) from None
    except (aiohttp.ServerDisconnectedError, aiohttp.ClientResponseError, aiohttp.ClientPayloadError) as exc:
        # Something listens, but does not answer HTTP (or hangs up on it): an RTSP or other service port.
        raise ProbeFailed(
            ProbeErrorKind.NOT_ONVIF,
            f"{run.host}:{run.port} does not answer HTTP ({type(exc).__name__}): check the port",
        ) from None
    except aiohttp.ClientError as exc:
        raise ProbeFailed(ProbeErrorKind.UNREACHABLE, f"connection to {run.host}:{run.port} failed: {exc}") from None
    root = parse_soap(body)
    if root is not None:
        camera_time = soap_time(root)
        if camera_time is not None:
            run.skew_s = (camera_time - datetime.now(UTC)).total_seconds()
            return
        if root.find(".//{*}GetSystemDateAndTimeResponse") is not None:
            return  # local time only: the offset to UTC is unknown, so no skew is claimed
        if root.find(".//{*}Fault") is None:
            raise ProbeFailed(
                ProbeErrorKind.NOT_ONVIF,
                f"{run.host}:{run.port} answers SOAP but not GetSystemDateAndTime: not an ONVIF device service",
            )
    elif status == 401:
        run.auth_scheme = (auth_header or "").split(" ", 1)[0] or None
    else:
        raise ProbeFailed(
            ProbeErrorKind.NOT_ONVIF,
            f"{run.host}:{run.port} answers HTTP {status} ({content_type.split(';')[0]}) at /onvif/device_service, "
            "not ONVIF: check the port and that ONVIF is enabled in the camera's settings",
        )
    # A fault or 401: the camera wants a login even to tell the time; its HTTP Date header still does.
    if date_header:
        with contextlib.suppress(TypeError, ValueError):
            run.skew_s = (parsedate_to_datetime(date_header) - datetime.now(UTC)).total_seconds()


def _classify(run: _Run, exc: Exception, config: ProbeConfig) -> ProbeFailed:
    """The operator's words for an exception from onvif-zeep-async/zeep during ``run.step``."""
    if isinstance(exc, ONVIFTimeoutError):
        return ProbeFailed(ProbeErrorKind.TIMEOUT, f"the camera did not answer in time while {run.step}")
    detail = str(exc)
    if isinstance(exc, zeep.exceptions.Fault):
        detail = " ".join(str(p) for p in (exc.message, exc.code, getattr(exc, "subcodes", None)) if p)
    status = getattr(exc, "status_code", None)
    # A camera that answered the unauthenticated time request with HTTP 401 and a web page gets the same page
    # from zeep as an unparseable "unknown fault".
    http_401_page = run.auth_scheme is not None and "unknown fault" in detail.lower()
    said_auth = any(w in detail.lower() for w in _AUTH_WORDS)
    other_http_error = isinstance(exc, zeep.exceptions.TransportError) and status not in (None, 401)
    is_auth = (isinstance(exc, ONVIFAuthError) or status == 401 or http_401_page or said_auth) and not other_http_error
    if is_auth:
        if run.skew_s is not None and abs(run.skew_s) > config.max_clock_skew_s and not run.compensated:
            return ProbeFailed(
                ProbeErrorKind.CLOCK_SKEW,
                f"the camera refused the login and its clock is {describe_skew(run.skew_s)} "
                f"(more than {config.max_clock_skew_s:g} s): ONVIF logins are timestamped, so set the camera's "
                "clock (NTP) and probe again",
            )
        # The login was timestamped by the camera's own clock, so the skew did not cause the refusal; it is still
        # worth fixing (recordings and events carry the camera's time).
        clock = (
            f"; its clock is also {describe_skew(run.skew_s)}: set up NTP on it"
            if run.skew_s is not None and abs(run.skew_s) > config.max_clock_skew_s
            else ""
        )
        if not run.has_credentials:
            return ProbeFailed(
                ProbeErrorKind.BAD_CREDENTIALS,
                f"the camera requires a username and password: give both and probe again{clock}",
            )
        http = " (it asks for HTTP authentication)" if run.auth_scheme else ""
        return ProbeFailed(
            ProbeErrorKind.BAD_CREDENTIALS,
            f"the camera refused the username or password{http}: check both, and that the user may use ONVIF "
            f"(many cameras keep ONVIF users apart from web users){clock}",
        )
    if isinstance(exc, ONVIFError) and "support service" in detail:
        return ProbeFailed(ProbeErrorKind.NO_VIDEO, f"the camera offers no media service ({detail})")
    if isinstance(exc, zeep.exceptions.TransportError):
        return ProbeFailed(ProbeErrorKind.DEVICE_ERROR, f"the camera answered HTTP {status} while {run.step}")
    return ProbeFailed(ProbeErrorKind.DEVICE_ERROR, f"the camera reported an error while {run.step}: {detail[:300]}")


async def _query(run: _Run, camera: _PinnedCamera, config: ProbeConfig, warnings: list[str]) -> ProbeResult:
    run.step = "listing services (GetServices)"
    await camera.update_xaddrs()
    services = service_names(camera.xaddrs)
    if camera.dt_diff is not None:
        run.skew_s = camera.dt_diff.total_seconds()
    run.step = "reading device information"
    devicemgmt = await camera.create_devicemgmt_service()
    info = await devicemgmt.GetDeviceInformation()
    run.step = "reading capabilities"
    capabilities: list[str] = []
    try:
        caps = await camera.get_capabilities() or {}
        capabilities = sorted(k for k, v in caps.items() if v is not None and not k.startswith("_"))
    except (zeep.exceptions.Fault, ONVIFError) as exc:
        warnings.append(f"GetCapabilities failed ({exc}); services come from GetServices")
    for url in sorted(set(camera.advertised)):
        parts = urlsplit(url)
        warnings.append(
            f"the camera advertises {parts.scheme}://{parts.netloc}{parts.path}; using {run.host}:{run.port} "
            "as probed (behind NAT?)"
        )
    run.lan_hosts = frozenset(camera.advertised_hosts - {run.host, run.address})
    run.step = "listing media profiles (GetProfiles)"
    media = await camera.create_media_service()
    profiles: list[StreamProfile] = []
    for raw in await media.GetProfiles() or []:
        profile = await _profile(run, media, raw, config, warnings)
        if profile is not None:
            profiles.append(profile)
    detection, main, choice_warnings = choose_streams(tuple(profiles))
    warnings.extend(choice_warnings)
    if detection is None:
        raise ProbeFailed(
            ProbeErrorKind.NO_VIDEO,
            f"none of the camera's {len(profiles)} media profiles offers an RTSP video stream: "
            "configure a video profile on the camera",
        )
    return ProbeResult(
        probed_at=datetime.now(UTC),
        onvif_url=run.onvif_url,
        ok=True,
        manufacturer=text(getattr(info, "Manufacturer", None)),
        model=text(getattr(info, "Model", None)),
        firmware=text(getattr(info, "FirmwareVersion", None)),
        serial=text(getattr(info, "SerialNumber", None)),
        hardware_id=text(getattr(info, "HardwareId", None)),
        services=tuple(services),
        capabilities=tuple(capabilities),
        profiles=tuple(profiles),
        detection_profile=detection.token,
        main_profile=main.token if main else None,
        clock_skew_s=run.skew_s,
        warnings=tuple(warnings),
    )


async def _profile(run: _Run, media: Any, raw: Any, config: ProbeConfig, warnings: list[str]) -> StreamProfile | None:
    token = profile_token(raw)
    if token is None:
        return None  # audio-only or metadata profile
    run.step = f"asking for the stream address of profile {token} (GetStreamUri)"
    setup = {"Stream": "RTP-Unicast", "Transport": {"Protocol": "RTSP"}}
    reply = await media.GetStreamUri({"StreamSetup": setup, "ProfileToken": token})
    uri = await clean_stream_uri(
        text(getattr(reply, "Uri", None)),
        token,
        probed_host=run.host,
        lan_hosts=run.lan_hosts,
        guard=config.guard,
        warnings=warnings,
    )
    return stream_profile(raw, token, uri, warnings)
