"""Exploration for new items: a Thompson-sampling bandit that reserves slots of personalised lists for items
added recently, and learns from what users do with them.

Each new item is an arm with a Beta(1 + rewards, 1 + shows − rewards) posterior on its click rate; a slot goes to
the arm with the highest draw. A show is counted when the item is served in an exploration slot; a reward when a
click, add-to-cart or purchase on it is posted (by anyone: the rate is the item's, not the user's).
"""

from __future__ import annotations

import numpy as np
from recstack.client.core.config import FacadeConfig
from recstack.client.core.guards import GuardedStore
from recstack.client.core.sessions import SessionStore
from recstack.client.core.shop import Shop
from recstack.client.recommendation import Recommendation

REWARDING_EVENTS = ("click", "add_to_cart", "purchase")
EXPLORATION_REASON = "new arrival"
EXPLORATION_VERSION = "bandit-thompson"


def thompson_pick(items: list[int], shows: dict[int, float], rewards: dict[int, float], count: int,
                  rng: np.random.Generator) -> list[int]:
    """The ``count`` items with the highest Beta-posterior draws.

    Examples
    --------
    >>> thompson_pick([5, 6], {5: 100, 6: 100}, {5: 60, 6: 2}, 1, np.random.default_rng(0))
    [5]
    """
    if not items or count <= 0:
        return []
    trials = np.array([shows.get(i, 0.0) for i in items])
    # Clicks that came from elsewhere (search, similar items) would push the rate past 1: cap them at the shows.
    wins = np.minimum(np.array([rewards.get(i, 0.0) for i in items]), trials)
    losses = trials - wins
    draws = rng.beta(1.0 + wins, 1.0 + losses)
    return [items[i] for i in np.argsort(-draws, kind="stable")[:count]]


class NewItemExploration:
    """The exploration slots of personalised lists: the newest items are the arms; shows and rewards live in the
    session store, so every facade process learns from every other's traffic."""

    def __init__(self, shop: Shop, store: SessionStore, guarded_store: GuardedStore, config: FacadeConfig,
                 rng: np.random.Generator | None = None):
        self.shop, self.store, self.guarded_store, self.config = shop, store, guarded_store, config
        self.rng = rng or np.random.default_rng()
        self.new_items = shop.new_items(config.freshness_days)  # newest first
        self.new_item_set = set(self.new_items)

    def add(self, indices: list[int]) -> None:
        """Items just added to the catalog: the newest arms of all."""
        self.new_items[:0] = indices
        self.new_item_set.update(indices)

    async def fill(self, items: list[Recommendation], skip: set[int], limit: int,
                   category: str) -> list[Recommendation]:
        """Give the bandit's new items their slots (from ``exploration_position`` on) and count the shows."""
        listed = {self.shop.item_index(i.item_id) for i in items}
        # The newest eligible items only: bandit statistics are read per request, so the arm count stays bounded.
        arms = [i for i in self.new_items if i not in skip and i not in listed
                and (not category or self.shop.categories[i] == category)][: self.config.exploration_arms]
        # Short lists stay the models' own: the slot is at exploration_position or not at all.
        slots = min(self.config.exploration_slots, limit - self.config.exploration_position)
        if not arms or slots <= 0:
            return items
        ids = [self.shop.item_ids[i] for i in arms]
        shows, rewards = await self.guarded_store("read", lambda: self.store.bandit_stats(ids), ({}, {}),
                                                  "exploration")
        picked = [self.shop.item_index(i) for i in thompson_pick(ids, shows, rewards, slots, self.rng)]
        kept = items[: limit - len(picked)]
        for offset, item in enumerate(picked):
            position = min(self.config.exploration_position + offset, len(kept))
            kept.insert(position, Recommendation(item_id=self.shop.item_ids[item], score=0.0,
                                                 reason=EXPLORATION_REASON, model_version=EXPLORATION_VERSION,
                                                 item_idx=item))
        shown = [self.shop.item_ids[i] for i in picked]
        await self.guarded_store("bandit", lambda: self.store.bandit_record(shown, []), None)
        return kept

    async def reward(self, events: list[dict]) -> None:
        """Count the clicks, carts and purchases on new items among posted events."""
        rewarded = [e["item_id"] for e in events if e["event_type"] in REWARDING_EVENTS
                    and e["item_idx"] in self.new_item_set]
        if rewarded:
            await self.guarded_store("bandit", lambda: self.store.bandit_record([], rewarded), None)
