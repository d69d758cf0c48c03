"""Tokens and roles. Tokens are random, shown once, stored only as SHA-256 hashes, and revocable."""

from __future__ import annotations

import getpass
import hashlib
import re
import secrets
import time
from enum import StrEnum
from typing import cast

import redis
from pydantic import BaseModel, ConfigDict

from api.audit import add_audit

TOKEN_KEY = "sharpeyes:token:{digest}"
TOKEN_NAMES = "sharpeyes:token_names"
TOKEN_PREFIX = "se_"
TOKEN_NAME = re.compile(r"^[\w][\w.@+-]{0,63}$")


def cli_actor() -> str:
    """Who acts when a command runs on the server: the operating-system user."""
    try:
        return f"cli:{getpass.getuser()}"
    except (KeyError, OSError):
        return "cli"


class Role(StrEnum):
    """What a token may do."""

    ADMIN = "admin"  # users, tokens, settings, audit; and everything an operator may do
    OPERATOR = "operator"  # cameras, zones, acknowledging alerts; and everything a viewer may do
    VIEWER = "viewer"  # the wall and alerts, read-only
    CASE_SYSTEM = "case_system"  # reads incidents, nothing else


# Which roles satisfy a requirement: the hierarchy admin > operator > viewer; case_system stands apart.
GRANTS: dict[Role, frozenset[Role]] = {
    Role.ADMIN: frozenset({Role.ADMIN}),
    Role.OPERATOR: frozenset({Role.ADMIN, Role.OPERATOR}),
    Role.VIEWER: frozenset({Role.ADMIN, Role.OPERATOR, Role.VIEWER}),
    Role.CASE_SYSTEM: frozenset({Role.ADMIN, Role.CASE_SYSTEM}),
}


class Principal(BaseModel):
    """Who is calling: the token's name and role."""

    model_config = ConfigDict(frozen=True)

    name: str
    role: Role
    created_at: float
    created_by: str | None = None


def _digest(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


class TokenStore:
    """Creates, checks and revokes API tokens in Redis."""

    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    def create(self, name: str, role: Role, actor: str | None = None) -> str:
        """Create a token and return it; this is the only time the plain token exists. Audited."""
        if not TOKEN_NAME.match(name):
            raise ValueError(
                f"token name {name!r} must be 1 to 64 letters, digits or . @ + - _, starting with a letter or digit"
            )
        who = actor or cli_actor()
        token = TOKEN_PREFIX + secrets.token_urlsafe(32)
        digest = _digest(token)
        principal = Principal(name=name, role=role, created_at=time.time(), created_by=who)
        with self._r.pipeline(transaction=True) as pipe:
            # WATCH the name index so two creations of one name cannot both succeed.
            pipe.watch(TOKEN_NAMES)  # type: ignore[no-untyped-call]
            if pipe.hexists(TOKEN_NAMES, name):
                pipe.unwatch()
                raise ValueError(f"a token named {name!r} exists already: revoke it first or pick another name")
            pipe.multi()
            pipe.set(TOKEN_KEY.format(digest=digest), principal.model_dump_json())
            pipe.hset(TOKEN_NAMES, name, digest)
            add_audit(pipe, who, "token.create", name, after={"role": role.value})
            try:
                pipe.execute()
            except redis.WatchError:
                raise ValueError(f"token {name!r} was being created at the same time: try again") from None
        return token

    def check(self, token: str) -> Principal | None:
        """The principal of a valid token, None otherwise."""
        raw = self._r.get(TOKEN_KEY.format(digest=_digest(token)))
        return Principal.model_validate_json(cast(bytes, raw)) if raw else None

    def revoke(self, name: str, actor: str | None = None) -> bool:
        """Revoke the token called ``name``; False if there is none. Audited."""
        digest = self._r.hget(TOKEN_NAMES, name)
        if digest is None:
            return False
        principal = self.check_digest(cast(bytes, digest).decode())
        with self._r.pipeline(transaction=True) as pipe:
            pipe.delete(TOKEN_KEY.format(digest=cast(bytes, digest).decode()))
            pipe.hdel(TOKEN_NAMES, name)
            before = {"role": principal.role.value} if principal else None
            add_audit(pipe, actor or cli_actor(), "token.revoke", name, before=before)
            pipe.execute()
        return True

    def list(self) -> list[Principal]:
        """Every token's principal (never the token itself)."""
        names = cast(dict[bytes, bytes], self._r.hgetall(TOKEN_NAMES))
        out = []
        for digest in names.values():
            principal = self.check_digest(digest.decode())
            if principal is not None:
                out.append(principal)
        return sorted(out, key=lambda p: p.name)

    def check_digest(self, digest: str) -> Principal | None:
        """The principal stored under a token digest."""
        raw = self._r.get(TOKEN_KEY.format(digest=digest))
        return Principal.model_validate_json(cast(bytes, raw)) if raw else None
