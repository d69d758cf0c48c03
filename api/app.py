"""The FastAPI application: resources built in the lifespan, routers, and error bodies that name fields."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from importlib import resources as pkg_resources
from typing import Annotated, Any

import redis
import redis.asyncio
from fastapi import FastAPI, Query, Request
from fastapi.encoders import jsonable_encoder
from fastapi.exceptions import RequestValidationError
from fastapi.responses import HTMLResponse, JSONResponse

from alerts.snapshots import FileSnapshotStore, snapshot_dir
from api import alerts, cameras
from api.audit import read_audit
from api.auth import TokenStore
from api.deps import Admin, Resources, ResourcesDep
from config.settings import Settings
from ingest.registry import CameraRegistry


def _field_message(err: dict[str, Any]) -> str:
    loc = ".".join(str(p) for p in err.get("loc", ()) if p != "body") or "body"
    shown = repr(err.get("input"))
    if len(shown) > 80:
        shown = shown[:77] + "..."
    return f"{loc}: {err.get('msg')} (got {shown})"


async def _validation_error(request: Request, exc: Exception) -> JSONResponse:
    assert isinstance(exc, RequestValidationError)
    errors = exc.errors()
    return JSONResponse(
        status_code=422,
        content={
            "message": "; ".join(_field_message(e) for e in errors),
            "detail": jsonable_encoder(errors, custom_encoder={bytes: lambda b: b.decode("utf-8", "replace")}),
        },
    )


def create_app(settings: Settings, redis_url: str) -> FastAPI:
    """Build the app; Redis clients and stores are created in the lifespan, closed at shutdown."""

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        client = redis.Redis.from_url(redis_url)
        aclient = redis.asyncio.Redis.from_url(redis_url)
        app.state.resources = Resources(
            settings=settings,
            redis=client,
            aredis=aclient,
            registry=CameraRegistry(client),
            tokens=TokenStore(client),
            snapshots=FileSnapshotStore(snapshot_dir(settings)),
        )
        try:
            yield
        finally:
            await aclient.aclose()
            client.close()

    app = FastAPI(
        title="sharpeyes",
        version="0.1.0",
        summary="Camera registry, alerts and the alert wall of a city camera network.",
        lifespan=lifespan,
    )
    app.add_exception_handler(RequestValidationError, _validation_error)
    app.include_router(cameras.router)
    from api import admin as admin_api  # tokens and settings (issue 5)

    app.include_router(admin_api.router)
    app.include_router(alerts.router)
    from api import metrics as metrics_api  # the incidents helper's router (issue 6)

    app.include_router(metrics_api.router)

    @app.get("/healthz", tags=["ops"])
    def healthz(res: ResourcesDep) -> dict[str, str]:
        """Liveness and Redis reachability; the only endpoint without a token."""
        try:
            res.redis.ping()
        except redis.RedisError as exc:
            return {"status": "degraded", "redis": f"unreachable: {exc}"}
        return {"status": "ok", "redis": "ok"}

    @app.get("/api/v1/audit", tags=["ops"])
    def get_audit(
        who: Admin,
        res: ResourcesDep,
        limit: Annotated[int, Query(ge=1, le=1000)] = 100,
        before: Annotated[str | None, Query(pattern=r"^\d{1,20}-\d{1,20}$")] = None,
    ) -> list[dict[str, Any]]:
        """Audit entries, newest first: registry, user and token changes, key rotations, snapshot and clip views."""
        return read_audit(res.redis, limit, before)

    @app.get("/wall", response_class=HTMLResponse, include_in_schema=False)
    def wall() -> HTMLResponse:
        """The alert wall. The page holds no data: it fetches everything with the token given after '#'."""
        page = pkg_resources.files("api").joinpath("static/wall.html").read_text(encoding="utf-8")
        return HTMLResponse(page, headers={"Cache-Control": "no-cache", "Referrer-Policy": "no-referrer"})

    return app
