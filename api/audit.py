"""The audit stream: who changed or viewed what, when, with the before and after of every change.

Registry changes are appended inside the same Redis transaction as the change itself (``add_audit`` on
the transaction's pipeline), so a change is never stored unaudited nor audited unstored.
"""

from __future__ import annotations

import json
import time
from typing import Any, cast

import redis

AUDIT_STREAM = "sharpeyes:audit"
# About a year of a busy command center's changes and snapshot views; older entries are trimmed.
AUDIT_MAXLEN = 5_000_000


def _entry(actor: str, action: str, target: str, before: Any, after: Any) -> dict[Any, Any]:
    entry = {"at": time.time(), "actor": actor, "action": action, "target": target, "before": before, "after": after}
    return {"entry": json.dumps(entry, default=str)}


def add_audit(
    pipe: redis.Redis | redis.client.Pipeline,
    actor: str,
    action: str,
    target: str,
    before: Any = None,
    after: Any = None,
) -> None:
    """Queue one audit entry on ``pipe`` (a transaction's pipeline, or a client for an immediate write)."""
    pipe.xadd(AUDIT_STREAM, _entry(actor, action, target, before, after), maxlen=AUDIT_MAXLEN, approximate=True)


def audit(client: redis.Redis, actor: str, action: str, target: str, before: Any = None, after: Any = None) -> None:
    """Append one audit entry. Raises ``redis.RedisError``: an unaudited change must not look successful."""
    add_audit(client, actor, action, target, before, after)


def read_audit(
    client: redis.Redis,
    count: int,
    before_id: str | None,
    *,
    target: str | None = None,
    action_prefix: str | None = None,
    scan_limit: int = 100_000,
) -> list[dict[str, Any]]:
    """The newest ``count`` entries older than ``before_id`` (for paging backwards), optionally only those about
    ``target`` or whose action starts with ``action_prefix``; filtering stops after ``scan_limit`` entries."""
    end = f"({before_id}" if before_id else "+"
    out: list[dict[str, Any]] = []
    scanned = 0
    filtered = target is not None or action_prefix is not None
    while len(out) < count and scanned < scan_limit:
        page = count if not filtered else 1000
        rows = cast(
            list[tuple[bytes, dict[bytes, bytes]]], client.xrevrange(AUDIT_STREAM, max=end, min="-", count=page)
        )
        if not rows:
            break
        scanned += len(rows)
        for sid, fields in rows:
            entry = {"id": sid.decode(), **json.loads(fields[b"entry"])}
            if target is not None and entry.get("target") != target:
                continue
            if action_prefix is not None and not str(entry.get("action", "")).startswith(action_prefix):
                continue
            out.append(entry)
            if len(out) == count:
                break
        end = f"({rows[-1][0].decode()}"
    return out
