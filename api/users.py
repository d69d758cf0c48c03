"""Users and roles: a user is a name with a role that can be disabled; tokens belong to users.

A user's record is read on every request its tokens make (one HGET, no cache), so disabling a user refuses
all of its tokens from the next request on. Every change is written with its audit entry in one transaction.
"""

from __future__ import annotations

import re
import time
from enum import StrEnum
from typing import cast

import redis
from pydantic import BaseModel, ConfigDict, Field

from api.audit import add_audit

USERS_KEY = "sharpeyes:users"
# Users and tokens share one naming rule, so a user created by `tokens create --name N` is a valid user name.
NAME = re.compile(r"^[\w][\w.@+-]{0,63}$")


class Role(StrEnum):
    """What a user (and its tokens) may do."""

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


class AccountError(ValueError):
    """A user or token request that cannot be carried out; ``field`` names the request field at fault."""

    def __init__(self, field: str, message: str) -> None:
        super().__init__(message)
        self.field = field


class AccountConflict(AccountError):
    """The name is taken, or the request clashes with what is stored (HTTP 409)."""


class NoSuchUser(AccountError):
    """No user has this name (HTTP 404)."""


def check_name(kind: str, name: str) -> None:
    """Raise :class:`AccountError` unless ``name`` is a valid user or token name."""
    if not NAME.match(name):
        raise AccountError(
            "name",
            f"{kind} name {name!r} must be 1 to 64 letters, digits or . @ + - _, starting with a letter or digit",
        )


class User(BaseModel):
    """A person or system that holds tokens."""

    model_config = ConfigDict(frozen=True)

    name: str
    role: Role
    enabled: bool = True
    created_at: float
    created_by: str
    updated_at: float | None = Field(default=None, description="Last enable or disable")
    updated_by: str | None = None


class UserStore:
    """Creates, lists, disables and enables users in one Redis hash (name -> JSON)."""

    def __init__(self, client: redis.Redis) -> None:
        self._r = client

    def get(self, name: str, reader: redis.Redis | redis.client.Pipeline | None = None) -> User | None:
        """The user called ``name``, or None (``reader``: a watching pipeline, to read inside a transaction)."""
        raw = (reader or self._r).hget(USERS_KEY, name)
        return User.model_validate_json(cast(bytes, raw)) if raw else None

    def list(self) -> list[User]:
        """Every user, by name."""
        raws = cast(dict[bytes, bytes], self._r.hgetall(USERS_KEY))
        return sorted((User.model_validate_json(raw) for raw in raws.values()), key=lambda u: u.name)

    def create(self, name: str, role: Role, actor: str) -> User:
        """Create an enabled user; :class:`AccountConflict` if the name is taken. Audited."""
        check_name("user", name)
        user = User(name=name, role=role, created_at=time.time(), created_by=actor)
        with self._r.pipeline(transaction=True) as pipe:
            pipe.watch(USERS_KEY)  # type: ignore[no-untyped-call]
            existing = self.get(name, pipe)
            if existing is not None:
                pipe.unwatch()
                raise AccountConflict("name", f"a user named {name!r} exists already (role {existing.role.value})")
            pipe.multi()
            queue_create(pipe, user, actor)
            _execute(pipe, name)
        return user

    def set_enabled(self, name: str, enabled: bool, actor: str) -> User:
        """Enable or disable a user (and so every token it holds); a user already so is left alone, unaudited."""
        with self._r.pipeline(transaction=True) as pipe:
            pipe.watch(USERS_KEY)  # type: ignore[no-untyped-call]
            before = self.get(name, pipe)
            if before is None:
                pipe.unwatch()
                raise NoSuchUser("name", f"no user named {name!r} (see `sharpeyes users list`)")
            if before.enabled == enabled:
                pipe.unwatch()
                return before
            after = before.model_copy(update={"enabled": enabled, "updated_at": time.time(), "updated_by": actor})
            pipe.multi()
            pipe.hset(USERS_KEY, name, after.model_dump_json())
            action = "user.enable" if enabled else "user.disable"
            add_audit(pipe, actor, action, name, before={"enabled": before.enabled}, after={"enabled": enabled})
            _execute(pipe, name)
        return after


def queue_create(pipe: redis.client.Pipeline, user: User, actor: str) -> None:
    """Queue the creation of ``user`` and its audit entry on a transaction (the caller WATCHed ``USERS_KEY``)."""
    pipe.hset(USERS_KEY, user.name, user.model_dump_json())
    add_audit(pipe, actor, "user.create", user.name, after={"role": user.role.value, "enabled": user.enabled})


def _execute(pipe: redis.client.Pipeline, name: str) -> None:
    try:
        pipe.execute()
    except redis.WatchError:
        raise AccountConflict("name", f"user {name!r} was being changed at the same time: try again") from None
