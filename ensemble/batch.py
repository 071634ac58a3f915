"""The ``recommend`` funnel for a chunk of users at once, as matrices: what batch scoring runs
(``recstack score --mode batch``).

The chunk is cut into groups of users of similar history length, each group exactly what the online funnel would
get as one batch (its ``item_seq`` padded to its own window, so short histories are not padded to the longest
of the chunk). The query encoder runs per group, one FAISS search covers the whole chunk on every core, and each
group's candidates are merged, ranked and re-ranked by the same code as the online funnel (:class:`Funnel`).
While the ranker scores one group (onnxruntime, outside the GIL) the Python stages of the next run beside it.
"""

from __future__ import annotations

import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np
from recstack.ensemble.config import ObjectiveWeights
from recstack.ensemble.funnel import Funnel, request_arrays
from recstack.ensemble.rerank import pack
from recstack.training.config import OBJECTIVES_OUTPUT
from threadpoolctl import ThreadpoolController

GROUP_USERS = 256  # users per ranker call: large enough to amortise onnxruntime's per-call cost


class BatchFunnel:
    """:meth:`recommend_histories` gives the same lists as :meth:`Funnel.recommend_histories` on the same users
    (scores equal within float rounding: ``tests/ensemble/test_batch.py``), faster per user (it overlaps the
    ranker with the Python stages and searches once per chunk: benchmarks/README.md, "Batch scoring").

    Examples
    --------
    >>> engine = BatchFunnel("build/model_repository")  # doctest: +SKIP
    >>> out = engine.recommend_histories(histories, [[]] * len(histories), limit=50)  # doctest: +SKIP
    >>> out["item_ids"].shape  # doctest: +SKIP
    (5000, 50)
    """

    def __init__(self, repository: str | Path, threads: int | None = None, group_users: int = GROUP_USERS):
        self.threads = threads or os.cpu_count() or 1
        self.funnel = Funnel(repository, threads=self.threads)
        self.group_users = group_users
        self._ranker = ThreadPoolExecutor(1, thread_name_prefix="ranker")
        self._blas = ThreadpoolController()

    def recommend_histories(self, histories, exclude, limit: int,
                            objectives: ObjectiveWeights | None = None) -> dict[str, np.ndarray]:
        """Lists for raw histories (item indices, oldest first) with per-user ``exclude`` lists, in input order;
        ``objectives``: every user's objective weights (None: the ones the repository was built with)."""
        funnel = self.funnel
        order = np.argsort([len(h) for h in histories], kind="stable")
        groups = [order[i:i + self.group_users] for i in range(0, len(order), self.group_users)]
        inputs = [request_arrays([histories[u] for u in g], [exclude[u] for u in g], limit, funnel.max_length)
                  for g in groups]
        queries = [funnel.stages["query_encoder"]({"item_seq": seq})["query_embedding"] for seq, _, _ in inputs]
        ann = funnel.retriever.search(np.concatenate(queries), max(seq.shape[1] for seq, _, _ in inputs))
        starts = np.cumsum([0] + [len(g) for g in groups])
        lists: list = [None] * len(histories)
        # The re-rank's small per-user matrix products ran 3x slower on OpenBLAS threads than on one.
        with self._blas.limit(limits=1, user_api="blas"):
            self._groups(lists, groups, inputs, queries, ann, starts, objectives)
        return pack(lists, funnel.catalog, funnel.model_version)

    def _groups(self, lists: list, groups, inputs, queries, ann, starts, objectives) -> None:
        """Each group merged, ranked and re-ranked; the ranker of one beside the Python stages of the others."""
        funnel = self.funnel
        pending = None
        for number, (seq, excluded, limits) in enumerate(inputs):
            found, sources, anchors = funnel.retriever.merge(queries[number], seq,
                                                             ann[starts[number]:starts[number + 1]])
            scored = self._ranker.submit(funnel.stages["rank"], {"item_seq": seq, "candidates": found})
            if pending is not None:  # the previous group is re-ranked while this one is ranked
                self._rerank(lists, *pending)
            pending = (groups[number], found, sources, anchors, seq, excluded, limits, scored, objectives)
        if pending is not None:
            self._rerank(lists, *pending)

    def _rerank(self, lists: list, users, candidates, sources, anchors, seq, excluded, limits, scored, objectives
                ) -> None:
        ranked = self.funnel.reranker.batch(candidates, scored.result()["scores"], sources, anchors, seq, excluded,
                                            limits[:, 0], scored.result().get(OBJECTIVES_OUTPUT), objectives)
        for user, result in zip(users, ranked, strict=True):
            lists[user] = result

    def close(self) -> None:
        self._ranker.shutdown(wait=False, cancel_futures=True)
