"""``/metrics``: the incident path in the Prometheus text format (alerts, outboxes, latency, consumer lag)."""

from __future__ import annotations

import redis
from fastapi import APIRouter, HTTPException, Response, status

from alerts.metrics import CONTENT_TYPE, render
from api.deps import ResourcesDep, Viewer

router = APIRouter(tags=["ops"])


@router.get("/metrics", response_class=Response, responses={200: {"content": {CONTENT_TYPE: {}}}})
def metrics(who: Viewer, res: ResourcesDep) -> Response:
    """Prometheus metrics. Scrape with a viewer token (`authorization: {credentials: <token>}` in Prometheus)."""
    try:
        body = render(res.redis)
    except redis.RedisError as exc:
        raise HTTPException(status.HTTP_503_SERVICE_UNAVAILABLE, f"Redis unreachable, no metrics: {exc}") from None
    return Response(body, media_type=CONTENT_TYPE, headers={"Cache-Control": "no-store"})
