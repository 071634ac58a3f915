"""The facade's engine without Triton: the funnel in the worker process (onnxruntime + FAISS).

It is the in-process :class:`recstack.client.engine.Engine`: the facade and batch scoring run unchanged on it or on
Triton (``RECSTACK_FACADE__ENGINE=in-process``). The funnel runs on one thread beside the event
loop; recommendation requests that arrive while it is busy are answered together in one batch, as Triton's
dynamic batcher would, so neither side of the benchmark comparison gets batching the other lacks. Requests whose
caller has given up (the facade's time budget) are dropped from the queue, so an overloaded worker does not spend
itself on answers no one waits for.
"""

from __future__ import annotations

import asyncio
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from recstack.client.recommendation import RecommendationList, lists
from recstack.ensemble.config import ObjectiveWeights
from recstack.ensemble.funnel import Funnel, request_arrays
from recstack.ensemble.triton_models import check_limit


class InProcessRecommender:
    """The :class:`recstack.client.engine.Engine` calls over a built repository.

    Examples
    --------
    >>> engine = InProcessRecommender("build/model_repository")  # doctest: +SKIP
    >>> (await engine.recommend([[17, 42]], limit=5))[0].items[0].reason  # doctest: +SKIP
    'because you viewed ...'
    """

    def __init__(self, repository: str | Path, max_batch: int = 64):
        self.funnel = Funnel(repository)
        self.max_batch = max_batch
        self._executor = ThreadPoolExecutor(1, thread_name_prefix="funnel")
        self._queue: list[tuple[list, list, int, asyncio.Future]] = []
        self._draining = False

    async def _run(self, function, *args):
        return await asyncio.get_running_loop().run_in_executor(self._executor, function, *args)

    async def recommend(self, histories, exclude=None, limit: int = 20, model: str = "recommend",
                        version: int | None = None, objectives: ObjectiveWeights | None = None
                        ) -> list[RecommendationList]:
        return lists(await self.recommend_arrays(histories, exclude, limit, model, version, objectives))

    async def recommend_arrays(self, histories, exclude=None, limit: int = 20, model: str = "recommend",
                               version: int | None = None, objectives: ObjectiveWeights | None = None
                               ) -> dict[str, np.ndarray]:
        if model != "recommend":
            raise ValueError(f"the in-process engine serves the 'recommend' funnel only, not {model!r}")
        if version not in (None, self.funnel.settings["repository_version"]):
            raise ValueError(f"the in-process engine serves repository version "
                             f"{self.funnel.settings['repository_version']} only, not {version}")
        check_limit(limit)
        histories = [np.asarray(h, dtype=np.int64) for h in histories]
        exclude = [[]] * len(histories) if exclude is None else list(exclude)
        future = asyncio.get_running_loop().create_future()
        self._queue.append((histories, exclude, limit, future, objectives))
        if not self._draining:
            self._draining = True
            asyncio.get_running_loop().create_task(self._drain())
        return await future

    async def _drain(self) -> None:
        """Answer what is queued, in batches of at most ``max_batch`` users, until the queue is empty."""
        try:
            while self._queue:
                batch, users = [], 0
                while self._queue and (not batch or users + len(self._queue[0][0]) <= self.max_batch):
                    request = self._queue.pop(0)
                    if request[3].done():  # its caller timed out and got the fallback: no one waits for it
                        continue
                    batch.append(request)
                    users += len(request[0])
                if not batch:
                    continue
                try:
                    outputs = await self._run(self._recommend_batch, batch)
                except Exception as exc:  # noqa: BLE001 - every waiting request gets the error
                    for *_, future, _ in batch:
                        if not future.done():
                            future.set_exception(exc)
                    continue
                row = 0
                for histories, _, _, future, _ in batch:
                    if not future.done():  # its caller may have timed out and gone
                        future.set_result({name: value[row:row + len(histories)] for name, value in outputs.items()})
                    row += len(histories)
        finally:
            self._draining = False

    def _recommend_batch(self, batch) -> dict[str, np.ndarray]:
        histories = [h for request in batch for h in request[0]]
        exclude = [e for request in batch for e in request[1]]
        seq, excluded, limits = request_arrays(histories, exclude, 0, self.funnel.max_length)
        limits[:, 0] = [limit for request in batch for limit in [request[2]] * len(request[0])]
        # Each request's users with its objective weights, as Triton batches requests of different variants.
        built = self.funnel.reranker.config.objectives
        weights = None if all(request[4] is None for request in batch) else np.concatenate(
            [(request[4] or built).rows(len(request[0])) for request in batch])
        return self.funnel.recommend(seq, excluded, limits, weights)

    async def rank(self, history: Sequence[int], candidates: Sequence[int]) -> np.ndarray:
        if not len(candidates):
            raise ValueError("at least one candidate is needed")
        seq = request_arrays([history], None, 1, self.funnel.max_length)[0]
        feed = {"item_seq": seq, "candidates": np.asarray([candidates], dtype=np.int64)}
        return (await self._run(self.funnel.ranker.run, None, feed))[0][0]

    async def similar(self, item_idx: int, limit: int = 10, kind: str = "similar") -> RecommendationList:
        return lists(await self._run(self.funnel.similar, item_idx, limit, kind))[0]

    async def trending(self, limit: int = 20, category: str = "") -> RecommendationList:
        return lists(await self._run(self.funnel.trending, limit, category))[0]

    async def ready(self) -> bool:
        return True

    async def close(self) -> None:
        self._executor.shutdown(wait=False, cancel_futures=True)
