"""The demo storefront (``recstack serve api --demo``, ``FacadeConfig.demo``): a small shop on the prepared
catalog at ``/demo/``, using ``/static/recstack.js`` as a shop's pages would, plus the two routes a shop's
backend would own (ranking a page's own list is a server-scope call, see client/README.md)."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from fastapi.responses import HTMLResponse, Response
from recstack.client.api import storefront_html as html
from recstack.client.api.deps import RecommenderDep
from recstack.client.api.routes.recommendations import _response
from recstack.client.api.schemas import RankRequest, RecommendationsResponse, SearchRerankRequest
from recstack.client.core.catalog import Catalog, placeholder_svg
from recstack.client.core.keys import ANONYMOUS_PREFIX
from recstack.client.core.recommender import UnknownItem

router = APIRouter(prefix="/demo", include_in_schema=False)
NAV_CATEGORIES = 6
LOOPBACK_TWIN = {"127.0.0.1": "localhost", "localhost": "127.0.0.1"}


def _catalog(request: Request) -> Catalog:
    return request.app.state.catalog


def _api(request: Request) -> str:
    """Where the pages call the API: the same port under the loopback's other name. A same-origin GET carries
    no ``Origin`` header, which a public key needs; a second origin also makes the demo the cross-origin setup
    of a real shop."""
    host = request.url.hostname or ""
    twin = LOOPBACK_TWIN.get(host)
    return f"{request.url.scheme}://{twin}:{request.url.port}" if twin and request.url.port else ""


def _page(request: Request, title: str, kind: str, body: str, **extra) -> HTMLResponse:
    catalog = _catalog(request)
    return HTMLResponse(html.page(title, kind, body, api=_api(request), key=request.app.state.demo_key or "",
                                  categories=catalog.categories(NAV_CATEGORIES), **extra))


@router.get("/")
async def home(request: Request) -> HTMLResponse:
    return _page(request, "Home", "home", html.home())


@router.get("/category")
async def category(request: Request, name: str) -> HTMLResponse:
    catalog = _catalog(request)
    if name not in catalog.shop.category_names:
        raise HTTPException(404, f"no category {name!r}")
    items = [catalog.describe(i) for i in catalog.in_category(name)]
    return _page(request, name, "category", html.item_list(name, items, "category", "No products here yet."))


@router.get("/search")
async def search(request: Request, q: Annotated[str, Query(max_length=200)] = "") -> HTMLResponse:
    catalog = _catalog(request)
    items = [catalog.describe(i) for i in catalog.search(q)]
    heading = f"Results for “{q}”" if q else "Search"
    return _page(request, heading, "search", html.item_list(heading, items, "search", "Nothing matches."),
                 query=q)


@router.get("/product/{item_id}")
async def product(request: Request, item_id: str) -> HTMLResponse:
    item = _catalog(request).describe(item_id)
    if item is None:
        raise HTTPException(404, f"no product {item_id!r}")
    return _page(request, item["title"], "product", html.product(item), item_id=item_id)


@router.get("/img/{item_id}.svg")
async def image(request: Request, item_id: str) -> Response:
    item = _catalog(request).describe(item_id)
    if item is None:
        raise HTTPException(404, f"no product {item_id!r}")
    return Response(placeholder_svg(item_id, item["title"], item["category"]), media_type="image/svg+xml",
                    headers={"Cache-Control": "max-age=3600"})


@router.get("/api/items")
async def details(request: Request, ids: Annotated[str, Query(max_length=4000)]) -> dict:
    """Title, price, links and category of items, for the widgets (a shop has its own catalog API)."""
    catalog = _catalog(request)
    found = {i: catalog.describe(i) for i in ids.split(",")[:100]}
    return {item: about for item, about in found.items() if about is not None}


def _visitor(user_id: str) -> None:
    # The demo's backend knows only anonymous visitors; it must not order lists by a known user's history.
    if not user_id.startswith(ANONYMOUS_PREFIX):
        raise HTTPException(403, f"the demo backend ranks for anonymous visitors ({ANONYMOUS_PREFIX}...) only")


@router.post("/backend/rank", response_model=RecommendationsResponse)
async def rank(request: Request, body: RankRequest, recommender: RecommenderDep) -> RecommendationsResponse:
    """What a shop's backend does for its category page: POST /api/v1/rank with its server key."""
    _visitor(body.user_id)
    try:
        return _response(await recommender.rank(body.user_id, body.item_ids), request)
    except UnknownItem as exc:
        raise HTTPException(404, str(exc)) from exc


@router.post("/backend/rerank", response_model=RecommendationsResponse)
async def rerank(request: Request, body: SearchRerankRequest,
                 recommender: RecommenderDep) -> RecommendationsResponse:
    """What a shop's backend does for its search page: POST /api/v1/search/rerank with its server key."""
    _visitor(body.user_id)
    try:
        return _response(await recommender.rank(body.user_id, body.item_ids, body.keep_order_weight), request)
    except UnknownItem as exc:
        raise HTTPException(404, str(exc)) from exc
