"""A loopback HTTP server that answers ONVIF SOAP requests with the stored replies of ``tests/data/onvif/<quirk>``.

Used only for camera quirks ipycam cannot produce (see that folder's README); the client side under test
(onvif-zeep-async, zeep, aiohttp and the probe) runs for real against it. ``<Operation>.xml`` is the reply
(recorded from a real device in the device folders), ``<Operation>.composed.xml`` a hand-written reply for an
operation the recording of that device does not include, and ``_fault.xml``/``_fault.composed.xml`` the reply to
every other operation.
"""

from __future__ import annotations

import http.server
import json
import threading
import time
import xml.etree.ElementTree as ET
from pathlib import Path
from string import Template
from types import TracebackType
from typing import Any

DATA = Path(__file__).resolve().parent / "data" / "onvif"
_NOT_SUPPORTED = (
    '<?xml version="1.0" encoding="UTF-8"?><SOAP-ENV:Envelope xmlns:SOAP-ENV="http://www.w3.org/2003/05/soap-envelope"'
    ' xmlns:ter="http://www.onvif.org/ver10/error"><SOAP-ENV:Body><SOAP-ENV:Fault><SOAP-ENV:Code><SOAP-ENV:Value>'
    "SOAP-ENV:Receiver</SOAP-ENV:Value><SOAP-ENV:Subcode><SOAP-ENV:Value>ter:ActionNotSupported</SOAP-ENV:Value>"
    "</SOAP-ENV:Subcode></SOAP-ENV:Code><SOAP-ENV:Reason><SOAP-ENV:Text>Action not supported</SOAP-ENV:Text>"
    "</SOAP-ENV:Reason></SOAP-ENV:Fault></SOAP-ENV:Body></SOAP-ENV:Envelope>"
)


class OnvifReplay:
    """Serves one quirk folder on 127.0.0.1; ``operations`` lists the SOAP operations asked for, in order."""

    def __init__(self, quirk: str) -> None:
        self.folder = DATA / quirk
        if not self.folder.is_dir():
            raise FileNotFoundError(self.folder)
        camera = self.folder / "_camera.json"
        self.clock_offset_s = float(json.loads(camera.read_text()).get("clock_offset_s", 0)) if camera.exists() else 0.0
        self.operations: list[str] = []
        replay = self

        class Handler(http.server.BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.1"

            def do_POST(self) -> None:
                body = self.rfile.read(int(self.headers.get("Content-Length", "0")))
                status, headers, reply = replay.answer(body, self.server.server_address)  # type: ignore[arg-type]
                self.send_response(status)
                for name, value in headers.items():
                    self.send_header(name, value)
                self.send_header("Content-Length", str(len(reply)))
                self.end_headers()
                self.wfile.write(reply)

            def date_time_string(self, timestamp: float | None = None) -> str:
                # The camera's HTTP Date comes from its own (possibly wrong) clock.
                return super().date_time_string((timestamp or time.time()) + replay.clock_offset_s)

            def log_message(self, *args: Any) -> None:
                pass

        self._server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.port: int = self._server.server_address[1]
        self._thread = threading.Thread(target=self._server.serve_forever, daemon=True)
        self._thread.start()

    @property
    def onvif_url(self) -> str:
        """The device service URL."""
        return f"http://127.0.0.1:{self.port}/onvif/device_service"

    def answer(self, request: bytes, address: tuple[str, int]) -> tuple[int, dict[str, str], bytes]:
        """Status, headers and body for one request."""
        operation, profile = _operation(request)
        self.operations.append(operation)
        meta: dict[str, Any] = {}
        for name in ("_all.json", f"{operation}.json"):
            path = self.folder / name
            if path.exists():
                meta.update(json.loads(path.read_text()))
        headers = {"Content-Type": meta.get("content_type", "application/soap+xml; charset=utf-8")}
        headers.update(meta.get("headers", {}))
        if "body" in meta:
            return int(meta.get("status", 200)), headers, str(meta["body"]).encode()
        # A recorded reply wins; ``*.composed.xml`` fills in what the recording of that device lacks.
        for name in (f"{operation}.xml", f"{operation}.composed.xml", "_fault.xml", "_fault.composed.xml"):
            path = self.folder / name
            if path.exists():
                # Decoded from bytes, not read as text: recorded replies keep their own line ends.
                text = _fill(path.read_bytes().decode(), address, profile, self.clock_offset_s)
                return int(meta.get("status", 200)), headers, text.encode()
        return 500, headers, _NOT_SUPPORTED.encode()

    def close(self) -> None:
        """Stop serving."""
        self._server.shutdown()
        self._server.server_close()

    def __enter__(self) -> OnvifReplay:
        return self

    def __exit__(
        self, exc_type: type[BaseException] | None, exc: BaseException | None, tb: TracebackType | None
    ) -> None:
        self.close()


def _operation(request: bytes) -> tuple[str, str]:
    root = ET.fromstring(request)
    body = root.find("{*}Body")
    first = next(iter(body)) if body is not None and len(body) else None
    if first is None:
        return "?", ""
    profile = first.findtext(".//{*}ProfileToken") or ""
    return first.tag.rsplit("}", 1)[-1], profile


def _fill(text: str, address: tuple[str, int], profile: str, offset_s: float) -> str:
    now = time.gmtime(time.time() + offset_s)
    return Template(text).safe_substitute(
        host=address[0],
        port=address[1],
        profile=profile,
        Y=now.tm_year,
        M=now.tm_mon,
        D=now.tm_mday,
        h=now.tm_hour,
        m=now.tm_min,
        s=now.tm_sec,
    )
