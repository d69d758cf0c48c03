"""Helpers every subcommand module shares."""

from __future__ import annotations

from collections.abc import Iterator
from contextlib import contextmanager

import redis

from config.embedded import embedded_redis
from config.settings import Settings


@contextmanager
def redis_url(settings: Settings) -> Iterator[str]:
    """The configured Redis URL, or the embedded Valkey's (started if needed) for the block's duration."""
    if settings.redis_url is not None:
        yield settings.redis_url
    else:
        with embedded_redis(settings.data_dir) as url:
            yield url


def check_redis(url: str) -> None:
    """Exit with a clear message when Redis cannot be reached."""
    try:
        redis.Redis.from_url(url, socket_connect_timeout=3).ping()
    except redis.RedisError as exc:
        raise SystemExit(f"error: cannot reach Redis at {url}: {exc}. Check SHARPEYES_REDIS_URL.") from None
