"""One interface to the funnel, wherever it runs: Triton over gRPC, Triton over HTTP, or in this process.

The facade, ``recstack score`` and the benchmarks talk to an :class:`Engine` and never ask which one it is;
:func:`open_engine` picks the implementation from the settings (as implicit's factory picks a CPU or GPU model).
Every implementation passes one contract test suite (``tests/client/test_engine_contract.py``).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Literal, Protocol, runtime_checkable

import numpy as np
from recstack.client.recommendation import RecommendationList
from recstack.ensemble.config import ObjectiveWeights

EngineKind = Literal["triton-grpc", "triton-http", "in-process"]
ENGINE_KINDS: tuple[EngineKind, ...] = ("triton-grpc", "triton-http", "in-process")


@runtime_checkable
class Engine(Protocol):
    """Awaitable calls of the funnel on item indices (the preprocessing vocabulary); histories oldest first."""

    async def recommend(self, histories: Sequence[Sequence[int]], exclude: Sequence[Sequence[int]] | None = None,
                        limit: int = 20, model: str = "recommend", version: int | None = None,
                        objectives: ObjectiveWeights | None = None) -> list[RecommendationList]:
        """One personalised list per history (retrieve → rank → re-rank); ``model`` names the ensemble and
        ``version`` its version (None: the one serving by default); ``objectives``: how the re-rank weighs the
        ranker's objective heads for these users (None: as the repository was built)."""

    async def recommend_arrays(self, histories: Sequence[Sequence[int]],
                               exclude: Sequence[Sequence[int]] | None = None, limit: int = 20,
                               model: str = "recommend", version: int | None = None,
                               objectives: ObjectiveWeights | None = None) -> dict[str, np.ndarray]:
        """The same lists as output tensors (``item_ids``, ``item_idx``, ``scores``, ``reasons``,
        ``model_version``; rows padded with item index -1), for batch work that never builds objects."""

    async def rank(self, history: Sequence[int], candidates: Sequence[int]) -> np.ndarray:
        """The ranker's score of each candidate for a user with this history."""

    async def similar(self, item_idx: int, limit: int = 10, kind: str = "similar") -> RecommendationList:
        """Items like one item: ``similar`` (embeddings), ``also_viewed`` or ``bought_together``."""

    async def trending(self, limit: int = 20, category: str = "") -> RecommendationList:
        """The most popular items of late, overall or in one category."""

    async def ready(self) -> bool:
        """Whether the engine answers now."""

    async def close(self) -> None:
        """Release connections and threads."""


def engine_kind(engine: str, protocol: str = "grpc") -> EngineKind:
    """The facade's two settings (``engine``: triton or in-process; ``protocol``: grpc or http) as one kind.

    Examples
    --------
    >>> engine_kind("triton", "http"), engine_kind("in-process")
    ('triton-http', 'in-process')
    """
    kind = "in-process" if engine == "in-process" else f"{engine}-{protocol}"
    if kind not in ENGINE_KINDS:
        raise ValueError(f"no engine {engine!r} over {protocol!r}; choose from {list(ENGINE_KINDS)}")
    return kind


def open_engine(kind: EngineKind, triton_url: str | None = None, repository: str | Path | None = None) -> Engine:
    """The engine of ``kind``: Triton at ``triton_url`` (its gRPC or HTTP address), or the funnel in this process
    over the built ``repository``.

    Examples
    --------
    >>> engine = open_engine("in-process", repository="build/model_repository")  # doctest: +SKIP
    >>> (await engine.recommend([[17, 42]], limit=5))[0].items[0].reason  # doctest: +SKIP
    'because you viewed ...'
    """
    if kind == "in-process":
        if repository is None:
            raise ValueError("the in-process engine needs a built model repository")
        from recstack.client.core.in_process import InProcessRecommender

        return InProcessRecommender(repository)
    if kind not in ENGINE_KINDS:
        raise ValueError(f"no engine {kind!r}; choose from {list(ENGINE_KINDS)}")
    if triton_url is None:
        raise ValueError(f"the {kind} engine needs Triton's address")
    from recstack.client.triton import AsyncTritonRecommender

    return AsyncTritonRecommender(triton_url, "grpc" if kind == "triton-grpc" else "http")
