"""``GET /api/v1/recommendations/{user_id}`` and ``GET /api/v1/similar/{item_id}``."""

from __future__ import annotations

from typing import Annotated

from fastapi import APIRouter, HTTPException, Query, Request
from recstack.client.api.deps import RecommenderDep
from recstack.client.api.problems import problem_responses
from recstack.client.api.routes import API_PREFIX
from recstack.client.api.schemas import (
    MAX_EXCLUDE,
    MAX_RESULTS,
    CategoryName,
    Context,
    Id,
    RecommendationsResponse,
    RecommendationType,
    SimilarKind,
)
from recstack.client.api.security import KEYED_RESPONSES, PublicCaller
from recstack.client.core.recommender import Served, UnknownItem

router = APIRouter(prefix=API_PREFIX, tags=["recommendations"],
                   responses={**KEYED_RESPONSES, **problem_responses(404, 422)})
Limit = Annotated[int, Query(ge=1, le=MAX_RESULTS, description="how many items")]


def _response(served: Served, request: Request) -> RecommendationsResponse:
    request.app.state.metrics.served(i.model_version for i in served.items)
    return RecommendationsResponse(recommendations=served.items, experiment_id=served.experiment_id,
                                   variant=served.variant, request_id=served.request_id, degraded=served.degraded,
                                   degraded_parts=sorted(served.left_out))


@router.get("/recommendations/{user_id}", response_model=RecommendationsResponse)
async def recommendations(
    request: Request, recommender: RecommenderDep, caller: PublicCaller, user_id: Id,
    type: RecommendationType = RecommendationType.personalized,  # noqa: A002 - the API's parameter name
    limit: Limit = 20,
    context: Context = Context.homepage,
    exclude: Annotated[list[str], Query(max_length=MAX_EXCLUDE,
                                        description="item ids to leave out (repeat, or comma-separated)")] = (),
    item_id: Annotated[Id | None, Query(description="the product of a product page; required for similar")] = None,
    category: CategoryName = "",
) -> RecommendationsResponse:
    """Personalised (the live session included), similar to ``item_id``, or trending items; an unknown user
    gets what is trending in the context (cold start), never an error."""
    if category and category not in recommender.shop.category_names:
        raise HTTPException(422, f"unknown category {category!r}")
    exclude = tuple(e.strip() for value in exclude for e in value.split(",") if e.strip())
    if len(exclude) > MAX_EXCLUDE:
        raise HTTPException(422, f"exclude names {len(exclude)} items; at most {MAX_EXCLUDE}")
    try:
        if type is RecommendationType.similar:
            if item_id is None:
                raise HTTPException(422, "type=similar needs item_id")
            served = await recommender.similar(item_id, limit)
        elif type is RecommendationType.trending:
            served = await recommender.trending(limit, category)
        else:
            caller.check_user(user_id)  # a personal list's reasons name items of the user's history
            served = await recommender.personalized(user_id, limit, context.value, exclude, category, item_id)
    except UnknownItem as exc:
        raise HTTPException(404, str(exc)) from exc
    return _response(served, request)


@router.get("/similar/{item_id}", response_model=RecommendationsResponse)
async def similar(request: Request, recommender: RecommenderDep, caller: PublicCaller, item_id: Id,
                  limit: Limit = 10, kind: SimilarKind = SimilarKind.similar) -> RecommendationsResponse:
    """"Similar products", "customers also viewed" or "frequently bought together"."""
    try:
        return _response(await recommender.similar(item_id, limit, kind.value), request)
    except UnknownItem as exc:
        raise HTTPException(404, str(exc)) from exc
