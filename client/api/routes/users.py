"""``DELETE /api/v1/users/{user_id}``: a user's right to be forgotten (admin)."""

from __future__ import annotations

from fastapi import APIRouter, HTTPException, Request
from recstack.client.api.deps import RecommenderDep
from recstack.client.api.problems import problem_responses
from recstack.client.api.routes import API_PREFIX
from recstack.client.api.schemas import Id
from recstack.client.api.security import KEYED_RESPONSES, AdminCaller
from recstack.client.forget import Forgotten, forget_users

router = APIRouter(prefix=API_PREFIX, tags=["users"], 
                   responses={**KEYED_RESPONSES, **problem_responses(422, 503)})


@router.delete("/users/{user_id}", response_model=Forgotten)
async def delete_user(request: Request, user_id: Id, recommender: RecommenderDep, caller: AdminCaller) -> Forgotten:
    """Remove the user from every store recstack keeps: the live session, the events and exposures streams, the
    prepared datasets and batch-scoring outputs of the build folder, and this process's memory; their id goes on
    the tombstone list that every later build applies. The answer lists what was removed per store."""
    recommender.shop.forget([user_id])
    try:
        return await forget_users([user_id], recommender.store, request.app.state.config.build_dir)
    except Exception as exc:  # noqa: BLE001 - the store or a file failed: say so; the deletion can be repeated
        raise HTTPException(503, f"the deletion did not finish ({type(exc).__name__}); the user is on the tombstone "
                                 "list; send the same request again") from exc
