"""Where the reference consumer hands incidents: a webhook (HTTP POST with ``Idempotency-Key``) or a stream of
JSON lines; and how one stream entry becomes an :class:`Incident` (or is refused as a poison message).

The consumer (``alerts/consumer.py``) owns the Redis side: reading, acknowledging, retries and dead letters.
"""

from __future__ import annotations

import sys
import urllib.error
import urllib.request
from dataclasses import dataclass
from typing import Protocol, TextIO

from pydantic import ValidationError

from alerts.models import Alert

# HTTP statuses worth retrying: the case system is busy or restarting, not refusing this incident.
_TRANSIENT_STATUS = frozenset({408, 425, 429, 500, 502, 503, 504})


class DeliveryError(Exception):
    """The endpoint did not take the incident; ``transient`` when trying again later may work."""

    def __init__(self, message: str, transient: bool) -> None:
        super().__init__(message)
        self.transient = transient


@dataclass(frozen=True, slots=True)
class Incident:
    """One entry of the incidents stream, as read."""

    stream_id: str
    idempotency_key: str
    payload: bytes
    alert: Alert


class Delivery(Protocol):
    """Where incidents go."""

    def deliver(self, incident: Incident) -> None:
        """Hand over one incident; raise :class:`DeliveryError` if it was not accepted."""


class WebhookDelivery:
    """POST each incident's JSON to ``url`` with ``Idempotency-Key``; 2xx and 409 count as accepted."""

    def __init__(self, url: str, timeout_s: float, token: str | None = None) -> None:
        if not url.startswith(("http://", "https://")):
            raise ValueError(f"webhook URL {url!r} must start with http:// or https://")
        self.url = url
        self.timeout_s = timeout_s
        self._token = token

    def deliver(self, incident: Incident) -> None:
        """POST the incident."""
        headers = {
            "Content-Type": "application/json",
            "Idempotency-Key": incident.idempotency_key,
            "X-Sharpeyes-Stream-Id": incident.stream_id,
            "X-Sharpeyes-Schema-Version": str(incident.alert.schema_version),
            "User-Agent": "sharpeyes-cases/1",
        }
        if self._token:
            headers["Authorization"] = f"Bearer {self._token}"
        request = urllib.request.Request(self.url, data=incident.payload, headers=headers, method="POST")
        try:
            with urllib.request.urlopen(request, timeout=self.timeout_s) as response:
                response.read(65536)
        except urllib.error.HTTPError as exc:
            if exc.code == 409:  # the case system has it already: the idempotency key did its job
                return
            raise DeliveryError(f"HTTP {exc.code} {exc.reason}", exc.code in _TRANSIENT_STATUS) from None
        except (urllib.error.URLError, OSError) as exc:
            reason = exc.reason if isinstance(exc, urllib.error.URLError) else exc
            raise DeliveryError(f"{self.url}: {reason}", transient=True) from None


class StreamDelivery:
    """Write each incident as one JSON line (stdout by default), for piping into another tool."""

    def __init__(self, out: TextIO = sys.stdout) -> None:
        self._out = out

    def deliver(self, incident: Incident) -> None:
        """Print the incident."""
        try:
            self._out.write(incident.payload.decode() + "\n")
            self._out.flush()
        except OSError as exc:
            raise DeliveryError(f"cannot write: {exc}", transient=True) from None


def parse_incident(stream_id: str, fields: dict[bytes, bytes]) -> Incident:
    """Validate one stream entry. Raises ``ValueError`` naming what is wrong (a poison message)."""
    payload = fields.get(b"alert")
    if payload is None:
        names = sorted(k.decode("utf-8", "replace") for k in fields)
        raise ValueError(f"entry {stream_id} has no 'alert' field (fields: {names})")
    try:
        alert = Alert.model_validate_json(payload)
    except ValidationError as exc:
        raise ValueError(f"entry {stream_id} is not a valid alert: {exc.error_count()} error(s): {exc}") from None
    return Incident(stream_id, alert.idempotency_key, payload, alert)
