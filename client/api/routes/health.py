"""``/health`` (the process answers), ``/ready`` (Triton and the store answer), ``/metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import JSONResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from recstack.client.api.deps import MetricsDep, RecommenderDep

router = APIRouter(tags=["health"])


@router.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@router.get("/ready")
async def ready(recommender: RecommenderDep) -> JSONResponse:
    checks, left_out = await recommender.ready()
    ready = all(checks.values())
    return JSONResponse({"ready": ready, **checks, "degraded_parts": left_out,
                         "durability": await recommender.durability()}, status_code=200 if ready else 503)


@router.get("/metrics")
async def metrics(metrics: MetricsDep) -> Response:
    return Response(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
