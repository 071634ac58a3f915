"""``POST /api/v1/events``: one event or a batch; valid events are kept even when others are rejected."""

from __future__ import annotations

import json
import uuid
from datetime import UTC, datetime
from typing import Annotated

from fastapi import APIRouter, Body, HTTPException, Request
from recstack.client.api.batches import validate_batch
from recstack.client.api.deps import MetricsDep, RecommenderDep
from recstack.client.api.problems import problem_responses
from recstack.client.api.routes import API_PREFIX
from recstack.client.api.schemas import Event, EventsResponse, RejectedEvent
from recstack.client.api.security import KEYED_RESPONSES, BeaconCaller, Caller, PublicCaller
from recstack.client.core.metrics import Metrics
from recstack.client.core.recommender import Recommender, StoreUnavailable

router = APIRouter(prefix=API_PREFIX, tags=["events"],
                   responses={**KEYED_RESPONSES, **problem_responses(413, 422, 503)})
EventsBody = Annotated[dict | list, Body(examples=[{"user_id": "u1", "item_id": "i0000658", "event_type": "view"}])]


@router.post("/events", response_model=EventsResponse)
async def post_events(request: Request, recommender: RecommenderDep, metrics: MetricsDep, caller: PublicCaller,
                      body: EventsBody) -> EventsResponse:
    """An event object, a list of them, or ``{"events": [...]}``. Each is validated on its own: the response
    names the rejected ones and why; the rest are recorded and shape the user's next recommendations."""
    return await _record(request, recommender, metrics, caller, body)


@router.post("/events/beacon", response_model=EventsResponse,
             openapi_extra={"requestBody": {"content": {"text/plain": {"schema": {"type": "string"}}}}})
async def post_beacon(request: Request, recommender: RecommenderDep, metrics: MetricsDep,
                      caller: BeaconCaller) -> EventsResponse:
    """What ``navigator.sendBeacon`` sends: the body of ``/events`` as JSON in any content type (a beacon's
    ``text/plain`` needs no CORS preflight), the public key as ``?key=`` (and a user token as ``&user_token=``),
    since a beacon cannot set headers. Same checks as the public key in a header, origin included."""
    try:  # finite numbers and bounded nesting: the request limits checked this body already
        body = json.loads(await request.body())
    except ValueError as exc:
        raise HTTPException(422, f"the body is not JSON: {exc}") from exc
    if not isinstance(body, dict | list):
        raise HTTPException(422, "the body is an event, a list of events, or {\"events\": [...]}")
    return await _record(request, recommender, metrics, caller, body)


def utc(moment: datetime) -> datetime:
    """Every stored time in UTC with its offset; a time sent without one is taken as UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


async def _record(request: Request, recommender: Recommender, metrics: Metrics, caller: Caller,
                  body: dict | list) -> EventsResponse:
    valid, rejected = validate_batch(body, "events", Event, request.app.state.config.max_batch_events)
    for user_id in {event.user_id for _, event in valid}:
        caller.check_user(user_id)  # a page may post for its own visitor only
    accepted = []
    now = datetime.now(UTC)
    for index, event in valid:
        item_idx = recommender.shop.item_index(event.item_id)
        if item_idx is None:
            rejected.append(RejectedEvent(index=index, reason=f"item_id: unknown item {event.item_id!r}"))
            continue
        # The id the event log deduplicates on, so a consumer replaying after a crash never doubles an event.
        accepted.append({"event_id": uuid.uuid4().hex, "user_id": event.user_id, "item_id": event.item_id,
                         "item_idx": item_idx, "event_type": event.event_type.value,
                         "timestamp": utc(event.timestamp or now).isoformat(), "context": event.context})
    rejected.sort(key=lambda r: r.index)
    if not accepted:
        metrics.events.labels("rejected").inc(len(rejected))
        raise HTTPException(422, {"message": "no valid event", "rejected": [r.model_dump() for r in rejected]})
    try:
        await recommender.post_events(accepted, caller.contributor)
    except StoreUnavailable as exc:
        raise HTTPException(503, f"{exc}; nothing was recorded, send them again",
                            headers={"Retry-After": "1"}) from exc
    metrics.events.labels("accepted").inc(len(accepted))
    metrics.timeline.add("events", len(accepted))
    metrics.events.labels("rejected").inc(len(rejected))
    return EventsResponse(accepted=len(accepted), rejected=rejected)
