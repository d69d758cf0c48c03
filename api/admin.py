"""Administration: users, their API tokens, and the running settings.

A user is the identity the audit stream records; each token belongs to one user and takes its role (or a
narrower one). Disabling a user refuses all of its tokens at the next request.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from api.auth import TOKEN_NAME, Role, TokenInfo, parse_duration
from api.deps import Admin, ResourcesDep
from api.users import AccountConflict, AccountError, NoSuchUser, User
from config.settings import Settings
from ingest.cameras import redact_url

router = APIRouter(prefix="/api/v1", tags=["admin"])
TokenName = Annotated[str, Path(pattern=TOKEN_NAME.pattern, description="The token's name")]
UserName = Annotated[str, Path(pattern=TOKEN_NAME.pattern, description="The user's name")]


class TokenRequest(BaseModel):
    """A token to create. Without ``user``, the token's ``name`` is its user, created with ``role`` if absent."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TOKEN_NAME.pattern, description="Who or what holds it; unique")
    role: Role | None = Field(default=None, description="Needed for a new user; with `user`, narrows its role")
    user: str | None = Field(default=None, pattern=TOKEN_NAME.pattern, description="An existing user it belongs to")
    expires_in: str | None = Field(
        default=None,
        description="Lifetime: 90d, 12h, 30m, 2w or never. Default: never for case_system, 365d otherwise",
        examples=["90d"],
    )

    @field_validator("expires_in")
    @classmethod
    def _duration(cls, value: str | None) -> str | None:
        if value is not None:
            parse_duration(value)
        return value

    @model_validator(mode="after")
    def _role_or_user(self) -> TokenRequest:
        if self.role is None and self.user is None:
            raise ValueError("give a role (for a new user called like the token) or the user it belongs to")
        return self


class NewToken(BaseModel):
    """A created token: ``token`` is shown this once and never again."""

    name: str
    user: str
    role: Role
    expires_at: float | None
    token: str


class UserRequest(BaseModel):
    """A user to create."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TOKEN_NAME.pattern, description="A person or system; unique")
    role: Role


def _account_error(exc: AccountError) -> HTTPException:
    code = status.HTTP_422_UNPROCESSABLE_CONTENT
    if isinstance(exc, AccountConflict):
        code = status.HTTP_409_CONFLICT
    elif isinstance(exc, NoSuchUser):
        code = status.HTTP_404_NOT_FOUND
    return HTTPException(code, {"message": f"{exc.field}: {exc}", "field": exc.field})


@router.get("/tokens", response_model=list[TokenInfo])
def list_tokens(who: Admin, res: ResourcesDep) -> list[TokenInfo]:
    """Every token's name, user, role, creation and expiry (never the tokens themselves)."""
    return res.tokens.list()


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=NewToken)
async def create_token(body: TokenRequest, who: Admin, res: ResourcesDep) -> NewToken:
    """Create a token for a user. It is in this reply only: hand it over now."""
    lifetime = parse_duration(body.expires_in) if body.expires_in is not None else None
    try:
        token = await run_in_threadpool(
            lambda: res.tokens.create(body.name, body.role, who.name, user=body.user, expires_in_s=lifetime)
        )
    except AccountError as exc:
        raise _account_error(exc) from None
    principal = res.tokens.check(token)
    assert principal is not None
    return NewToken(
        name=body.name, user=principal.name, role=principal.role, expires_at=principal.expires_at, token=token
    )


@router.delete("/tokens/{name}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(name: TokenName, who: Admin, res: ResourcesDep) -> Response:
    """Revoke a token at once: requests carrying it are refused from now on."""
    if not res.tokens.revoke(name, who.name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no token named {name!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/users", response_model=list[User])
def list_users(who: Admin, res: ResourcesDep) -> list[User]:
    """Every user: name, role, whether enabled, who created it and when."""
    return res.tokens.users.list()


@router.post("/users", status_code=status.HTTP_201_CREATED, response_model=User)
def create_user(body: UserRequest, who: Admin, res: ResourcesDep) -> User:
    """Create a user; give it tokens with ``POST /api/v1/tokens`` and ``"user"``. Audited."""
    try:
        return res.tokens.users.create(body.name, body.role, who.name)
    except AccountError as exc:
        raise _account_error(exc) from None


@router.post("/users/{name}/disable", response_model=User)
def disable_user(name: UserName, who: Admin, res: ResourcesDep) -> User:
    """Disable a user: every one of its tokens is refused from the next request on. Audited."""
    if name == who.name:
        # Disabling oneself ends one's own access at once: leave it to another admin (or the command line).
        raise HTTPException(status.HTTP_409_CONFLICT, {"message": "name: you cannot disable yourself", "field": "name"})
    return _set_enabled(res, name, False, who.name)


@router.post("/users/{name}/enable", response_model=User)
def enable_user(name: UserName, who: Admin, res: ResourcesDep) -> User:
    """Enable a user again: its tokens that are neither revoked nor expired work again. Audited."""
    return _set_enabled(res, name, True, who.name)


def _set_enabled(res: ResourcesDep, name: str, enabled: bool, actor: str) -> User:
    try:
        return res.tokens.users.set_enabled(name, enabled, actor)
    except AccountError as exc:
        raise _account_error(exc) from None


@router.get("/settings")
def get_settings(who: Admin, res: ResourcesDep) -> dict[str, Any]:
    """The settings this API runs with (a password inside the Redis URL is masked)."""
    values = res.settings.model_dump(mode="json")
    if values.get("redis_url"):
        values["redis_url"] = redact_url(values["redis_url"])
    return {
        name: {"value": values[name], "description": field.description} for name, field in Settings.model_fields.items()
    }
