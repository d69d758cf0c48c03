"""``sharpeyes``: start the services, run the demo; the other commands are registered from cmd_*. Wiring only."""

from __future__ import annotations

import argparse
import logging
import os
import signal
import sys
from collections.abc import Sequence
from pathlib import Path

import redis
import uvicorn

from api.app import create_app
from api.auth import Role, TokenStore
from config.settings import Settings, SettingsError, load_settings
from ingest.worker import WorkerPool
from sharpeyes import cmd_cameras, cmd_cases, cmd_detect, cmd_users
from sharpeyes.common import check_redis, redis_url

log = logging.getLogger("sharpeyes")

EPILOG = """\
Settings come from SHARPEYES_* environment variables and an optional TOML file (--config or
SHARPEYES_CONFIG); `sharpeyes settings` lists them all with their defaults. With SHARPEYES_REDIS_URL
unset, an embedded Valkey server is started under the data directory.
"""


def _serve(settings: Settings, url: str, pool: WorkerPool | None) -> None:
    app = create_app(settings, url)
    base = f"http://{settings.api_host}:{settings.api_port}"
    print(f"sharpeyes API:   {base}/docs", flush=True)
    print(f"alert wall:      {base}/wall#token=<viewer token>", flush=True)
    server = uvicorn.Server(uvicorn.Config(app, host=settings.api_host, port=settings.api_port, log_level="warning"))
    try:
        server.run()
    finally:
        if pool is not None:
            pool.stop()


def cmd_run(settings: Settings, args: argparse.Namespace) -> int:
    """API and workers in one command on one machine."""
    with redis_url(settings) as url:
        check_redis(url)
        pool = WorkerPool(settings, url)
        pool.start()
        _serve(settings, url, pool)
    return 0


def cmd_api(settings: Settings, args: argparse.Namespace) -> int:
    """The API and the wall only."""
    with redis_url(settings) as url:
        check_redis(url)
        _serve(settings, url, None)
    return 0


def _interrupt(signum: int, frame: object) -> None:
    raise KeyboardInterrupt


def cmd_worker(settings: Settings, args: argparse.Namespace) -> int:
    """Worker processes only."""
    with redis_url(settings) as url:
        check_redis(url)
        pool = WorkerPool(settings, url)
        pool.start()
        print(f"sharpeyes: {settings.worker_procs} worker process(es) on {url}; Ctrl-C stops them", flush=True)
        # SIGTERM (systemd, Kubernetes) stops as gracefully as Ctrl-C: open events end, the outbox drains.
        signal.signal(signal.SIGTERM, _interrupt)
        try:
            pool.wait()
        except KeyboardInterrupt:
            pass
        finally:
            pool.stop()
    return 0


def cmd_demo(settings: Settings, args: argparse.Namespace) -> int:
    """The whole system on demo cameras, with a viewer token for the wall."""
    from ingest.demo import demo_specs, install_demo
    from ingest.registry import CameraRegistry

    with redis_url(settings) as url:
        check_redis(url)
        client = redis.Redis.from_url(url)
        print("preparing demo cameras (the first run encodes the synthetic clips)...", flush=True)
        specs = demo_specs(args.clips, settings.data_dir / "demo")
        ids = install_demo(CameraRegistry(client), specs)
        store = TokenStore(client)
        tokens = {}
        for name, role in (("demo-wall", Role.VIEWER), ("demo-admin", Role.ADMIN)):
            store.revoke(name)
            tokens[role] = store.create(name, role)
        base = f"http://{settings.api_host}:{settings.api_port}"
        print(f"\n{len(ids)} demo cameras registered: {', '.join(ids)}")
        print(f"\n  alert wall:  {base}/wall#token={tokens[Role.VIEWER]}")
        print(f"  API docs:    {base}/docs   (admin token: {tokens[Role.ADMIN]})")
        print(f"  Redis:       {url}")
        print("\nAlerts appear within a minute. Ctrl-C stops everything.\n", flush=True)
        pool = WorkerPool(settings, url)
        pool.start()
        _serve(settings, url, pool)
    return 0


def cmd_settings(settings: Settings, args: argparse.Namespace) -> int:
    """Print every setting, its environment variable, current value and meaning."""
    for name, field in Settings.model_fields.items():
        print(f"SHARPEYES_{name.upper():<26} = {getattr(settings, name)!s:<14} {field.description or ''}")
    return 0


def build_parser() -> argparse.ArgumentParser:
    """The argument parser of every subcommand."""
    parser = argparse.ArgumentParser(
        prog="sharpeyes",
        description="City-scale camera ingest, motion detection and alerting.",
        epilog=EPILOG,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("--config", type=Path, help="TOML settings file (default: $SHARPEYES_CONFIG)")
    parser.add_argument("-v", "--verbose", action="store_true", help="debug logging")
    sub = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")

    run = sub.add_parser("run", help="API and workers together on this machine")
    run.add_argument("--procs", type=int, help="worker processes (default: SHARPEYES_WORKER_PROCS or 1)")
    run.set_defaults(func=cmd_run)

    api = sub.add_parser("api", help="the HTTP API and the alert wall")
    api.set_defaults(func=cmd_api)

    worker = sub.add_parser("worker", help="worker processes that watch the cameras")
    worker.add_argument("--procs", type=int, help="worker processes (default: SHARPEYES_WORKER_PROCS or 1)")
    worker.set_defaults(func=cmd_worker)

    cmd_users.add_commands(sub)  # users and tokens

    demo = sub.add_parser("demo", help="run everything on demo cameras and print the wall's URL")
    demo.add_argument("--clips", type=Path, default=Path("demo"), help="folder of the committed demo clips")
    demo.set_defaults(func=cmd_demo)

    settings = sub.add_parser("settings", help="list all settings with their current values")
    settings.set_defaults(func=cmd_settings)

    cmd_detect.add_commands(sub)
    cmd_cameras.add_commands(sub)
    cmd_cases.add_commands(sub)
    return parser


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``sharpeyes`` console script."""
    args = build_parser().parse_args(argv)
    logging.basicConfig(
        level=logging.DEBUG if args.verbose else logging.INFO,
        format="%(asctime)s %(levelname)s %(name)s: %(message)s",
    )
    config_file = args.config or (Path(os.environ["SHARPEYES_CONFIG"]) if os.environ.get("SHARPEYES_CONFIG") else None)
    overrides = {"worker_procs": args.procs} if getattr(args, "procs", None) else {}
    try:
        settings = load_settings(config_file, **overrides)
    except SettingsError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    try:
        result: int = args.func(settings, args)
    except KeyboardInterrupt:
        # Uvicorn re-raises Ctrl-C after its graceful shutdown; everything was stopped by then.
        print("sharpeyes: stopped", file=sys.stderr)
        return 0
    return result
