import numpy as np
from recstack.client.core.bandit import thompson_pick


def test_thompson_sampling_learns_the_better_item():
    rng = np.random.default_rng(0)
    true_rate = {10: 0.05, 11: 0.30, 12: 0.10}
    shows, rewards = {}, {}
    picks = []
    for _ in range(1500):
        (item,) = thompson_pick(list(true_rate), shows, rewards, 1, rng)
        picks.append(item)
        shows[item] = shows.get(item, 0) + 1
        rewards[item] = rewards.get(item, 0) + float(rng.random() < true_rate[item])
    assert picks[-500:].count(11) > 400  # exploits the best arm once it has learnt
    assert all(shows.get(i, 0) > 5 for i in true_rate)  # but tried every arm


def test_untried_items_get_explored():
    rng = np.random.default_rng(1)
    picked = [thompson_pick([1, 2], {1: 50, 2: 0}, {1: 5, 2: 0}, 1, rng)[0] for _ in range(200)]
    assert 0.6 < picked.count(2) / 200 < 1.0
    assert thompson_pick([], {}, {}, 2, rng) == [] and len(thompson_pick([1, 2, 3], {}, {}, 2, rng)) == 2
