"""The FastAPI app: ``create_app()``; ``recstack serve api`` runs it with uvicorn (OpenAPI docs at ``/docs``)."""

from __future__ import annotations

import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request
from recstack.client.api.routes import events, health, items, ranking, recommendations
from recstack.client.core.config import FacadeConfig
from recstack.client.core.experiments import Experiments
from recstack.client.core.metrics import Metrics
from recstack.client.core.recommender import Recommender
from recstack.client.core.sessions import open_store
from recstack.client.core.shop import Shop
from recstack.client.engine import engine_kind, open_engine


def create_app(config: FacadeConfig, data_dir: str | Path | None = None) -> FastAPI:
    """The facade over Triton (``config.triton_url``; or the funnel in this process with ``config.engine =
    "in-process"``) and the session store (``config.redis_url``, or in-process), on the prepared dataset
    ``data_dir`` (``config.data`` when unset). :meth:`recstack.settings.Settings.facade_config` fills in the
    default paths.

    Examples
    --------
    >>> from fastapi.testclient import TestClient
    >>> with TestClient(create_app(Settings().facade_config())) as api:  # doctest: +SKIP
    ...     api.get("/api/v1/recommendations/u0001175", params={"limit": 5}).json()["recommendations"][0]
    {'item_id': 'i0000658', 'score': 1.0, 'reason': 'because you viewed ...', 'model_version': 'sasrec-...'}
    """
    if data_dir is None and config.data is None:
        raise ValueError("no prepared dataset: pass data_dir or set FacadeConfig.data")
    if config.ingest_file is None:
        raise ValueError("FacadeConfig.ingest_file is unset: items added through the API would have nowhere to go")
    if config.engine == "in-process" and config.repository is None:
        raise ValueError("the in-process engine needs FacadeConfig.repository (a built model repository)")
    data_dir = Path(data_dir or config.data)

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        shop = Shop.load(data_dir, config.ingest_file)
        store = open_store(config.redis_url, config.session_length, shop.event_weights)
        engine = open_engine(engine_kind(config.engine, config.protocol), config.triton_url, config.repository)
        app.state.recommender = Recommender(shop, store, engine, config, app.state.metrics,
                                            Experiments.load(config.experiments_file))
        try:
            yield
        finally:
            await engine.close()
            await store.close()

    app = FastAPI(title="recstack", version="0.1.0", lifespan=lifespan,
                  description="Personalised recommendations, similar items, trending, events and ranking.")
    app.state.config = config
    app.state.metrics = Metrics()
    for module in (recommendations, ranking, events, items, health):
        app.include_router(module.router)

    @app.middleware("http")
    async def observe(request: Request, call_next):
        start = time.perf_counter()
        status = 500  # unless a response comes back
        try:
            response = await call_next(request)
            status = response.status_code
            return response
        finally:
            endpoint = getattr(request.scope.get("route"), "path", "unmatched")
            app.state.metrics.requests.labels(endpoint, str(status)).inc()
            app.state.metrics.latency.labels(endpoint).observe(time.perf_counter() - start)

    return app

