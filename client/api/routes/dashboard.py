"""The operations dashboard: ``GET /dashboard`` (the page) and ``GET /api/v1/dashboard`` (its data, admin)."""

from __future__ import annotations

import time
from pathlib import Path

from fastapi import APIRouter, Request
from fastapi.responses import FileResponse
from recstack.client.api.deps import MetricsDep, RecommenderDep
from recstack.client.api.routes import API_PREFIX
from recstack.client.api.security import KEYED_RESPONSES, AdminCaller
from recstack.client.core.report import experiment_report

DASHBOARD_PATH = f"{API_PREFIX}/dashboard"
PAGE = Path(__file__).resolve().parents[2] / "static" / "dashboard.html"
STREAMS_EVERY_S = 30.0  # the experiment report reads both streams whole: at most this often per process
TRENDING = 10

router = APIRouter(tags=["operations"])


@router.get("/dashboard", include_in_schema=False)
async def page() -> FileResponse:
    """The page holds no data (a browser cannot send a key header on navigation); it asks for an admin key and
    reads everything from the keyed route below."""
    return FileResponse(PAGE, media_type="text/html")


@router.get(DASHBOARD_PATH, responses=KEYED_RESPONSES)
async def dashboard(request: Request, recommender: RecommenderDep, metrics: MetricsDep, caller: AdminCaller) -> dict:
    """What is serving, traffic and latency of the last minutes (this process's own metrics), fallback and error
    rates, the experiment report (CTR and conversion per variant with Wilson 95% intervals), trending items, the
    event stream and drift."""
    now = time.time()
    rows = metrics.timeline.series(now)
    totals = {name: sum(r[name] for r in rows) for name in ("requests", "errors", "fallbacks", "events")}
    asked = max(totals["requests"], 1)
    trending = await recommender.trending(TRENDING)
    shop = recommender.shop
    return {
        "at": now,
        "engine": request.app.state.config.engine,
        "model_versions": [{"version": v, "last_served_s": round(now - at, 1)}
                           for v, at in sorted(metrics.model_versions.items(), key=lambda kv: -kv[1])],
        "timeline": {"bucket_s": metrics.timeline.bucket_s, "rows": rows},
        "totals": {**totals, "error_rate": totals["errors"] / asked, "fallback_rate": totals["fallbacks"] / asked},
        "trending": [{"item_id": i.item_id, "title": shop.titles[shop.item_index(i.item_id)],
                      "category": shop.categories[shop.item_index(i.item_id)], "score": i.score}
                     for i in trending.items],
        "trending_degraded": trending.degraded,
        "drift": recommender.drift.summary,  # the last periodic reading (client/README.md, "Drift")
        **await _streams(request, recommender),
    }


async def _streams(request: Request, recommender) -> dict:
    cached = getattr(request.app.state, "dashboard_streams", None)
    if cached is not None and time.monotonic() - cached[0] < STREAMS_EVERY_S:
        return cached[1]
    exposures, events = await recommender.store.exposures(), await recommender.store.events()
    impressions = sum(e["event_type"] == "impression" for e in events)
    summary = {"experiments": experiment_report(exposures, events)["variants"],
               "event_stream": {"events": len(events) - impressions, "impressions": impressions,
                                "served_lists": len(exposures),
                                "last_event": events[-1]["timestamp"] if events else None}}
    request.app.state.dashboard_streams = (time.monotonic(), summary)
    return summary
