"""WS-Discovery: ask the cameras on one network segment to announce themselves (ONVIF's way of finding devices).

A Probe for ``NetworkVideoTransmitter`` devices goes to 239.255.255.250:3702 from one named interface,
with TTL 1 so that it never leaves the segment; ProbeMatches answering our message id are collected for
``timeout_s``. Nothing here runs by itself: ``sharpeyes cameras discover --interface IF`` is the only caller,
and it lists what answered for the operator to confirm (nothing is registered).
"""

from __future__ import annotations

import fcntl
import socket
import struct
import time
import uuid
import xml.etree.ElementTree as ET
from dataclasses import dataclass
from urllib.parse import unquote, urlsplit

MULTICAST_GROUP = "239.255.255.250"
WSD_PORT = 3702
SIOCGIFADDR = 0x8915  # Linux ioctl: an interface's IPv4 address
MAX_DATAGRAM = 65_535
_PROBE = (
    '<?xml version="1.0" encoding="UTF-8"?>'
    '<e:Envelope xmlns:e="http://www.w3.org/2003/05/soap-envelope" '
    'xmlns:w="http://schemas.xmlsoap.org/ws/2004/08/addressing" '
    'xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery" '
    'xmlns:dn="http://www.onvif.org/ver10/network/wsdl">'
    "<e:Header><w:MessageID>{message_id}</w:MessageID>"
    '<w:To e:mustUnderstand="true">urn:schemas-xmlsoap-org:ws:2005:04:discovery</w:To>'
    '<w:Action e:mustUnderstand="true">http://schemas.xmlsoap.org/ws/2005/04/discovery/Probe</w:Action>'
    "</e:Header><e:Body><d:Probe><d:Types>dn:NetworkVideoTransmitter</d:Types></d:Probe></e:Body></e:Envelope>"
)


class DiscoveryError(OSError):
    """The interface does not exist, has no IPv4 address, or cannot send multicast."""


@dataclass(frozen=True, slots=True)
class DiscoveredDevice:
    """One device that answered: where it says its ONVIF service is, and what its scopes call it."""

    endpoint: str
    sender: str
    xaddrs: tuple[str, ...]
    types: tuple[str, ...]
    scopes: tuple[str, ...]

    def scope(self, kind: str) -> str | None:
        """The value of the ``onvif://www.onvif.org/<kind>/...`` scope, URL-decoded (e.g. name, hardware)."""
        prefix = f"onvif://www.onvif.org/{kind}/"
        for scope in self.scopes:
            if scope.lower().startswith(prefix.lower()):
                return unquote(scope[len(prefix) :]) or None
        return None

    @property
    def onvif_address(self) -> str | None:
        """host:port of the first HTTP service address, as ``onvif_url`` takes it."""
        for xaddr in self.xaddrs:
            parts = urlsplit(xaddr)
            if parts.scheme == "http" and parts.hostname:
                host = f"[{parts.hostname}]" if ":" in parts.hostname else parts.hostname
                return f"{host}:{parts.port or 80}"
        return None


def interface_address(interface: str) -> str:
    """The IPv4 address of ``interface`` (e.g. eth1)."""
    try:
        socket.if_nametoindex(interface)
    except OSError:
        names = ", ".join(name for _, name in socket.if_nameindex())
        raise DiscoveryError(f"no network interface {interface!r}; this host has: {names}") from None
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM) as sock:
        try:
            packed = fcntl.ioctl(sock.fileno(), SIOCGIFADDR, struct.pack("256s", interface.encode()[:15]))
        except OSError:
            raise DiscoveryError(f"interface {interface!r} has no IPv4 address") from None
    return socket.inet_ntoa(packed[20:24])


def discover(interface: str, timeout_s: float = 3.0) -> list[DiscoveredDevice]:
    """Send one WS-Discovery Probe out of ``interface`` and return every distinct device that answers in time."""
    address = interface_address(interface)
    message_id = f"urn:uuid:{uuid.uuid4()}"
    found: dict[str, DiscoveredDevice] = {}
    with socket.socket(socket.AF_INET, socket.SOCK_DGRAM, socket.IPPROTO_UDP) as sock:
        try:
            sock.bind((address, 0))
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_IF, socket.inet_aton(address))
            # TTL 1: the probe stays on this segment, where ONVIF discovery is meant to work.
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_TTL, 1)
            sock.setsockopt(socket.IPPROTO_IP, socket.IP_MULTICAST_LOOP, 1)
            sock.sendto(_PROBE.format(message_id=message_id).encode(), (MULTICAST_GROUP, WSD_PORT))
        except OSError as exc:
            raise DiscoveryError(f"cannot send a multicast probe on {interface} ({address}): {exc}") from None
        deadline = time.monotonic() + timeout_s
        while (left := deadline - time.monotonic()) > 0:
            sock.settimeout(left)
            try:
                data, sender = sock.recvfrom(MAX_DATAGRAM)
            except TimeoutError:
                break
            for device in parse_probe_matches(data, sender[0], message_id):
                found.setdefault(device.endpoint, device)
    return sorted(found.values(), key=lambda d: (d.sender, d.endpoint))


def parse_probe_matches(data: bytes, sender: str, message_id: str | None = None) -> list[DiscoveredDevice]:
    """The devices in a ProbeMatches datagram; others (not answering ``message_id``, malformed) give none."""
    if b"<!DOCTYPE" in data[:1024].upper():
        return []  # no DTDs from the network: they are the door to entity expansion attacks
    try:
        root = ET.fromstring(data)
    except ET.ParseError:
        return []
    relates = root.findtext(".//{*}RelatesTo")
    if message_id is not None and (relates or "").strip() != message_id:
        return []
    devices = []
    for match in root.iter():
        if not match.tag.endswith("}ProbeMatch"):
            continue
        endpoint = (match.findtext(".//{*}EndpointReference/{*}Address") or "").strip()
        xaddrs = tuple((match.findtext("{*}XAddrs") or "").split())
        if not endpoint and not xaddrs:
            continue
        devices.append(
            DiscoveredDevice(
                endpoint=endpoint or xaddrs[0],
                sender=sender,
                xaddrs=xaddrs,
                types=tuple((match.findtext("{*}Types") or "").split()),
                scopes=tuple((match.findtext("{*}Scopes") or "").split()),
            )
        )
    return devices
