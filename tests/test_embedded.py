"""The embedded Valkey: started when no URL is set, shared on one data directory, persistent."""

from __future__ import annotations

from pathlib import Path

import redis

from config.embedded import embedded_redis


def test_start_share_and_persist(tmp_path: Path) -> None:
    with embedded_redis(tmp_path) as url:
        client = redis.Redis.from_url(url)
        client.set("kept", "1")
        with embedded_redis(tmp_path) as shared:
            assert shared == url  # a second process on the same data directory shares the server
        assert client.ping()  # ... and leaving its block does not stop the owner's server
    with embedded_redis(tmp_path) as url:
        assert redis.Redis.from_url(url).get("kept") == b"1"  # the append-only file survived a restart
