"""What a camera's ONVIF replies say, in the probe's terms: its clock, its media profiles, its stream addresses.

The probe (``ingest.onvif_probe``) asks; this module reads the answers. Nothing here talks to the camera, except
the network guard's name lookup when a stream URI names a host other than the one probed.
"""

from __future__ import annotations

import xml.etree.ElementTree as ET
from datetime import UTC, datetime
from typing import Any
from urllib.parse import urlsplit, urlunsplit

from ingest.cameras import check_stream_url
from ingest.netguard import NetGuard, NetworkNotAllowed
from ingest.probe_result import StreamProfile

# Short names for the services a camera lists, by their WSDL namespace.
SERVICE_NAMES = {
    "http://www.onvif.org/ver10/device/wsdl": "device",
    "http://www.onvif.org/ver10/media/wsdl": "media",
    "http://www.onvif.org/ver20/media/wsdl": "media2",
    "http://www.onvif.org/ver20/ptz/wsdl": "ptz",
    "http://www.onvif.org/ver10/events/wsdl": "events",
    "http://www.onvif.org/ver20/imaging/wsdl": "imaging",
    "http://www.onvif.org/ver10/deviceIO/wsdl": "deviceio",
    "http://www.onvif.org/ver20/analytics/wsdl": "analytics",
    "http://www.onvif.org/ver10/recording/wsdl": "recording",
    "http://www.onvif.org/ver10/search/wsdl": "search",
    "http://www.onvif.org/ver10/replay/wsdl": "replay",
}
# Media1 (ver10) can only say JPEG, MPEG4 or H264. Firmwares that stream H.265 through a Media1 profile either
# report H264 and mark the truth in a vendor attribute (Hikvision: encoding="H265" on the encoder configuration,
# see tests/data/onvif/hikvision-4mp-media1-h265) or leave the encoder settings out altogether.
_VENDOR_H265 = frozenset({"H265", "HEVC"})


def service_names(xaddrs: dict[str, str]) -> list[str]:
    """Short names of the services in ``xaddrs`` (namespace -> address), sorted; unknown namespaces as they are."""
    return sorted({SERVICE_NAMES.get(ns, ns) for ns in xaddrs})


def parse_soap(body: bytes) -> ET.Element | None:
    """The SOAP envelope in ``body``, or None when it is not one (or carries a DTD)."""
    if b"<!DOCTYPE" in body[:1024].upper():
        return None  # no DTDs from devices: they are the door to entity expansion attacks
    try:
        root = ET.fromstring(body)
    except ET.ParseError:
        return None
    return root if root.tag.endswith("}Envelope") else None


def soap_time(root: ET.Element) -> datetime | None:
    """The camera's UTC clock from a GetSystemDateAndTime reply; None when it gives only local time."""
    utc = root.find(".//{*}UTCDateTime")
    if utc is None:
        return None
    try:
        parts = {
            name: int(text)
            for name in ("Year", "Month", "Day", "Hour", "Minute", "Second")
            if (text := utc.findtext(f".//{{*}}{name}")) is not None
        }
        return datetime(
            parts["Year"], parts["Month"], parts["Day"], parts["Hour"], parts["Minute"], parts["Second"], tzinfo=UTC
        )
    except (KeyError, ValueError):
        return None


def describe_skew(skew_s: float) -> str:
    """``skew_s`` (camera clock minus ours) in words, e.g. "2.0 h ahead of this server's"."""
    size = abs(skew_s)
    if size >= 2 * 86400:
        amount = f"{size / 86400:.0f} days"  # clocks never set (or set by hand long ago) are off by months
    elif size >= 3600:
        amount = f"{size / 3600:.1f} h"
    else:
        amount = f"{size / 60:.0f} min" if size >= 60 else f"{size:.0f} s"
    return f"{amount} {'ahead of' if skew_s > 0 else 'behind'} this server's"


def profile_token(raw: Any) -> str | None:
    """The token of a GetProfiles entry that carries video, else None (audio-only or metadata profile)."""
    token = text(getattr(raw, "token", None))
    return token if token and getattr(raw, "VideoEncoderConfiguration", None) is not None else None


