"""The probe's network guard: only listed networks, resolved once, metadata services never."""

from __future__ import annotations

import asyncio

import pytest

from ingest.netguard import NetGuard, NetworkNotAllowed, parse_networks


def resolve(guard: NetGuard, host: str) -> str:
    return asyncio.run(guard.resolve(host, 80))


def test_parse_the_setting() -> None:
    nets = parse_networks(" 10.20.0.0/16, 192.168.7.9 ,fd00::/8,")
    assert [str(n) for n in nets] == ["10.20.0.0/16", "192.168.7.9/32", "fd00::/8"]
    with pytest.raises(ValueError, match=r"probe_allowed_networks: '10.20.0.1/16' is not a network: .*host bits"):
        parse_networks("10.20.0.1/16")


def test_addresses_inside_pass_and_outside_are_refused_with_the_fix() -> None:
    guard = NetGuard.from_setting("10.20.0.0/16")
    assert resolve(guard, "10.20.3.4") == "10.20.3.4"
    with pytest.raises(NetworkNotAllowed, match=r"10\.21\.0\.1 is outside .*\(10\.20\.0\.0/16\).*ALLOWED_NETWORKS"):
        resolve(guard, "10.21.0.1")
    with pytest.raises(NetworkNotAllowed, match="outside"):
        resolve(guard, "[fd00::1]")


def test_names_are_resolved_and_every_address_checked() -> None:
    assert resolve(NetGuard.from_setting("127.0.0.0/8"), "localhost") == "127.0.0.1"
    with pytest.raises(NetworkNotAllowed, match=r"host 'localhost' resolves to 127\.0\.0\.1, which is refused"):
        resolve(NetGuard.from_setting("10.0.0.0/8"), "localhost")
    with pytest.raises(NetworkNotAllowed, match="cannot be resolved"):
        resolve(NetGuard.from_setting("10.0.0.0/8"), "no-such-camera.invalid")


def test_metadata_and_unspecified_addresses_are_never_probed() -> None:
    guard = NetGuard.from_setting("0.0.0.0/0")
    for host in ("169.254.169.254", "0.0.0.0", "239.255.255.250"):
        with pytest.raises(NetworkNotAllowed, match="never probed"):
            resolve(guard, host)


def test_empty_setting_turns_probing_off() -> None:
    with pytest.raises(NetworkNotAllowed, match="probing is off"):
        resolve(NetGuard.from_setting(""), "10.0.0.1")
