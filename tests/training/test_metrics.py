import math

import numpy as np
import pytest
import torch
from recstack.training.metrics import RankingAccumulator, sampled_ranks

NONE = np.array([], dtype=np.int64)


def _result(scores, histories, targets, ks=(1, 3), **side):
    acc = RankingAccumulator(ks=ks, n_items=len(scores[0]), **side)
    acc.add(torch.tensor(scores, dtype=torch.float32), histories, targets)
    return acc.result()


# items: 0 pad, 1 OOV, then a=2, b=3, c=4, d=5
SCORES = [[9.0, 9.0, 0.9, 0.8, 0.7, 0.1]]


def test_single_target_at_rank_three():
    r = _result(SCORES, [NONE], [np.array([4])])
    assert r["hr@1"] == 0 and r["hr@3"] == 1 and r["recall@3"] == 1
    assert r["ndcg@3"] == pytest.approx(1 / math.log2(4))
    assert r["mrr"] == pytest.approx(1 / 3)


def test_padding_and_oov_are_never_recommended_and_seen_items_are_filtered():
    r = _result(SCORES, [np.array([2])], [np.array([4])])  # "a" already seen: c moves up to rank 2
    assert r["ndcg@3"] == pytest.approx(1 / math.log2(3)) and r["mrr"] == pytest.approx(1 / 2)


def test_a_target_already_in_the_history_stays_reachable():
    r = _result(SCORES, [np.array([2, 4])], [np.array([2])])
    assert r["hr@1"] == 1 and r["mrr"] == 1


def test_several_targets_recall_and_ideal_dcg():
    r = _result(SCORES, [NONE], [np.array([2, 5])], ks=(2,))
    assert r["recall@2"] == pytest.approx(0.5) and r["hr@2"] == 1
    assert r["ndcg@2"] == pytest.approx(1 / (1 + 1 / math.log2(3)))


def test_metrics_average_over_users_and_batches():
    acc = RankingAccumulator(ks=(1,), n_items=6)
    acc.add(torch.tensor(SCORES), [NONE], [np.array([2])])  # hit
    acc.add(torch.tensor(SCORES), [NONE], [np.array([5])])  # miss
    r = acc.result()
    assert r["hr@1"] == 0.5 and r["users"] == 2


def test_coverage_diversity_and_novelty():
    scores = [[0, 0, 4, 3, 2, 1], [0, 0, 1, 2, 3, 4]]
    category = np.array([0, 0, 7, 7, 8, 8])
    share = np.array([0, 0, 0.5, 0.5, 0.25, 0.25])
    r = _result(scores, [NONE, NONE], [np.array([2]), np.array([2])], ks=(1,), item_category=category,
                item_user_share=share)
    assert r["coverage@10"] == 1.0  # top-10 of 4 recommendable items covers all
    # each list holds 2 items of category 7 and 2 of 8: 8 of 12 ordered pairs differ
    assert r["diversity@10"] == pytest.approx(8 / 12)
    assert r["novelty@10"] == pytest.approx((1 + 1 + 2 + 2) / 4)


def test_sampled_ranks_count_only_sampled_negatives_above_the_target():
    scores = torch.tensor([[0, 0] + list(range(100, 0, -1))], dtype=torch.float32)  # item 2 best
    ranks = sampled_ranks(scores, [NONE], [np.array([2])], 50, np.random.default_rng(0))
    assert ranks.tolist() == [1]
    worst = sampled_ranks(scores, [NONE], [np.array([101])], 50, np.random.default_rng(0))
    assert worst.tolist() == [51]


def test_ties_with_the_target_never_count_in_the_models_favour():
    constant = [[0.0, 0.0, 1.0, 1.0, 1.0, 1.0]]
    r = _result(constant, [NONE], [np.array([3])])
    assert r["mrr"] == pytest.approx(1 / 2.5)  # mean rank of 4 tied items
    ranks = sampled_ranks(torch.tensor(constant), [NONE], [np.array([3])], 10, np.random.default_rng(0))
    assert ranks[0] > 1
