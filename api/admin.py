"""Administration: API tokens (the people and systems that use the API) and the running settings.

Each token carries a name and a role; the name is the identity the audit stream records.
"""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, HTTPException, Path, Response, status
from fastapi.concurrency import run_in_threadpool
from pydantic import BaseModel, ConfigDict, Field

from api.auth import TOKEN_NAME, Principal, Role
from api.deps import Admin, ResourcesDep
from config.settings import Settings
from ingest.cameras import redact_url

router = APIRouter(prefix="/api/v1", tags=["admin"])
TokenName = Annotated[str, Path(pattern=TOKEN_NAME.pattern, description="The token's name")]


class TokenRequest(BaseModel):
    """A token to create."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=TOKEN_NAME.pattern, description="Who or what holds it; unique")
    role: Role


class NewToken(BaseModel):
    """A created token: ``token`` is shown this once and never again."""

    name: str
    role: Role
    token: str


@router.get("/tokens", response_model=list[Principal])
def list_tokens(who: Admin, res: ResourcesDep) -> list[Principal]:
    """Every token's name, role and creation (never the tokens themselves)."""
    return res.tokens.list()


@router.post("/tokens", status_code=status.HTTP_201_CREATED, response_model=NewToken)
async def create_token(body: TokenRequest, who: Admin, res: ResourcesDep) -> NewToken:
    """Create a token for a person or system. It is in this reply only: hand it over now."""
    try:
        token = await run_in_threadpool(res.tokens.create, body.name, body.role, who.name)
    except ValueError as exc:
        raise HTTPException(status.HTTP_409_CONFLICT, {"message": f"name: {exc}", "field": "name"}) from None
    return NewToken(name=body.name, role=body.role, token=token)


@router.delete("/tokens/{name}", status_code=status.HTTP_204_NO_CONTENT)
def revoke_token(name: TokenName, who: Admin, res: ResourcesDep) -> Response:
    """Revoke a token at once: requests carrying it are refused from now on."""
    if not res.tokens.revoke(name, who.name):
        raise HTTPException(status.HTTP_404_NOT_FOUND, f"no token named {name!r}")
    return Response(status_code=status.HTTP_204_NO_CONTENT)


@router.get("/settings")
def get_settings(who: Admin, res: ResourcesDep) -> dict[str, Any]:
    """The settings this API runs with (a password inside the Redis URL is masked)."""
    values = res.settings.model_dump(mode="json")
    if values.get("redis_url"):
        values["redis_url"] = redact_url(values["redis_url"])
    return {
        name: {"value": values[name], "description": field.description} for name, field in Settings.model_fields.items()
    }
