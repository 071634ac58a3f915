"""Typed configuration of the preprocessing workflow; saved with every fitted workflow."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import datetime
from typing import Literal

from recstack.preprocessing.schema import EVENT_TYPES

DEFAULT_MAX_SEQUENCE_LENGTH = 200  # most recent items kept per user; the ranker's default window too


def _default_event_weights() -> dict[str, float]:
    return {"view": 1.0, "click": 2.0, "add_to_cart": 4.0, "purchase": 8.0, "rating": 1.0}


def _at_least(config, minimum: float, *names: str, strict: bool = False) -> None:
    bad = {n: getattr(config, n) for n in names
           if getattr(config, n) < minimum or (strict and getattr(config, n) == minimum)}
    if bad:
        raise ValueError(f"these settings must be {'above' if strict else 'at least'} {minimum}: {bad}")


@dataclass(frozen=True)
class WorkflowConfig:
    """What the workflow computes. Defaults work on every bundled dataset without tuning.

    Examples
    --------
    >>> WorkflowConfig(min_item_count=5).session_gap_minutes
    30.0
    >>> WorkflowConfig(cooccurrence_window=0)
    Traceback (most recent call last):
    ...
    ValueError: these settings must be at least 1: {'cooccurrence_window': 0}
    """

    # Items with fewer fitting events go to the OOV bucket, unless the items table lists them (cold start).
    min_item_count: int = 1
    min_user_count: int = 1  # users with fewer fitting events go to the OOV bucket
    # Strength of each event type; multiplied by the event's own weight.
    event_weights: dict[str, float] = field(default_factory=_default_event_weights)
    session_gap_minutes: float = 30.0  # inactivity that starts a new session
    max_sequence_length: int = DEFAULT_MAX_SEQUENCE_LENGTH
    # Consecutive events on one item (a view→cart→purchase funnel) count as one step of the sequence.
    collapse_repeats: bool = True
    recent_days: float = 7.0  # window of the 'recent popularity' statistic
    cooccurrence_window: int = 3  # steps apart within a session that still co-occur
    cooccurrence_top_k: int = 50  # neighbours kept per item and kind
    price_buckets: int = 10  # quantile buckets of item price
    title_max_tokens: int = 8
    min_token_count: int = 2  # title tokens rarer than this go to the OOV bucket

    def __post_init__(self):
        _at_least(self, 0, "min_item_count", "min_user_count")
        _at_least(self, 0, "session_gap_minutes", "recent_days", strict=True)
        _at_least(self, 2, "max_sequence_length")
        _at_least(self, 1, "cooccurrence_window", "cooccurrence_top_k", "price_buckets", "title_max_tokens",
                  "min_token_count")
        unknown = set(self.event_weights) - set(EVENT_TYPES)
        missing = set(EVENT_TYPES) - set(self.event_weights)
        if unknown or missing:
            raise ValueError(f"event_weights must give a weight to exactly {list(EVENT_TYPES)}; "
                             f"unknown {sorted(unknown)}, missing {sorted(missing)}")

    def to_json(self) -> dict:
        return asdict(self)


@dataclass(frozen=True)
class SplitConfig:
    """How events are split into train / validation / test.

    ``leave_one_out``: per user, the last step is the test target and the second last the
    validation target (users with fewer than 3 steps stay in train), as in the SASRec papers.
    ``temporal``: one global cut-off; events at or after ``test_start`` are test, those in the
    ``valid_fraction`` of time before it are validation. Without ``test_start`` the cut-off is the
    timestamp quantile ``1 - test_fraction``.

    Examples
    --------
    >>> SplitConfig(test_fraction=0.5, valid_fraction=0.5)
    Traceback (most recent call last):
    ...
    ValueError: test_fraction + valid_fraction must be below 1
    """

    strategy: Literal["leave_one_out", "temporal"] = "leave_one_out"
    test_start: datetime | None = None
    test_fraction: float = 0.1
    valid_fraction: float = 0.1

    def __post_init__(self):
        if self.strategy not in ("leave_one_out", "temporal"):
            raise ValueError(f"strategy must be 'leave_one_out' or 'temporal'; got {self.strategy!r}")
        if not 0 < self.test_fraction < 1 or not 0 <= self.valid_fraction < 1:
            raise ValueError("test_fraction must be within (0, 1) and valid_fraction within [0, 1)")
        if self.test_fraction + self.valid_fraction >= 1:
            raise ValueError("test_fraction + valid_fraction must be below 1")

    def to_json(self) -> dict:
        return {**asdict(self), "test_start": self.test_start.isoformat() if self.test_start else None}
