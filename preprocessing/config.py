"""Typed configuration of the preprocessing workflow; saved with every fitted workflow."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator

from preprocessing.schema import EVENT_TYPES


class WorkflowConfig(BaseModel):
    """What the workflow computes. Defaults work on every bundled dataset without tuning.

    Examples
    --------
    >>> WorkflowConfig(min_item_count=5).session_gap_minutes
    30.0
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    min_item_count: int = Field(1, ge=0, description="items with fewer fitting events go to the OOV bucket, "
                                "unless the items table lists them (cold start)")
    min_user_count: int = Field(1, ge=0, description="users with fewer fitting events go to the OOV bucket")
    event_weights: dict[str, float] = Field(
        default_factory=lambda: {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0, "rating": 1.0},
        description="strength of each event type; multiplied by the event's own weight")
    session_gap_minutes: float = Field(30.0, gt=0, description="inactivity that starts a new session")
    max_sequence_length: int = Field(200, ge=2, description="most recent items kept per user sequence")
    collapse_repeats: bool = Field(True, description="consecutive events on one item (a view→cart→purchase "
                                   "funnel) count as one step of the sequence")
    recent_days: float = Field(7.0, gt=0, description="window of the 'recent popularity' statistic")
    cooccurrence_window: int = Field(3, ge=1, description="steps apart within a session that still co-occur")
    cooccurrence_top_k: int = Field(50, ge=1, description="neighbours kept per item and kind")
    price_buckets: int = Field(10, ge=1, description="quantile buckets of item price")
    title_max_tokens: int = Field(8, ge=1)
    min_token_count: int = Field(2, ge=1, description="title tokens rarer than this go to the OOV bucket")

    @model_validator(mode="after")
    def _known_event_types(self) -> WorkflowConfig:
        unknown = set(self.event_weights) - set(EVENT_TYPES)
        missing = set(EVENT_TYPES) - set(self.event_weights)
        if unknown or missing:
            raise ValueError(f"event_weights must give a weight to exactly {list(EVENT_TYPES)}; "
                             f"unknown {sorted(unknown)}, missing {sorted(missing)}")
        return self


class SplitConfig(BaseModel):
    """How events are split into train / validation / test.

    ``leave_one_out``: per user, the last step is the test target and the second last the
    validation target (users with fewer than 3 steps stay in train), as in the SASRec papers.
    ``temporal``: one global cut-off; events at or after ``test_start`` are test, those in the
    ``valid_fraction`` of time before it are validation. Without ``test_start`` the cut-off is the
    timestamp quantile ``1 - test_fraction``.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    strategy: Literal["leave_one_out", "temporal"] = "leave_one_out"
    test_start: datetime | None = None
    test_fraction: float = Field(0.1, gt=0, lt=1)
    valid_fraction: float = Field(0.1, ge=0, lt=1)

    @model_validator(mode="after")
    def _fractions_fit(self) -> SplitConfig:
        if self.test_fraction + self.valid_fraction >= 1:
            raise ValueError("test_fraction + valid_fraction must be below 1")
        return self
