"""Tokens: random, shown once, stored only as SHA-256 hashes, revocable, expiring; each belongs to a user.

A token takes its user's role unless it was narrowed to a lesser one when created. Every request reads the
token's record and its user's (two GETs, no cache), so revoking a token or disabling its user takes effect at
the next request. An expired token is refused with the time it expired; Redis forgets it a month later.
"""

from __future__ import annotations

import getpass
import hashlib
import math
import re
import secrets
import time
from datetime import UTC, datetime
from enum import StrEnum
from typing import cast

import redis
from pydantic import BaseModel, ConfigDict

from api.audit import add_audit
from api.users import (
    GRANTS,
    USERS_KEY,
    AccountConflict,
    AccountError,
    NoSuchUser,
    Role,
    User,
    UserStore,
    check_name,
    queue_create,
)
from api.users import NAME as TOKEN_NAME

__all__ = [
    "GRANTS",
    "NEVER",
    "TOKEN_KEY",
    "TOKEN_NAME",
    "TOKEN_NAMES",
    "Principal",
    "Role",
    "TokenInfo",
    "TokenRecord",
    "TokenRefused",
    "TokenState",
    "TokenStore",
    "cli_actor",
    "default_lifetime",
    "format_time",
    "parse_duration",
]

TOKEN_KEY = "sharpeyes:token:{digest}"
TOKEN_NAMES = "sharpeyes:token_names"
TOKEN_PREFIX = "se_"
# An expired token's record is kept this long, so its holder is told "expired at ..." rather than "invalid";
# then Redis deletes it (the key's EXAT) and the name is free again.
EXPIRED_KEPT_S = 30 * 86400
# Default lifetime of people's and screens' tokens: people change jobs and wall screens get replaced, so a
# forgotten token should not live forever, and a year is long enough that renewing is a rare chore.
DEFAULT_LIFETIME_S = 365 * 86400
# Longest lifetime one can ask for; beyond it, ask for "never" and say so.
MAX_LIFETIME_S = 10 * 365 * 86400
NEVER = math.inf
_UNITS = {"s": 1, "m": 60, "h": 3600, "d": 86400, "w": 7 * 86400}
_DURATION = re.compile(r"^(\d{1,6})([smhdw])$")


