"""The audit stream: who changed or viewed what, when, with the before and after of every change."""

from __future__ import annotations

import json
import time
from typing import Any, cast

import redis

AUDIT_STREAM = "sharpeyes:audit"
# About a year of a busy command center's changes and snapshot views; older entries are trimmed.
AUDIT_MAXLEN = 5_000_000


def audit(client: redis.Redis, actor: str, action: str, target: str, before: Any = None, after: Any = None) -> None:
    """Append one audit entry. Raises ``redis.RedisError``: an unaudited change must not look successful."""
    entry = {
        "at": time.time(),
        "actor": actor,
        "action": action,
        "target": target,
        "before": before,
        "after": after,
    }
    client.xadd(AUDIT_STREAM, {"entry": json.dumps(entry, default=str)}, maxlen=AUDIT_MAXLEN, approximate=True)


def read_audit(client: redis.Redis, count: int, before_id: str | None) -> list[dict[str, Any]]:
    """The newest ``count`` entries, older than ``before_id`` when given (for paging backwards)."""
    end = f"({before_id}" if before_id else "+"
    rows = cast(list[tuple[bytes, dict[bytes, bytes]]], client.xrevrange(AUDIT_STREAM, max=end, min="-", count=count))
    return [{"id": sid.decode(), **json.loads(fields[b"entry"])} for sid, fields in rows]
