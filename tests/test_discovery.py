"""WS-Discovery: parsing answers, and a real probe answered by ipycam inside a loopback-only network namespace.

The namespace has only ``lo`` (multicast routed onto it), so the probe and the camera's answer never reach
a real network. Where namespaces are not permitted the test is skipped, saying why.
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from ingest.discovery import DiscoveryError, interface_address, parse_probe_matches
from tests.ipycam_fixtures import IpyCam

REPO = Path(__file__).resolve().parent.parent
MATCH = b"""<?xml version="1.0" encoding="UTF-8"?>
<s:Envelope xmlns:s="http://www.w3.org/2003/05/soap-envelope" xmlns:a="http://schemas.xmlsoap.org/ws/2004/08/addressing"
 xmlns:d="http://schemas.xmlsoap.org/ws/2005/04/discovery"><s:Header><a:RelatesTo>urn:uuid:1</a:RelatesTo></s:Header>
<s:Body><d:ProbeMatches><d:ProbeMatch><a:EndpointReference><a:Address>urn:uuid:cam-7</a:Address></a:EndpointReference>
<d:Types>dn:NetworkVideoTransmitter</d:Types>
<d:Scopes>onvif://www.onvif.org/name/Gate%207 onvif://www.onvif.org/hardware/DS-2CD</d:Scopes>
<d:XAddrs>http://10.20.0.7/onvif/device_service http://[fd00::7]/onvif/device_service</d:XAddrs>
</d:ProbeMatch></d:ProbeMatches></s:Body></s:Envelope>"""


def test_probe_matches_are_parsed() -> None:
    [device] = parse_probe_matches(MATCH, "10.20.0.7", "urn:uuid:1")
    assert device.endpoint == "urn:uuid:cam-7" and device.onvif_address == "10.20.0.7:80"
    assert (device.scope("name"), device.scope("hardware"), device.scope("location")) == ("Gate 7", "DS-2CD", None)
    assert parse_probe_matches(MATCH, "10.20.0.7", "urn:uuid:other") == []  # an answer to someone else's probe
    assert parse_probe_matches(b"<not xml", "10.20.0.7") == []
    assert parse_probe_matches(b'<!DOCTYPE x [<!ENTITY a "b">]><x/>', "10.20.0.7") == []


def test_interfaces_are_checked() -> None:
    assert interface_address("lo") == "127.0.0.1"
    with pytest.raises(DiscoveryError, match="no network interface 'eth-nope'; this host has: lo"):
        interface_address("eth-nope")


def _ip(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["ip", *args], capture_output=True, text=True, timeout=10, check=False)


@pytest.fixture
def loopback_namespace() -> Iterator[str]:
    """A network namespace with only loopback, multicast routed onto it."""
    name = f"se-discovery-{os.getpid()}"
    try:
        made = _ip("netns", "add", name)
    except FileNotFoundError:
        pytest.skip("no `ip` command (iproute2): the discovery test needs a loopback-only network namespace")
    if made.returncode != 0:
        pytest.skip(f"network namespaces are not permitted here ({made.stderr.strip()}): discovery is not tested")
    try:
        for args in (("link", "set", "lo", "up"), ("link", "set", "lo", "multicast", "on")):
            assert _ip("-n", name, *args).returncode == 0
        assert _ip("-n", name, "route", "add", "224.0.0.0/4", "dev", "lo").returncode == 0
        links = _ip("-n", name, "-o", "link").stdout.strip().splitlines()
        assert len(links) == 1 and ": lo:" in links[0]
        yield name
    finally:
        _ip("netns", "del", name)


def test_discover_finds_ipycam_inside_a_loopback_only_namespace(
    need_ipycam: None, ipycam_clip: Path, loopback_namespace: str, tmp_path: Path
) -> None:
    env = {k: v for k, v in os.environ.items() if not k.startswith("SHARPEYES_")}
    env["SHARPEYES_DATA_DIR"] = str(tmp_path / "data")
    sheet = tmp_path / "found.csv"
    with IpyCam(ipycam_clip, discovery=True, netns=loopback_namespace, name="Gate-Camera-7") as cam:
        argv = [sys.executable, "-m", "sharpeyes", "cameras", "discover", "--interface", "lo", "--timeout", "2"]
        found = subprocess.run(
            ["ip", "netns", "exec", loopback_namespace, *argv, "--json", "--csv", str(sheet)],
            capture_output=True,
            text=True,
            timeout=60,
            env=env,
            cwd=REPO,
            check=False,
        )
    assert found.returncode == 0, found.stderr
    [device] = json.loads(found.stdout)
    assert device["onvif_address"] == f"127.0.0.1:{cam.onvif_port}"
    assert device["name"] == "Gate-Camera-7" and device["sender"] == "127.0.0.1"
    assert device["endpoint"].startswith("urn:uuid:")
    lines = sheet.read_text().splitlines()
    assert lines == [
        "external_id,name,lat,lon,onvif_url,username,password",
        f",Gate-Camera-7,,,127.0.0.1:{cam.onvif_port},,",
    ]
    assert "fill in external_id, name, lat, lon" in found.stderr
