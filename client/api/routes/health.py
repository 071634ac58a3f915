"""``/health`` (the process answers), ``/ready`` (Triton and the store answer), ``/metrics`` (Prometheus)."""

from __future__ import annotations

from fastapi import APIRouter
from fastapi.responses import JSONResponse, PlainTextResponse
from prometheus_client import CONTENT_TYPE_LATEST, generate_latest
from recstack.client.api.deps import MetricsDep, RecommenderDep

router = APIRouter(tags=["health"])
# ready, one boolean per part checked (triton, store), what answers leave out now, and the store's durability.
READINESS = {"content": {"application/json": {"schema": {
    "type": "object", "required": ["ready", "degraded_parts", "durability"],
    "properties": {"ready": {"type": "boolean"}, "degraded_parts": {"type": "array", "items": {"type": "string"}},
                   "durability": {"type": "object"}},
    "additionalProperties": {"type": "boolean"}}}}}


@router.get("/health")
async def health() -> dict:
    return {"status": "ok"}


@router.get("/ready", response_class=JSONResponse,
            responses={200: {"description": "every part answers", **READINESS},
                       503: {"description": "some part does not answer (false in the body)", **READINESS}})
async def ready(recommender: RecommenderDep) -> JSONResponse:
    checks, left_out = await recommender.ready()
    ready = all(checks.values())
    return JSONResponse({"ready": ready, **checks, "degraded_parts": left_out,
                         "durability": await recommender.durability()}, status_code=200 if ready else 503)


@router.get("/metrics", response_class=PlainTextResponse,
            responses={200: {"description": "Prometheus text format", "content": {"text/plain": {}}}})
async def metrics(metrics: MetricsDep, recommender: RecommenderDep) -> PlainTextResponse:
    lag = await recommender.store.ingest_lag()
    metrics.ingest_lag.set(-1 if lag is None else lag)
    return PlainTextResponse(generate_latest(metrics.registry), media_type=CONTENT_TYPE_LATEST)
