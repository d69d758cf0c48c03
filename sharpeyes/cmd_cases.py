"""`sharpeyes cases ...`: the reference case-queue consumer, its status, and its dead letters."""

from __future__ import annotations

import argparse
import os
import signal
import sys
import threading
from types import FrameType
from typing import Any, cast

import redis

from alerts.consumer import (
    CaseConsumer,
    ConsumerConfig,
    Delivery,
    StreamDelivery,
    WebhookDelivery,
    dead_letter_stream,
    default_consumer_name,
    dump_json,
    group_status,
)
from config.settings import Settings
from sharpeyes.common import check_redis, redis_url

CONSUME_HELP = """\
Read sharpeyes:incidents as a member of consumer group NAME and hand each incident to the webhook (HTTP POST
of the incident's JSON, header Idempotency-Key), or print it as one JSON line when no --webhook is given.
An incident is acknowledged (XACK) only after the endpoint answered 2xx (or 409: it had it already). Failed
ones are retried every --retry-s seconds; after --max-tries they move to sharpeyes:incidents:dead:NAME, and
those that failed for a transient reason (refused, timeout, 5xx, 429) are redriven automatically once the
endpoint answers again. Several consumers may share a group. See docs/case-queue.md for the contract.
"""


def _delivery(settings: Settings, args: argparse.Namespace) -> Delivery:
    if not args.webhook:
        return StreamDelivery(sys.stdout)
    token = None
    if args.webhook_token_env:
        token = os.environ.get(args.webhook_token_env)
        if not token:
            raise SystemExit(f"error: --webhook-token-env {args.webhook_token_env}: that variable is not set")
    timeout = args.timeout if args.timeout is not None else settings.cases_webhook_timeout_s
    try:
        return WebhookDelivery(args.webhook, timeout, token)
    except ValueError as exc:
        raise SystemExit(f"error: --webhook: {exc}") from None


def _config(settings: Settings, args: argparse.Namespace) -> ConsumerConfig:
    try:
        return ConsumerConfig(
            group=args.group,
            consumer=args.consumer or default_consumer_name(),
            max_tries=args.max_tries if args.max_tries is not None else settings.cases_max_tries,
            retry_s=args.retry_s if args.retry_s is not None else settings.cases_retry_s,
            start="0" if getattr(args, "start", "all") == "all" else "$",
        )
    except ValueError as exc:
        raise SystemExit(f"error: {exc}") from None


def cmd_consume(settings: Settings, args: argparse.Namespace) -> int:
    """Run the consumer until Ctrl-C or SIGTERM."""
    delivery = _delivery(settings, args)
    config = _config(settings, args)
    with redis_url(settings) as url:
        check_redis(url)
        client = redis.Redis.from_url(url, socket_timeout=30)
        consumer = CaseConsumer(client, delivery, config)
        stop = threading.Event()

        def _stop(signum: int, frame: FrameType | None) -> None:
            stop.set()

        signal.signal(signal.SIGTERM, _stop)
        signal.signal(signal.SIGINT, _stop)
        target = args.webhook or "stdout"
        print(
            f"sharpeyes cases: group {config.group!r} as {config.consumer!r} -> {target} "
            f"(max {config.max_tries} tries, retry after {config.retry_s:g} s); Ctrl-C stops",
            file=sys.stderr,
            flush=True,
        )
        consumer.run(stop)
        s = consumer.stats
        print(
            f"sharpeyes cases: stopped; delivered {s.delivered}, dead-lettered {s.dead_lettered}, "
            f"redriven {s.redriven}",
            file=sys.stderr,
        )
    return 0


def cmd_status(settings: Settings, args: argparse.Namespace) -> int:
    """Print each consumer group's lag, pending count and dead letters."""
    with redis_url(settings) as url:
        check_redis(url)
        rows = group_status(redis.Redis.from_url(url))
    if args.json:
        print(dump_json(rows))
        return 0
    if not rows:
        print("no consumer groups on sharpeyes:incidents yet (start one: sharpeyes cases consume --group NAME)")
        return 0
    print(f"{'group':<24} {'consumers':>9} {'lag':>8} {'pending':>8} {'dead':>6}  last delivered")
    for r in rows:
        lag = "?" if r["lag"] is None else str(r["lag"])
        print(
            f"{r['group']:<24} {r['consumers']:>9} {lag:>8} {r['pending']:>8} {r['dead_letters']:>6}  "
            f"{r['last_delivered']}"
        )
    return 0


