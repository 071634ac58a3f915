"""Personalised ordering of given lists: a category page, or a search engine's results."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from recstack.client.api.deps import RecommenderDep
from recstack.client.api.problems import problem_responses
from recstack.client.api.routes import API_PREFIX
from recstack.client.api.routes.recommendations import _response
from recstack.client.api.schemas import RankRequest, RecommendationsResponse, SearchRerankRequest
from recstack.client.api.security import KEYED_RESPONSES, ServerCaller
from recstack.client.core.recommender import UnknownItem

router = APIRouter(prefix=API_PREFIX, tags=["ranking"], 
                   responses={**KEYED_RESPONSES, **problem_responses(404, 422)})


@router.post("/rank", response_model=RecommendationsResponse)
async def rank(request: Request, body: RankRequest, recommender: RecommenderDep,
               caller: ServerCaller) -> RecommendationsResponse:
    """Order a category page's items for the user by the ranker (the given order when it cannot)."""
    try:
        return _response(await recommender.rank(body.user_id, body.item_ids), request)
    except UnknownItem as exc:
        raise HTTPException(404, str(exc)) from exc


@router.post("/search/rerank", response_model=RecommendationsResponse)
async def search_rerank(request: Request, body: SearchRerankRequest, recommender: RecommenderDep,
                        caller: ServerCaller) -> RecommendationsResponse:
    """Re-order search results: ranker relevance blended with the search engine's order."""
    try:
        return _response(await recommender.rank(body.user_id, body.item_ids, body.keep_order_weight), request)
    except UnknownItem as exc:
        raise HTTPException(404, str(exc)) from exc
