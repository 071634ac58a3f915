"""``POST /api/v1/items``: add items to the catalog without a restart (an admin call)."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Request
from recstack.client.api.batches import validate_batch
from recstack.client.api.deps import RecommenderDep
from recstack.client.api.problems import problem_responses
from recstack.client.api.routes import API_PREFIX
from recstack.client.api.schemas import ItemsResponse, NewItem, RejectedEvent
from recstack.client.api.security import KEYED_RESPONSES, AdminCaller

router = APIRouter(prefix=API_PREFIX, tags=["catalog"], 
                   responses={**KEYED_RESPONSES, **problem_responses(413, 422, 503)})
ItemsBody = Annotated[dict | list, Body(examples=[{"item_id": "sku-123", "title": "Trail Bike Light",
                                                   "category": "sports/cycling", "brand": "Velton", "price": 19.9}])]


@router.post("/items", response_model=ItemsResponse)
async def add_items(request: Request, recommender: RecommenderDep, caller: AdminCaller,
                    body: ItemsBody) -> ItemsResponse:
    """One item, a list, or ``{"items": [...]}``. Accepted items can be posted in events and get exploration slots
    right away; ``recstack build-repo --new-items <ingest file> --reload <triton>`` (every few minutes, or now)
    embeds them with the item tower and adds them to the index Triton serves."""
    valid, rejected = validate_batch(body, "items", NewItem, request.app.state.config.max_batch_events)
    accepted, seen = [], set()
    for index, new in valid:
        if recommender.shop.item_index(new.item_id) is not None or new.item_id in seen:
            rejected.append(RejectedEvent(index=index, reason=f"item_id: {new.item_id!r} is already in the catalog"))
            continue
        seen.add(new.item_id)
        row = new.model_dump()
        row["created_at"] = (new.created_at or datetime.now(UTC)).isoformat()
        accepted.append(row)
    rejected.sort(key=lambda r: r.index)
    if not accepted:
        raise HTTPException(422, {"message": "no valid item", "rejected": [r.model_dump() for r in rejected]})
    try:
        recommender.add_items(accepted)
    except OSError as exc:
        raise HTTPException(503, f"cannot write the ingest file: {exc}; nothing was added") from exc
    # The command, not the server's own path: an answer never shows where files live on the host.
    return ItemsResponse(accepted=len(accepted), rejected=rejected,
                         publish="recstack build-repo --new-items <the facade's ingest file> --reload "
                                 "<triton-host:http-port>")