def cli_actor() -> str:
    """Who acts when a command runs on the server: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


def default_lifetime(role: Role) -> float:
    """Seconds a new token of ``role`` lives when no lifetime is asked for.

    case_system tokens never expire by default: they sit in a machine's configuration, and one expiring
    unnoticed would stop the case system from taking incidents; rotate them deliberately instead. Every other
    role gets :data:`DEFAULT_LIFETIME_S` (365 days).
    """
    return NEVER if role is Role.CASE_SYSTEM else DEFAULT_LIFETIME_S


def parse_duration(text: str) -> float:
    """Seconds in ``90d``, ``12h``, ``30m``, ``2w`` or ``45s``; :data:`NEVER` for ``never``."""
    value = text.strip().lower()
    if value == "never":
        return NEVER
    match = _DURATION.match(value)
    if match is None:
        raise ValueError(f"expires_in {text!r} is not a duration: use a number and a unit (90d, 12h, 30m, 2w) or never")
    seconds = float(int(match[1]) * _UNITS[match[2]])
    if not 0 < seconds <= MAX_LIFETIME_S:
        raise ValueError(f"expires_in {text!r} must be more than 0 and at most 3650d (or never)")
    return seconds


def format_time(at: float | None) -> str:
    """``at`` (Unix time) as ``2026-05-01 12:00 UTC``; ``never`` for None."""
    return "never" if at is None else datetime.fromtimestamp(at, UTC).strftime("%Y-%m-%d %H:%M UTC")


class TokenState(StrEnum):
    """Whether a token is accepted now."""

    ACTIVE = "active"
    EXPIRED = "expired"
    USER_DISABLED = "user_disabled"


class TokenRecord(BaseModel):
    """What is stored under a token's hash. Records written before users existed have no ``user`` (the token's
    name stood for its holder) and always a ``role``."""

    model_config = ConfigDict(frozen=True)

    name: str
    user: str | None = None
    role: Role | None = None  # narrowed below the user's role; None: the user's role
    created_at: float
    created_by: str | None = None
    expires_at: float | None = None


class Principal(BaseModel):
    """Who is calling: the user (the identity the audit stream records), the token used, and the role."""

    model_config = ConfigDict(frozen=True)

    name: str
    role: Role
    token: str
    expires_at: float | None = None


class TokenInfo(BaseModel):
    """A token as listed: never the token itself."""

    name: str
    user: str
    role: Role | None  # None only when the user is gone
    narrowed: bool
    created_at: float
    created_by: str | None
    expires_at: float | None
    state: TokenState


class TokenRefused(Exception):
    """The token is unknown, revoked, expired, or its user is disabled; the message says which and what to do."""


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Creates, checks, lists and revokes API tokens in Redis; ``users`` is the user store they belong to."""

    def __init__(self, client: redis.Redis) -> None:
        self._r = client
        self.users = UserStore(client)

    def create(
        self,
        name: str,
        role: Role | None = None,
        actor: str | None = None,
        *,
        user: str | None = None,
        expires_in_s: float | None = None,
    ) -> str:
        """Create a token and return it; this is the only time the plain token exists. Audited.

        ``user`` names the existing user it belongs to; without it the user is ``name``, created with ``role``
        when absent (how tokens were made before users existed). ``role`` narrows the user's role; ``expires_in_s``
        None means :func:`default_lifetime`, :data:`NEVER` no expiry.
        """
        check_name("token", name)
        owner = user or name
        check_name("user", owner)
        who = actor or cli_actor()
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = _digest(token)
        now = time.time()
        with self._r.pipeline(transaction=True) as pipe:
            # WATCH the name index and the users so two creations of one name cannot both succeed. Raising
            # inside the block unwatches (the pipeline resets on exit).
            pipe.watch(TOKEN_NAMES, USERS_KEY)  # type: ignore[no-untyped-call]
            held = pipe.hget(TOKEN_NAMES, name)
            if held is not None and pipe.exists(TOKEN_KEY.format(digest=cast(bytes, held).decode())):
                raise AccountConflict("name", f"a token named {name!r} exists already: revoke it first or pick another")
            account = self.users.get(owner, pipe)
            new_account = account is None
            if account is None:
                if user is not None:
                    raise NoSuchUser("user", f"no user named {user!r}: create it first (`sharpeyes users create`)")
                if role is None:
                    raise AccountError("role", f"needed, as no user named {name!r} exists to take it from")
                account = User(name=owner, role=role, created_at=now, created_by=who)
            elif not account.enabled:
                raise AccountConflict("user", f"user {owner!r} is disabled: enable it before giving it tokens")
            narrowed = _narrowed(account, role, by_name=user is None)
            lifetime = expires_in_s if expires_in_s is not None else default_lifetime(narrowed or account.role)
            expires_at = None if math.isinf(lifetime) else now + lifetime
            record = TokenRecord(
                name=name, user=owner, role=narrowed, created_at=now, created_by=who, expires_at=expires_at
            )
            pipe.multi()
            if new_account:
                queue_create(pipe, account, who)
            keep_until = None if expires_at is None else int(expires_at + EXPIRED_KEPT_S)
            pipe.set(TOKEN_KEY.format(digest=digest), record.model_dump_json(), exat=keep_until)
            pipe.hset(TOKEN_NAMES, name, digest)
            after = {"role": (narrowed or account.role).value, "user": owner, "expires_at": format_time(expires_at)}
            add_audit(pipe, who, "token.create", name, after=after)
            try:
                pipe.execute()
            except redis.WatchError:
                raise AccountConflict("name", f"token {name!r} was being created at the same time: try again") from None
        return token

    def authenticate(self, token: str) -> Principal:
        """The principal of a token accepted now; :class:`TokenRefused` with the reason otherwise."""
        record = self._record(_digest(token))
        if record is None:
            raise TokenRefused("invalid or revoked token")
        owner = record.user or record.name
        if record.expires_at is not None and time.time() >= record.expires_at:
            raise TokenRefused(
                f"token {record.name!r} expired at {format_time(record.expires_at)}: ask an admin for a new one "
                f"(`sharpeyes tokens create --user {owner} --name NAME`, or POST /api/v1/tokens)"
            )
        account = self.users.get(owner)
        if account is None:
            if record.user is not None or record.role is None:
                raise TokenRefused(f"token {record.name!r} belongs to user {owner!r}, who does not exist")
            return Principal(name=owner, role=record.role, token=record.name, expires_at=record.expires_at)
        if not account.enabled:
            raise TokenRefused(
                f"user {owner!r} is disabled, and so are all its tokens: an admin can enable it again "
                f"(`sharpeyes users enable {owner}` or POST /api/v1/users/{owner}/enable)"
            )
        role = record.role or account.role
        if account.role not in GRANTS[role]:
            raise TokenRefused(
                f"token {record.name!r} was made for role {role.value!r}, which user {owner!r} no longer has "
                f"(its role is {account.role.value!r}): create a new token"
            )
        return Principal(name=owner, role=role, token=record.name, expires_at=record.expires_at)

    def check(self, token: str) -> Principal | None:
        """The principal of a token accepted now, None otherwise."""
        try:
            return self.authenticate(token)
        except TokenRefused:
            return None

    def revoke(self, name: str, actor: str | None = None) -> bool:
        """Revoke the token called ``name``; False if there is none. Audited."""
        digest = self._r.hget(TOKEN_NAMES, name)
        if digest is None:
            return False
        record = self._record(cast(bytes, digest).decode())
        before = None
        if record is not None:
            owner = self.users.get(record.user or record.name)
            role = record.role or (owner.role if owner else None)
            before = {"user": record.user or record.name, "role": role.value if role else None}
        with self._r.pipeline(transaction=True) as pipe:
            pipe.delete(TOKEN_KEY.format(digest=cast(bytes, digest).decode()))
            pipe.hdel(TOKEN_NAMES, name)
            add_audit(pipe, actor or cli_actor(), "token.revoke", name, before=before)
            pipe.execute()
        return True

    def list(self) -> list[TokenInfo]:
        """Every token still stored (expired ones for a month after expiry), by name; never the tokens."""
        digests = [d.decode() for d in cast(dict[bytes, bytes], self._r.hgetall(TOKEN_NAMES)).values()]
        raws = cast(list[bytes | None], self._r.mget([TOKEN_KEY.format(digest=d) for d in digests])) if digests else []
        users = {u.name: u for u in self.users.list()}
        now = time.time()
        out = []
        for raw in raws:
            if raw is None:
                continue  # expired long ago and dropped by Redis
            record = TokenRecord.model_validate_json(raw)
            owner = users.get(record.user or record.name)
            role = record.role or (owner.role if owner else None)
            state = TokenState.ACTIVE
            if record.expires_at is not None and now >= record.expires_at:
                state = TokenState.EXPIRED
            elif owner is not None and not owner.enabled:
                state = TokenState.USER_DISABLED
            out.append(
                TokenInfo(
                    name=record.name,
                    user=record.user or record.name,
                    role=role,
                    narrowed=record.role is not None and record.user is not None,
                    created_at=record.created_at,
                    created_by=record.created_by,
                    expires_at=record.expires_at,
                    state=state,
                )
            )
        return sorted(out, key=lambda t: t.name)

    def _record(self, digest: str) -> TokenRecord | None:
        raw = self._r.get(TOKEN_KEY.format(digest=digest))
        return TokenRecord.model_validate_json(cast(bytes, raw)) if raw else None


def _narrowed(account: User, role: Role | None, *, by_name: bool) -> Role | None:
    """The role to store on a new token of ``account``: None when it is the user's own."""
    if role is None or role is account.role:
        return None
    if by_name:
        raise AccountConflict(
            "role",
            f"user {account.name!r} exists with role {account.role.value!r}, not {role.value!r}: give the token "
            f'another name, or add --user {account.name} ("user" in the API) to narrow that user\'s role',
        )
    if account.role not in GRANTS[role]:
        raise AccountError(
            "role",
            f"role {role.value!r} is not within user {account.name!r}'s role {account.role.value!r}: "
            "a token can narrow its user's role, never widen it",
        )
    return role
