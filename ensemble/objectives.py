"""Multi-objective re-ranking: relevance traded against the ranker's P(click), P(add-to-cart), P(purchase) and
each item's business value, by :class:`~recstack.ensemble.config.ObjectiveWeights`.

Relevance is the ranker's score min-max scaled over the user's candidates (as :class:`Reranker` scales it), so it
lies in [0, 1] like the probabilities; value is divided by the catalog's median value, so a revenue weight of 1
puts an item of median price bought for sure level with the most relevant candidate. Weights are unit-free and
chosen per shop (or per experiment variant) from the offline report (``recstack bench objectives``).
"""

from __future__ import annotations

import numpy as np
from recstack.ensemble.config import OBJECTIVE_WEIGHTS, ObjectiveWeights


def min_max(scores: np.ndarray, valid: np.ndarray) -> np.ndarray:
    """(B, N) scores scaled to [0, 1] over each row's ``valid`` entries (1 where a row's valid scores are equal).

    Examples
    --------
    >>> min_max(np.array([[1.0, 3.0, 2.0]]), np.array([[True, True, False]]))
    array([[0. , 1. , 0.5]])
    """
    raw = scores.astype(np.float64)
    low = np.where(valid, raw, np.inf).min(1, keepdims=True)
    spread = np.where(valid, raw, -np.inf).max(1, keepdims=True) - low
    with np.errstate(invalid="ignore"):
        return np.where(spread > 0, (raw - low) / np.where(spread > 0, spread, 1.0), 1.0)


def objective_terms(probabilities: np.ndarray, value: np.ndarray,
                    weights: ObjectiveWeights | np.ndarray) -> np.ndarray:
    """(B, N, 4): what each weight adds to the candidates' relevance, in ``OBJECTIVE_WEIGHTS`` order, from the
    heads' probabilities (B, N, 3: click, add-to-cart, purchase, ``OBJECTIVES`` order), the candidates' business
    value (B, N; already over the median) and ``weights``: one :class:`ObjectiveWeights` for every row, or a
    (B, 4) array of per-user weights (users of different experiment variants in one batch)."""
    click, cart, purchase = np.moveaxis(probabilities.astype(np.float64), -1, 0)
    rows = weights.rows() if isinstance(weights, ObjectiveWeights) else np.asarray(weights)
    rows = np.broadcast_to(rows.astype(np.float64).reshape(-1, len(OBJECTIVE_WEIGHTS)),
                           (len(click), len(OBJECTIVE_WEIGHTS)))
    return np.stack([click, cart, purchase, purchase * value], axis=-1) * rows[:, None, :]


def objective_scores(relevance: np.ndarray, probabilities: np.ndarray, value: np.ndarray,
                     weights: ObjectiveWeights | np.ndarray) -> np.ndarray:
    """(B, N) re-rank scores: relevance (B, N) plus the :func:`objective_terms`.

    Examples
    --------
    >>> relevance = np.array([[1.0, 0.8]])
    >>> p = np.array([[[0.3, 0.1, 0.05], [0.3, 0.2, 0.15]]])
    >>> value = np.array([[1.0, 2.0]])
    >>> objective_scores(relevance, p, value, ObjectiveWeights()).round(2)
    array([[1. , 0.8]])
    >>> objective_scores(relevance, p, value, ObjectiveWeights(revenue=2.0)).round(2)
    array([[1.1, 1.4]])
    >>> objective_scores(relevance, p, value, np.array([[0.0, 0.0, 0.0, 2.0]])).round(2)
    array([[1.1, 1.4]])
    """
    return relevance + objective_terms(probabilities, value, weights).sum(-1)


def check_weights(weights: np.ndarray, users: int) -> np.ndarray:
    """A request's ``objective_weights`` (users, 4) as float64, or a ``ValueError`` that says what is wrong.

    Examples
    --------
    >>> check_weights(np.array([[0, 0, 0, -1.0]]), 1)
    Traceback (most recent call last):
    ...
    ValueError: objective_weights must be finite and not negative; got [[ 0.  0.  0. -1.]]
    """
    weights = np.asarray(weights, dtype=np.float64)
    if weights.shape != (users, len(OBJECTIVE_WEIGHTS)):
        raise ValueError(f"objective_weights must be (users, {len(OBJECTIVE_WEIGHTS)}): "
                         f"{', '.join(OBJECTIVE_WEIGHTS)} per user; got shape {weights.shape} for {users} users")
    if not np.isfinite(weights).all() or (weights < 0).any():
        raise ValueError(f"objective_weights must be finite and not negative; got {weights}")
    return weights


def relative_value(value: np.ndarray) -> np.ndarray:
    """Business values over the median of the positive ones (0 stays 0: no known value earns nothing).

    Examples
    --------
    >>> relative_value(np.array([0.0, 10.0, 20.0, 40.0]))
    array([0. , 0.5, 1. , 2. ])
    """
    known = value[value > 0]
    return value / np.median(known) if len(known) else np.zeros_like(value, dtype=np.float64)
