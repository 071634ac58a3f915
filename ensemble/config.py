"""Typed settings of the serving stage (part of :class:`recstack.settings.Settings` as ``serving``); light
(no faiss, no onnxruntime), so every role imports them."""

from __future__ import annotations

from dataclasses import dataclass, field, fields
from typing import Literal

import numpy as np

from recstack.devices import Device

IndexKind = Literal["auto", "flat", "ivf", "ivfpq", "hnsw"]
FRESHNESS_DAYS = 14.0  # items created (or first seen) this recently are "new arrivals" and bandit arms
DEFAULT_HOST = "127.0.0.1"
DEFAULT_HTTP_PORT, DEFAULT_GRPC_PORT, DEFAULT_METRICS_PORT = 8000, 8001, 8002
DEFAULT_TRITON_GRPC_URL = f"{DEFAULT_HOST}:{DEFAULT_GRPC_PORT}"


@dataclass(frozen=True)
class RetrieveConfig:
    """Candidate budget and how it is split between sources."""

    candidates: int = 500
    covisitation_share: float = 0.1
    covisitation_anchors: int = 5  # latest history items whose co-visited items are used
    trending: int = 20
    exploration: int = 10

    def __post_init__(self):
        if self.candidates < 1:
            raise ValueError("candidates must be positive")
        if not 0 <= self.covisitation_share <= 1:
            raise ValueError("covisitation_share must be within [0, 1]")
        if min(self.trending, self.exploration, self.covisitation_anchors) < 0:
            raise ValueError("trending, exploration and covisitation_anchors must not be negative")


@dataclass(frozen=True)
class ObjectiveWeights:
    """How the re-rank trades relevance against the ranker's objective heads (:mod:`recstack.ensemble.objectives`):
    ``relevance + click·P(click) + add_to_cart·P(cart) + purchase·P(purchase) + revenue·P(purchase)·value/median
    value``. All 0 (the default): relevance alone, as without heads."""

    click: float = 0.0
    add_to_cart: float = 0.0
    purchase: float = 0.0
    revenue: float = 0.0  # P(purchase) × the item's business value (price or margin) over the catalog's median

    def __post_init__(self):
        if min(self.click, self.add_to_cart, self.purchase, self.revenue) < 0:
            raise ValueError(f"objective weights must not be negative; got {self}")

    @property
    def active(self) -> bool:
        return any((self.click, self.add_to_cart, self.purchase, self.revenue))

    def rows(self, users: int = 1) -> np.ndarray:
        """The ``objective_weights`` request tensor of ``users`` users with these weights: (users, 4),
        ``OBJECTIVE_WEIGHTS`` order.

        Examples
        --------
        >>> ObjectiveWeights(revenue=0.5).rows(2).tolist()
        [[0.0, 0.0, 0.0, 0.5], [0.0, 0.0, 0.0, 0.5]]
        """
        return np.tile(np.array([getattr(self, name) for name in OBJECTIVE_WEIGHTS], dtype=np.float32), (users, 1))


# The order of the weights in the ``objective_weights`` tensor a request carries (one row per user).
OBJECTIVE_WEIGHTS: tuple[str, ...] = tuple(f.name for f in fields(ObjectiveWeights))


@dataclass(frozen=True)
class RerankConfig:
    """Re-rank settings (the experiments of the facade vary these)."""

    mmr_lambda: float = 0.8  # 1.0: pure relevance, lower: more diverse
    max_category_run: int = 2  # no three items of one category in a row
    freshness_boost: float = 0.05  # added to the relevance of new items
    pool: int = 200  # best candidates MMR chooses from
    reason_window: int = 20  # latest history items a "because you viewed" reason may name
    objectives: ObjectiveWeights = field(default_factory=ObjectiveWeights)

    def __post_init__(self):
        if isinstance(self.objectives, dict):  # as funnel.json keeps them (``asdict``)
            object.__setattr__(self, "objectives", ObjectiveWeights(**self.objectives))
        if not 0 <= self.mmr_lambda <= 1:
            raise ValueError("mmr_lambda must be within [0, 1]")
        if self.max_category_run < 1 or self.pool < 1 or self.reason_window < 1:
            raise ValueError("max_category_run, pool and reason_window must be positive")


@dataclass(frozen=True)
class ServingConfig:
    """How the model repository is built and where Triton listens.

    ``device`` decides every ``instance_group`` at once: ``KIND_GPU`` on a GPU host (``auto`` when CUDA is
    visible), ``KIND_CPU`` otherwise; the same repository layout either way.
    """

    retrieve: RetrieveConfig = field(default_factory=RetrieveConfig)
    rerank: RerankConfig = field(default_factory=RerankConfig)
    index: IndexKind = "auto"
    index_target_recall: float = 0.95  # IVF nprobe grows until recall@candidates vs exact reaches it
    freshness_days: float = FRESHNESS_DAYS
    device: Device = "auto"
    instances: int = 1  # per model
    max_batch_size: int = 64
    queue_delay_us: int = 200  # dynamic batching: how long a request may wait for others
    onnx_threads: int = 1
    keep_versions: int = 2  # older model versions are deleted from the repository at build time
    host: str = DEFAULT_HOST
    http_port: int = DEFAULT_HTTP_PORT
    grpc_port: int = DEFAULT_GRPC_PORT
    metrics_port: int = DEFAULT_METRICS_PORT

    def __post_init__(self):
        if self.keep_versions < 1:
            raise ValueError("keep_versions must be at least 1 (the version being served)")
        if min(self.instances, self.max_batch_size, self.onnx_threads) < 1 or self.queue_delay_us < 0:
            raise ValueError("instances, max_batch_size and onnx_threads must be positive, queue_delay_us ≥ 0")
