import numpy as np
import pytest
from recstack.ensemble.config import ObjectiveWeights, RerankConfig
from recstack.ensemble.objectives import min_max, objective_scores, relative_value

# Three candidates: the most relevant converts poorly, the second is cheap and converts well, the third is dear.
RELEVANCE = np.array([[1.0, 0.7, 0.5]])
PROBABILITIES = np.array([[[0.2, 0.05, 0.01], [0.5, 0.4, 0.3], [0.3, 0.2, 0.1]]])
VALUE = np.array([[1.0, 0.5, 8.0]])


def order(weights: ObjectiveWeights) -> list[int]:
    return np.argsort(-objective_scores(RELEVANCE, PROBABILITIES, VALUE, weights)[0], kind="stable").tolist()


def test_weightings_order_items_as_configured():
    assert order(ObjectiveWeights()) == [0, 1, 2]  # relevance alone
    assert order(ObjectiveWeights(purchase=2.0)) == [1, 0, 2]  # the likely purchase first
    assert order(ObjectiveWeights(click=2.0)) == [1, 0, 2]
    assert order(ObjectiveWeights(revenue=1.0)) == [2, 0, 1]  # P(purchase)·value: the dear item first


def test_zero_weights_leave_relevance_unchanged():
    scores = objective_scores(RELEVANCE, PROBABILITIES, VALUE, ObjectiveWeights())
    np.testing.assert_array_equal(scores, RELEVANCE)
    assert not ObjectiveWeights().active and ObjectiveWeights(revenue=0.1).active


def test_weights_are_validated_and_part_of_the_rerank_settings():
    with pytest.raises(ValueError, match="must not be negative"):
        ObjectiveWeights(purchase=-1.0)
    assert RerankConfig().objectives == ObjectiveWeights()


def test_min_max_and_relative_value():
    valid = np.array([[True, True, True, False]])
    np.testing.assert_allclose(min_max(np.array([[2.0, 4.0, 3.0, 99.0]]), valid), [[0.0, 1.0, 0.5, 97.0 / 2]])
    np.testing.assert_array_equal(min_max(np.array([[5.0, 5.0]]), np.array([[True, True]])), [[1.0, 1.0]])
    np.testing.assert_allclose(relative_value(np.array([0.0, 2.0, 4.0, 8.0])), [0.0, 0.5, 1.0, 2.0])
    np.testing.assert_array_equal(relative_value(np.zeros(3)), np.zeros(3))


def test_the_weights_a_repository_was_built_with_come_back_from_funnel_json():
    from dataclasses import asdict

    config = RerankConfig(objectives=ObjectiveWeights(revenue=0.05))
    assert RerankConfig(**asdict(config)) == config
