"""`sharpeyes users ...` and `sharpeyes tokens ...`: who may use the API, and their tokens.

These talk to Redis directly, as the server's own user; every change is audited with the actor ``cli:<user>``.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any

import redis

from api.auth import Role, TokenStore, cli_actor, default_lifetime, format_time, parse_duration
from api.users import AccountError
from config.settings import Settings
from sharpeyes.common import check_redis, redis_url

ROLES = [r.value for r in Role]
EXPIRY_HELP = (
    "lifetime: 90d, 12h, 30m, 2w or never. Default: never for case_system (a machine's token expiring "
    f"unnoticed would stop the case queue; rotate it deliberately), {default_lifetime(Role.VIEWER) / 86400:.0f}d "
    "for the other roles (people and screens change; a forgotten token should not live forever)"
)


def _duration(text: str) -> float:
    try:
        return parse_duration(text)
    except ValueError as exc:
        raise argparse.ArgumentTypeError(str(exc)) from None


def add_commands(sub: argparse._SubParsersAction[Any]) -> None:
    """Register ``users`` and ``tokens`` (each action sets ``func(settings, args) -> int``)."""
    users = sub.add_parser("users", help="API users: create, list, disable, enable")
    usub = users.add_subparsers(dest="users_cmd", required=True, metavar="ACTION")
    create = usub.add_parser("create", help="create a user (then give it tokens with `tokens create --user`)")
    create.add_argument("name")
    create.add_argument("--role", required=True, choices=ROLES, help="what the user's tokens may do")
    usub.add_parser("list", help="list users: name, role, enabled, created")
    for action, text in (("disable", "refuse all of a user's tokens from now on"), ("enable", "accept them again")):
        parser = usub.add_parser(action, help=text)
        parser.add_argument("name")
    users.set_defaults(func=cmd_users)

    tokens = sub.add_parser("tokens", help="API tokens: create, list, revoke")
    tsub = tokens.add_subparsers(dest="tokens_cmd", required=True, metavar="ACTION")
    create = tsub.add_parser(
        "create",
        help="create a token and print it once",
        description="Without --user, the token's name is its user, created with --role if absent.",
    )
    create.add_argument("--name", required=True, help="the token's name (unique)")
    create.add_argument(
        "--role", choices=ROLES, help="the new user's role; with --user, a narrower role for this token"
    )
    create.add_argument("--user", help="an existing user the token belongs to (default: the user called --name)")
    create.add_argument("--expires-in", type=_duration, metavar="DURATION", help=EXPIRY_HELP)
    tsub.add_parser("list", help="list tokens: name, role, user, expiry, state (never the tokens)")
    revoke = tsub.add_parser("revoke", help="revoke a token by name")
    revoke.add_argument("name")
    tokens.set_defaults(func=cmd_tokens)


def _store(url: str) -> TokenStore:
    check_redis(url)
    return TokenStore(redis.Redis.from_url(url))


def cmd_users(settings: Settings, args: argparse.Namespace) -> int:
    """Create, list, disable or enable users."""
    with redis_url(settings) as url:
        users = _store(url).users
        try:
            if args.users_cmd == "create":
                users.create(args.name, Role(args.role), cli_actor())
                print(f"user {args.name!r} ({args.role}) created", file=sys.stderr)
            elif args.users_cmd == "list":
                for user in users.list():
                    state = "enabled" if user.enabled else "disabled"
                    made = f"created {format_time(user.created_at)} by {user.created_by}"
                    print(f"{user.name}\t{user.role.value}\t{state}\t{made}")
            else:
                user = users.set_enabled(args.name, args.users_cmd == "enable", cli_actor())
                print(f"user {args.name!r} is {'enabled' if user.enabled else 'disabled'}", file=sys.stderr)
        except AccountError as exc:
            raise SystemExit(f"error: {exc}") from None
    return 0


def cmd_tokens(settings: Settings, args: argparse.Namespace) -> int:
    """Create, list or revoke API tokens."""
    with redis_url(settings) as url:
        store = _store(url)
        if args.tokens_cmd == "create":
            if args.role is None and args.user is None:
                raise SystemExit("error: give --role (for a new user called --name) or --user")
            role = Role(args.role) if args.role else None
            try:
                token = store.create(args.name, role, user=args.user, expires_in_s=args.expires_in)
            except AccountError as exc:
                raise SystemExit(f"error: {exc}") from None
            principal = store.check(token)
            assert principal is not None
            print(token)
            print(
                f"token {args.name!r} for user {principal.name!r} ({principal.role.value}) created, expires "
                f"{format_time(principal.expires_at)}; it is shown only this once",
                file=sys.stderr,
            )
        elif args.tokens_cmd == "list":
            for t in store.list():
                shown = t.role.value if t.role else "-"
                print(f"{t.name}\t{shown}\t{t.user}\texpires {format_time(t.expires_at)}\t{t.state.value}")
        elif args.tokens_cmd == "revoke":
            if not store.revoke(args.name):
                raise SystemExit(f"error: no token named {args.name!r} (see `sharpeyes tokens list`)")
            print(f"token {args.name!r} revoked", file=sys.stderr)
    return 0
