"""Request and response bodies of the API (what ``/docs`` shows)."""

from __future__ import annotations

import json
from datetime import datetime
from enum import StrEnum
from typing import Annotated, Any

from pydantic import BaseModel, ConfigDict, Field, StringConstraints, field_validator
from recstack.client.core.guards import PARTS
from recstack.client.recommendation import Recommendation

# Declared in the schema (not only checked in code), so a client knows the rules before it sends.
Id = Annotated[str, StringConstraints(min_length=1, max_length=128, pattern=r"^\S(.*\S)?$")]
MAX_RESULTS = 100  # longest list one call returns
MAX_LIST_IDS = 1000  # ids one rank or re-rank call orders
MAX_EXCLUDE = 200  # ids one recommendations call leaves out
MAX_CONTEXT_CHARS = 2000  # an event's free-form context, as JSON text
CategoryName = Annotated[str, StringConstraints(max_length=200)]


class EventType(StrEnum):
    view = "view"
    click = "click"
    add_to_cart = "add_to_cart"
    purchase = "purchase"
    rating = "rating"
    impression = "impression"  # a list's item seen by the visitor (widgets): kept in the event stream only


class Context(StrEnum):
    homepage = "homepage"
    product_page = "product_page"
    category_page = "category_page"
    email = "email"


DegradedPart = StrEnum("DegradedPart", {part: part for part in PARTS})


class RecommendationType(StrEnum):
    personalized = "personalized"
    similar = "similar"
    trending = "trending"


class SimilarKind(StrEnum):
    similar = "similar"
    also_viewed = "also_viewed"
    bought_together = "bought_together"


class RejectedEvent(BaseModel):
    index: int
    reason: str


class Event(BaseModel):
    """One interaction; ``timestamp`` defaults to the time it is received."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    item_id: Id
    event_type: EventType
    timestamp: datetime | None = None
    context: dict[str, Any] | Annotated[str, StringConstraints(max_length=MAX_CONTEXT_CHARS)] | None = Field(
        None, description=f"free-form (a page, a campaign), at most {MAX_CONTEXT_CHARS} characters as JSON")

    @field_validator("context")
    @classmethod
    def _small_context(cls, context):
        if isinstance(context, dict) and len(json.dumps(context)) > MAX_CONTEXT_CHARS:
            raise ValueError(f"context is over {MAX_CONTEXT_CHARS} characters as JSON")
        return context


class NewItem(BaseModel):
    """An item added to the catalog after training."""

    model_config = ConfigDict(extra="forbid")

    item_id: Id
    title: Annotated[str, StringConstraints(max_length=500)] | None = None
    category: CategoryName | None = None
    brand: Annotated[str, StringConstraints(max_length=200)] | None = None
    price: float | None = Field(None, ge=0, allow_inf_nan=False)
    created_at: datetime | None = None


class ItemsResponse(BaseModel):
    accepted: int
    rejected: list[RejectedEvent]
    publish: str = Field(description="the command that embeds and indexes them for Triton")


class RecommendationsResponse(BaseModel):
    recommendations: list[Recommendation]
    experiment_id: str | None = None
    variant: str | None = None
    request_id: str
    degraded: bool = Field(description="true when the answer left something out; degraded_parts says what")
    degraded_parts: list[DegradedPart] = Field(
        default_factory=list,
        description="what the answer went without: `model` (the models did not answer: popular items instead), "
                    "`live_session` (the user's events since the last build could not be read), `live_counts` (the "
                    "live popularity of posted events), `exploration` (the new-item bandit's statistics)")


class EventsResponse(BaseModel):
    accepted: int
    rejected: list[RejectedEvent]


class RankRequest(BaseModel):
    """Items to order for a user (a category page, or a search engine's results)."""

    model_config = ConfigDict(extra="forbid")

    user_id: Id
    item_ids: list[Id] = Field(min_length=1, max_length=MAX_LIST_IDS)


class SearchRerankRequest(RankRequest):
    keep_order_weight: float = Field(0.5, ge=0.0, le=1.0,
                                     description="share of the search engine's order kept in the final ranking")
