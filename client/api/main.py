"""The FastAPI app: ``create_app()``; ``recstack serve api`` runs it with uvicorn (OpenAPI docs at ``/docs``)."""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from contextlib import asynccontextmanager
from pathlib import Path

from fastapi import FastAPI, HTTPException, Request, Response
from fastapi.staticfiles import StaticFiles
from recstack.client.api import problems
from recstack.client.api.limits import RequestLimits
from recstack.client.api.problems import problem
from recstack.client.api.routes import (
    API_PREFIX,
    dashboard,
    demo,
    events,
    health,
    items,
    ranking,
    recommendations,
    users,
)
from recstack.client.api.routes.dashboard import DASHBOARD_PATH
from recstack.client.api.security import CORS_HEADERS, OPERATOR_PATHS, Security
from recstack.client.core.catalog import Catalog
from recstack.client.core.config import FacadeConfig
from recstack.client.core.experiments import Experiments
from recstack.client.core.keys import FileKeyStore, KeyRing, create_key, open_key_store
from recstack.client.core.metrics import Metrics
from recstack.client.core.ratelimit import RateLimiter
from recstack.client.core.recommender import Recommender
from recstack.client.core.sessions import open_store
from recstack.client.core.shop import Shop
from recstack.client.engine import engine_kind, open_engine

log = logging.getLogger(__name__)
STATIC = Path(__file__).resolve().parents[1] / "static"  # recstack.js, the demo's and the dashboard's assets


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
        store = open_store(config.redis_url, config.session_length, shop.event_weights, config.store_policy)
        engine = open_engine(engine_kind(config.engine, config.protocol), config.triton_url, config.repository)
        app.state.recommender = Recommender(shop, store, engine, config, app.state.metrics,
                                            Experiments.load(config.experiments_file, config.serving_file,
                                                             config.keys_refresh_s))
        if config.demo:
            app.state.catalog = Catalog.load(shop, data_dir)
            app.state.demo_key = demo_key(config)
        drift = asyncio.create_task(app.state.recommender.drift.run())
        try:
            yield
        finally:
            drift.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await drift
            await engine.close()
            await store.close()
            await app.state.security.close()

    app = FastAPI(title="recstack", version="0.1.0", lifespan=lifespan,
                  description="Personalised recommendations, similar items, trending, events and ranking.")
    app.state.config = config
    app.state.metrics = Metrics()
    app.state.security = open_security(config)
    for module in (recommendations, ranking, events, items, users, health, dashboard):
        app.include_router(module.router)
    if config.demo:
        app.include_router(demo.router)
    app.mount("/static", StaticFiles(directory=STATIC), name="static")

    @app.middleware("http")
    async def guard(request: Request, call_next):
        """CORS for the origins of public keys (credentials never allowed), and operators' routes kept to the host
        or an admin key."""
        security: Security = app.state.security
        origin = request.headers.get("origin")
        allowed = origin is not None and security.origin_allowed(origin)
        cors = {"Access-Control-Allow-Origin": origin if security.enabled else "*", "Vary": "Origin",
                **CORS_HEADERS} if allowed else {}
        if request.method == "OPTIONS" and origin and "access-control-request-method" in request.headers:
            if not allowed:
                return problem(403, f"origin {origin} is not allowed to call this API")
            return Response(status_code=204, headers=cors)
        if request.url.path in OPERATOR_PATHS:
            try:
                security.operator_allowed(request)
            except HTTPException as exc:
                return problem(exc.status_code, exc.detail, exc.headers)
        response = await call_next(request)
        response.headers.update(cors)
        return response

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
            if endpoint.startswith(API_PREFIX) and endpoint != DASHBOARD_PATH:  # the shop's traffic, not ours
                app.state.metrics.timeline.request(status, time.perf_counter() - start)

    problems.install(app)
    # Added last, so outermost: an oversized or hostile body is refused before anything else reads it.
    app.add_middleware(RequestLimits, max_body_bytes=config.max_body_bytes, max_depth=config.max_json_depth)
    return app


def demo_key(config: FacadeConfig) -> str | None:
    """The demo storefront's public key, for its pages on this port under either loopback name; None when keys
    are off. Each start replaces the key of its port (facades on other ports sharing the store keep theirs), so the
    demo runs as one process per port."""
    if not config.auth:
        return None
    origins = tuple(f"http://{host}:{config.port}" for host in ("127.0.0.1", "localhost"))
    new = create_key(f"demo-storefront-{config.port}", "public", origins)
    open_key_store(config.redis_url, config.keys_file).save(new.record)
    return new.key


def open_security(config: FacadeConfig) -> Security:
    """Keys from the store the facade shares (Redis, or the keys file), or no checks at all when ``config.auth``
    is off: an explicit choice for local experiments, logged as a warning."""
    if not config.auth:
        log.warning("API keys are OFF (auth = false / --insecure-no-auth): anyone who reaches this facade may "
                    "read every user's recommendations, post events and change the catalog")
        return Security(config, None, None)
    fallback = FileKeyStore(config.keys_file) if config.redis_url and config.keys_file else None
    keyring = KeyRing(open_key_store(config.redis_url, config.keys_file), config.keys_refresh_s, fallback)
    return Security(config, keyring, RateLimiter(config.redis_url))