def cmd_redrive(settings: Settings, args: argparse.Namespace) -> int:
    """Deliver a group's dead letters again (all of them, not only transient failures)."""
    delivery = _delivery(settings, args)
    config = _config(settings, args)
    with redis_url(settings) as url:
        check_redis(url)
        consumer = CaseConsumer(redis.Redis.from_url(url), delivery, config)
        sent = consumer.redrive(transient_only=False)
        left = redis.Redis.from_url(url).xlen(dead_letter_stream(config.group))
    print(f"redrove {sent} incident(s); {left} dead letter(s) left in {dead_letter_stream(config.group)}")
    return 0 if left == 0 else 1


def cmd_dead(settings: Settings, args: argparse.Namespace) -> int:
    """List a group's dead letters, oldest first."""
    with redis_url(settings) as url:
        check_redis(url)
        rows = cast(
            list[tuple[bytes, dict[bytes, bytes]]],
            redis.Redis.from_url(url).xrange(dead_letter_stream(args.group), count=args.limit),
        )
    for did, fields in rows:
        f = {k.decode(): v.decode("utf-8", "replace") for k, v in fields.items()}
        print(
            f"{did.decode()}  source {f.get('source_id')}  tries {f.get('tries')}  "
            f"{'transient' if f.get('transient') == '1' else 'permanent'}  {f.get('error')}"
        )
    return 0


def _add_delivery_args(p: argparse.ArgumentParser) -> None:
    p.add_argument("--group", required=True, metavar="NAME", help="consumer group name (one per case system)")
    p.add_argument("--webhook", metavar="URL", help="POST incidents here (default: print JSON lines to stdout)")
    p.add_argument(
        "--webhook-token-env",
        metavar="VAR",
        help="send 'Authorization: Bearer $VAR' (the token is read from this environment variable)",
    )
    p.add_argument(
        "--timeout", type=float, metavar="S", help="HTTP timeout (default: SHARPEYES_CASES_WEBHOOK_TIMEOUT_S)"
    )
    p.add_argument("--consumer", metavar="NAME", help="this consumer's name in the group (default: host-pid)")
    p.add_argument(
        "--max-tries", type=int, metavar="N", help="tries before dead-lettering (default: SHARPEYES_CASES_MAX_TRIES)"
    )
    p.add_argument(
        "--retry-s",
        type=float,
        metavar="S",
        help="retry an unacknowledged incident after S seconds (default: SHARPEYES_CASES_RETRY_S)",
    )


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register this module's subcommands (each sets ``func(settings, args) -> int``)."""
    cases = sub.add_parser("cases", help="the case queue: reference consumer, status, dead letters")
    csub = cases.add_subparsers(dest="cases_cmd", required=True, metavar="ACTION")

    consume = csub.add_parser(
        "consume",
        help="forward incidents to a webhook (or stdout), at least once, with retries and dead letters",
        description=CONSUME_HELP,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    _add_delivery_args(consume)
    consume.add_argument(
        "--start",
        choices=("all", "new"),
        default="all",
        help="where a NEW group starts: every incident still retained (all, default) or only new ones",
    )
    consume.set_defaults(func=cmd_consume)

    status = csub.add_parser("status", help="each consumer group's lag, pending incidents and dead letters")
    status.add_argument("--json", action="store_true", help="machine-readable output")
    status.set_defaults(func=cmd_status)

    redrive = csub.add_parser("redrive", help="deliver a group's dead letters again (exit 1 if some remain)")
    _add_delivery_args(redrive)
    redrive.set_defaults(func=cmd_redrive)

    dead = csub.add_parser("dead", help="list a group's dead letters with their errors")
    dead.add_argument("--group", required=True, metavar="NAME", help="consumer group name")
    dead.add_argument("--limit", type=int, default=100, help="at most this many (default 100)")
    dead.set_defaults(func=cmd_dead)