def stream_profile(raw: Any, token: str, uri: str | None, warnings: list[str]) -> StreamProfile:
    """The facts of one Media1 profile (``raw`` as onvif-zeep-async returns it) and its cleaned stream URI."""
    vec = getattr(raw, "VideoEncoderConfiguration", None)
    resolution = getattr(vec, "Resolution", None)
    rate = getattr(vec, "RateControl", None)
    gop_holder = getattr(vec, "H264", None) or getattr(vec, "MPEG4", None)
    return StreamProfile(
        token=token,
        name=text(getattr(raw, "Name", None)),
        uri=uri,
        codec=_codec(vec, token, warnings),
        width=to_int(getattr(resolution, "Width", None)),
        height=to_int(getattr(resolution, "Height", None)),
        fps=to_float(getattr(rate, "FrameRateLimit", None)),
        gop=to_int(getattr(gop_holder, "GovLength", None)),
        bitrate_kbps=to_int(getattr(rate, "BitrateLimit", None)),
    )


def _codec(vec: Any, token: str, warnings: list[str]) -> str | None:
    reported = text(getattr(vec, "Encoding", None))
    reported = reported.upper() if reported else None
    # zeep keeps attributes the schema does not name (the encoder configuration allows any) in _attr_1.
    extra = getattr(vec, "_attr_1", None) or {}
    marked = next((str(v).strip().upper() for k, v in extra.items() if k.rsplit("}", 1)[-1].lower() == "encoding"), "")
    if marked in _VENDOR_H265 and reported != "H265":
        warnings.append(
            f"profile {token}: the camera reports {reported or 'no codec'} through ONVIF Media1 but marks the stream "
            f"{marked} (vendor attribute encoding={marked!r}); recorded as H265"
        )
        return "H265"
    return reported


async def clean_stream_uri(
    uri: str | None, token: str, *, probed_host: str, lan_hosts: frozenset[str], guard: NetGuard, warnings: list[str]
) -> str | None:
    """The stream URI made registrable: no credentials, a real host, inside the allowed networks.

    ``lan_hosts`` are the addresses the camera gave for its services other than ``probed_host`` (it sits behind
    NAT): a stream on one of them is taken to be where the camera was reached.
    """
    if not uri:
        return None
    parts = urlsplit(uri.strip())
    if parts.scheme not in ("rtsp", "rtsps"):
        warnings.append(f"profile {token}: stream URI {parts.scheme}://... is not RTSP; skipped")
        return None
    host = parts.hostname or ""
    netloc = parts.netloc.rsplit("@", 1)[-1]
    if parts.username or parts.password:
        warnings.append(f"profile {token}: the camera put credentials into its stream URI; they were removed")
    if (host in ("", "0.0.0.0", "::", "localhost") or host in lan_hosts) and probed_host != host:
        port = f":{parts.port}" if parts.port else ""
        netloc = f"{bracket(probed_host)}{port}"
        warnings.append(f"profile {token}: the stream URI names host {host or '(none)'}; using {probed_host}")
    elif host != probed_host:
        try:
            await guard.resolve(host, parts.port or 554)
        except NetworkNotAllowed as exc:
            warnings.append(f"profile {token}: stream host refused: {exc}")
            return None
    clean = urlunsplit((parts.scheme, netloc, parts.path, parts.query, ""))
    try:
        return check_stream_url(clean)
    except ValueError as exc:
        warnings.append(f"profile {token}: stream URI {clean!r} unusable: {exc}")
        return None


def bracket(host: str) -> str:
    """``host`` as it goes into a URL (IPv6 addresses in brackets)."""
    return f"[{host}]" if ":" in host and not host.startswith("[") else host


def text(value: Any) -> str | None:
    """``value`` as stripped text; None when absent or blank."""
    if value is None:
        return None
    stripped = str(value).strip()
    return stripped or None


def to_int(value: Any) -> int | None:
    """``value`` as an int; None when absent or not a number."""
    try:
        return int(value) if value is not None else None
    except (TypeError, ValueError):
        return None


def to_float(value: Any) -> float | None:
    """``value`` as a float; None when absent or not a number."""
    try:
        return float(value) if value is not None else None
    except (TypeError, ValueError):
        return None
