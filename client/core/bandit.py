"""Exploration for new items: a Thompson-sampling bandit that reserves slots of personalised lists for items
added recently, and learns from what users do with them.

Each new item is an arm with a Beta(1 + rewards, 1 + shows − rewards) posterior on its click rate; a slot goes to
the arm with the highest draw. A show is counted when the item is served in an exploration slot; a reward when a
click, add-to-cart or purchase on it is posted (by anyone: the rate is the item's, not the user's).
"""

from __future__ import annotations

import numpy as np

REWARDING_EVENTS = ("click", "add_to_cart", "purchase")
EXPLORATION_REASON = "new arrival"


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
