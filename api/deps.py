"""Resources built in the lifespan and reached through ``Depends``; and the role gate."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Annotated

import redis
from fastapi import Depends, HTTPException, Request, status
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from redis.asyncio import Redis as AsyncRedis

from alerts.snapshots import SnapshotStore
from api.auth import GRANTS, Principal, Role, TokenRefused, TokenStore
from api.camera_views import GeoJsonCache
from config.settings import Settings
from ingest.onvif_probe import ProbeConfig
from ingest.registry import CameraRegistry
from ingest.secretbox import SecretBox


@dataclass(frozen=True, slots=True)
class Resources:
    """What the endpoints use; one instance per app, built in the lifespan."""

    settings: Settings
    redis: redis.Redis
    aredis: AsyncRedis
    registry: CameraRegistry
    tokens: TokenStore
    snapshots: SnapshotStore


@dataclass(frozen=True, slots=True)
class Onboarding:
    """What the camera endpoints need beyond :class:`Resources`: a registry that can store passwords, and the
    probe configuration. Built by the cameras router's lifespan (it loads or creates the secret key)."""

    registry: CameraRegistry
    box: SecretBox
    probe: ProbeConfig
    geojson: GeoJsonCache


def get_resources(request: Request) -> Resources:
    """The app's resources."""
    resources: Resources = request.app.state.resources
    return resources


def get_onboarding(request: Request) -> Onboarding:
    """The app's onboarding resources."""
    onboarding: Onboarding = request.app.state.onboarding
    return onboarding


_bearer = HTTPBearer(
    auto_error=False, description="An API token: `sharpeyes tokens create --role ROLE --name NAME [--expires-in 90d]`"
)


def require(role: Role) -> Callable[..., Principal]:
    """A dependency that admits a token whose role satisfies ``role`` and returns its principal.

    The dependency carries ``required_role`` so tests can check every route's gate.
    """

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
        try:
            principal = res.tokens.authenticate(creds.credentials)
        except TokenRefused as exc:
            # The reason (unknown, expired when, user disabled) and what to do: the holder can act on it.
            raise HTTPException(
                status.HTTP_401_UNAUTHORIZED, str(exc), headers={"WWW-Authenticate": "Bearer"}
            ) from None
        if principal.role not in GRANTS[role]:
            raise HTTPException(
                status.HTTP_403_FORBIDDEN,
                f"role {principal.role.value!r} may not do this: it needs {role.value!r}",
            )
        return principal

    dependency.required_role = role  # type: ignore[attr-defined]
    return dependency


ResourcesDep = Annotated[Resources, Depends(get_resources)]
OnboardingDep = Annotated[Onboarding, Depends(get_onboarding)]
Viewer = Annotated[Principal, Depends(require(Role.VIEWER))]
Operator = Annotated[Principal, Depends(require(Role.OPERATOR))]
Admin = Annotated[Principal, Depends(require(Role.ADMIN))]
CaseSystem = Annotated[Principal, Depends(require(Role.CASE_SYSTEM))]
