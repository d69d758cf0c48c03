"""Which hosts an ONVIF probe may open connections to.

Probing connects to hosts that users name, so it is a way into the API host's networks (server-side
request forgery). The guard resolves the name once, refuses unless every address is inside the allowed
networks, and returns the address to connect to, so that a DNS answer cannot change between the check
and the connection.
"""

from __future__ import annotations

import asyncio
import ipaddress
import socket
from dataclasses import dataclass

IPNetwork = ipaddress.IPv4Network | ipaddress.IPv6Network
IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address

# Cloud instance metadata services hand out credentials: never reachable, whatever the allowlist says.
ALWAYS_REFUSED = frozenset({ipaddress.ip_address("169.254.169.254"), ipaddress.ip_address("fd00:ec2::254")})


class NetworkNotAllowed(ValueError):
    """The host is outside the networks probing may reach, or cannot be resolved."""


def parse_networks(text: str) -> tuple[IPNetwork, ...]:
    """Parse the comma-separated ``probe_allowed_networks`` setting; a bare address means just that host."""
    networks: list[IPNetwork] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        try:
            networks.append(ipaddress.ip_network(item, strict=True))
        except ValueError as exc:
            raise ValueError(f"probe_allowed_networks: {item!r} is not a network: {exc}") from None
    return tuple(networks)


@dataclass(frozen=True, slots=True)
class NetGuard:
    """Admits hosts whose every resolved address lies inside ``allowed``."""

    allowed: tuple[IPNetwork, ...]

    @classmethod
    def from_setting(cls, text: str) -> NetGuard:
        """The guard of the ``probe_allowed_networks`` setting."""
        return cls(parse_networks(text))

    def describe(self) -> str:
        """The allowed networks as the setting spells them."""
        return ",".join(str(n) for n in self.allowed) or "(none: probing is off)"

    def check_address(self, address: IPAddress) -> None:
        """Raise :class:`NetworkNotAllowed` unless ``address`` is allowed."""
        if address in ALWAYS_REFUSED or address.is_multicast or address.is_unspecified:
            raise NetworkNotAllowed(f"address {address} is never probed")
        if not any(address.version == net.version and address in net for net in self.allowed):
            if not self.allowed:
                raise NetworkNotAllowed(
                    "probing is off: no networks are allowed. List the camera networks in "
                    "SHARPEYES_PROBE_ALLOWED_NETWORKS (e.g. 10.20.0.0/16)"
                )
            raise NetworkNotAllowed(
                f"address {address} is outside the networks probing may reach ({self.describe()}): "
                "if it is a camera network, add it to SHARPEYES_PROBE_ALLOWED_NETWORKS"
            )

    async def resolve(self, host: str, port: int) -> str:
        """The one address to connect to for ``host``; every address the name resolves to must be allowed."""
        try:
            literal: IPAddress | None = ipaddress.ip_address(host.strip("[]"))
        except ValueError:
            literal = None
        if literal is not None:
            self.check_address(literal)
            return str(literal)
        loop = asyncio.get_running_loop()
        try:
            infos = await loop.getaddrinfo(host, port, type=socket.SOCK_STREAM)
        except socket.gaierror as exc:
            raise NetworkNotAllowed(f"host {host!r} cannot be resolved: {exc.strerror}") from None
        addresses = sorted({ipaddress.ip_address(info[4][0]) for info in infos}, key=str)
        if not addresses:
            raise NetworkNotAllowed(f"host {host!r} resolves to no address")
        for address in addresses:
            try:
                self.check_address(address)
            except NetworkNotAllowed as exc:
                raise NetworkNotAllowed(f"host {host!r} resolves to {address}, which is refused: {exc}") from None
        return str(addresses[0])
