"""Resources built in the lifespan and reached through ``Depends``; and the role gate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import redis
from redis.asyncio import Redis as AsyncRedis
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer

from alerts.snapshots import SnapshotStore
from api.auth import GRANTS, Principal, Role, TokenStore
from config.settings import Settings
from ingest.registry import CameraRegistry


@dataclass(frozen=True, slots=True)
class Resources:
    """What the endpoints use; one instance per app, built in the lifespan."""

    settings: Settings
    redis: redis.Redis
    aredis: AsyncRedis
    registry: CameraRegistry
    tokens: TokenStore
    snapshots: SnapshotStore


def get_resources(request: Request) -> Resources:
    """The app's resources."""
    resources: Resources = request.app.state.resources
    return resources


_bearer = HTTPBearer(auto_error=False, description="An API token: `sharpeyes tokens create --role ROLE --name NAME`")


def require(role: Role) -> Callable[..., Principal]:
    """A dependency that admits a token whose role satisfies ``role`` and returns its principal."""

    def dependency(
        creds: Annotated[HTTPAuthorizationCredentials | None, Depends(_bearer)],
        res: Annotated[Resources, Depends(get_resources)],
    ) -> Principal:
        if creds is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "missing token: send 'Authorization: Bearer <token>'",
                headers={"WWW-Authenticate": "Bearer"},
            )
        principal = res.tokens.check(creds.credentials)
        if principal is None:
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED,
                "invalid or revoked token",
                headers={"WWW-Authenticate": "Bearer"},
            )
        if principal.role not in GRANTS[role]:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {principal.role.value!r} may not do this: it needs {role.value!r}",
            )
        return principal

    return dependency


ResourcesDep = Annotated[Resources, Depends(get_resources)]
Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
CaseSystem = Annotated[Principal, Depends(require(Role.CASE_SYSTEM))]
