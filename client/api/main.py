"""The FastAPI app: ``create_app()``; ``recstack serve api`` runs it with uvicorn (OpenAPI docs at ``/docs``)."""

from __future__ import annotations

import argparse
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, Request

from client.api.routes import events, health, items, ranking, recommendations
from client.core.config import FacadeConfig
from client.core.experiments import Experiments
from client.core.in_process import InProcessRecommender
from client.core.metrics import Metrics
from client.core.recommender import Recommender
from client.core.sessions import open_store
from client.core.shop import Shop
from client.triton import AsyncTritonRecommender


def create_app(config: FacadeConfig | None = None, data_dir: str | Path | None = None) -> FastAPI:
    """The facade over Triton (``config.triton_url``; or the funnel in this process with ``config.engine =
    "in-process"``) and the session store (``config.redis_url``, or in-process).

    Examples
    --------
    >>> from fastapi.testclient import TestClient
    >>> with TestClient(create_app()) as api:  # doctest: +SKIP
    ...     api.get("/api/v1/recommendations/u0001175", params={"limit": 5}).json()["recommendations"][0]
    {'item_id': 'i0000658', 'score': 1.0, 'reason': 'because you viewed ...', 'model_version': 'sasrec-...'}
    """
    from recstack.settings import Settings

    settings = Settings()
    config = config or settings.facade
    data_dir = Path(data_dir or config.data or settings.data_output("synthetic"))
    if config.ingest_file is None:
        config.ingest_file = settings.build_dir / "ingest" / "new_items.jsonl"

    @asynccontextmanager
    async def lifespan(app: FastAPI):
        shop = Shop.load(data_dir, config.ingest_file)
        store = open_store(config.redis_url, config.session_length, shop.event_weights)
        if config.engine == "in-process":
            triton = InProcessRecommender(config.repository or settings.model_repository)
        else:
            triton = AsyncTritonRecommender(config.triton_url, config.protocol)
        app.state.recommender = Recommender(shop, store, triton, config, app.state.metrics,
                                            Experiments.load(config.experiments_file))
        try:
            yield
        finally:
            await triton.close()
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


def serve_main(argv: list[str] | None = None, prog: str = "recstack serve api") -> int:
    import uvicorn

    from recstack.settings import Settings

    parser = argparse.ArgumentParser(prog=prog, description="Run the FastAPI facade (docs at /docs).")
    parser.add_argument("--data", type=Path, help="prepared dataset [build/data/synthetic]")
    parser.add_argument("--triton-url", help="Triton gRPC address [127.0.0.1:8001]")
    parser.add_argument("--engine", choices=["triton", "in-process"],
                        help="where the funnel runs: Triton, or in this worker without Triton [triton]")
    parser.add_argument("--repository", type=Path, help="built model repository (in-process engine)")
    parser.add_argument("--redis-url", help="Redis URL; in-process store when unset")
    parser.add_argument("--host")
    parser.add_argument("--port", type=int)
    args = parser.parse_args(argv)
    config = Settings().facade
    for name in ("engine", "repository", "triton_url", "redis_url", "host", "port"):
        if getattr(args, name) is not None:
            setattr(config, name, getattr(args, name))
    uvicorn.run(create_app(config, args.data), host=config.host, port=config.port, log_level="warning")
    return 0
