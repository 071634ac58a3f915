"""The retrieve → rank → re-rank funnel in-process: onnxruntime and FAISS in the caller's process, no Triton.

It reads the latest version of each model from a built repository and runs the same stage code as the
Triton python models, so its output is the reference the Triton ensemble is tested against, and the
in-process mode of batch scoring and of the facade's benchmarks.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import onnxruntime as ort
from recstack.ensemble.build import versions
from recstack.ensemble.catalog import Catalog
from recstack.ensemble.config import ObjectiveWeights, RerankConfig, RetrieveConfig
from recstack.ensemble.index import load_index
from recstack.ensemble.lookups import SimilarItems, trending
from recstack.ensemble.rerank import Reranker, pack
from recstack.ensemble.retrieve import Retriever
from recstack.ensemble.serving import SERVING_FILE, ServingState
from recstack.ensemble.specs import QUERY_ENCODER, RETRIEVE, WEIGHTS, ModelSpec, models, run_graph
from recstack.ensemble.triton_models import FUNNEL_FILE, check_limit, rerank
from recstack.training.config import OBJECTIVES_OUTPUT
from recstack.training.data import pad_left


def window_width(lengths, seq_len: int) -> int:
    """Width of the left-padded ``item_seq`` window sent for a batch: the longest history rounded up to a power
    of two (at least 8), at most ``seq_len``.

    The models read padding as nothing, so a narrower window gives the same scores, and attention costs grow
    with the width (benchmarks/README.md, "Measured design decisions");
    a few distinct widths still let Triton's dynamic batcher merge requests of equal shape.

    Examples
    --------
    >>> window_width([3, 12], seq_len=200), window_width([150], seq_len=200), window_width([], seq_len=200)
    (16, 200, 8)
    """
    longest = max(lengths, default=0)
    return min(seq_len, max(8, 1 << max(0, int(longest) - 1).bit_length()))


def request_arrays(histories, exclude, limit: int, seq_len: int) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The ``recommend`` inputs for a batch of users: ``item_seq`` (the last ``seq_len`` items, left-padded
    to :func:`window_width`),
    ``exclude`` (the caller's exclusions plus the history beyond the window, so nothing seen comes back;
    0-padded) and ``limit``.

    Examples
    --------
    >>> seq, excluded, limits = request_arrays([[5, 6, 7]], [[9]], limit=10, seq_len=2)
    >>> seq.tolist(), excluded.tolist(), limits.tolist()
    ([[6, 7]], [[9, 5]], [[10]])
    """
    if not len(histories):
        raise ValueError("at least one history is needed")
    histories = [np.asarray(h, dtype=np.int64) for h in histories]
    exclude = [[]] * len(histories) if exclude is None else exclude
    if len(exclude) != len(histories):
        raise ValueError(f"{len(exclude)} exclude lists for {len(histories)} histories")
    blocked = [np.concatenate([np.asarray(e, dtype=np.int64), h[:-seq_len]]) for e, h in
               zip(exclude, histories, strict=True)]
    width = max(1, max(len(b) for b in blocked))
    excluded = np.zeros((len(blocked), width), dtype=np.int64)
    for row, items in enumerate(blocked):
        excluded[row, :len(items)] = items
    width = window_width([len(h) for h in histories], seq_len)
    return pad_left(histories, width), excluded, np.full((len(histories), 1), limit, dtype=np.int32)


def serving_folder(repository: Path, model: str) -> Path:
    """The folder of the version that serves by default (``serving.json``; the newest version without one):
    what Triton answers requests naming no version of ``recommend`` with, also while a canary serves."""
    found = versions(repository / model)
    if not found:
        raise FileNotFoundError(f"no version of {model!r} in {repository}: run `recstack build-repo` first")
    state = repository / SERVING_FILE
    default = ServingState.from_json(json.loads(state.read_text())).default if state.exists() else found[-1]
    return repository / model / str(default)


class Funnel:
    """The same outputs as the Triton models ``recommend``, ``similar`` and ``trending``.

    Examples
    --------
    >>> funnel = Funnel("build/model_repository")  # doctest: +SKIP
    >>> out = funnel.recommend_histories([[17, 42]], limit=10)  # doctest: +SKIP
    >>> out["item_ids"][0][:3], out["reasons"][0][0]  # doctest: +SKIP
    (array([b'i0000658', b'i0003121', b'i0000071'], dtype=object), b'because you viewed ...')
    """

    def __init__(self, repository: str | Path, threads: int = 1):
        repository = Path(repository)
        options = ort.SessionOptions()
        options.intra_op_num_threads = options.inter_op_num_threads = threads
        # Idle onnxruntime threads spin for the next call by default, taking the cores the batch engine's Python
        # stages run on beside the ranker: 20 % fewer users/s on 2 cores (benchmarks/README.md, "Batch scoring").
        options.add_session_config_entry("session.intra_op.allow_spinning", "0")

        def session(model: str) -> ort.InferenceSession:
            return ort.InferenceSession(str(serving_folder(repository, model) / "model.onnx"), options,
                                        providers=["CPUExecutionProvider"])

        self.query_encoder, self.ranker = session("query_encoder"), session("rank")
        folder = serving_folder(repository, "retrieve")
        self.settings = json.loads((folder / FUNNEL_FILE).read_text())
        self.catalog = Catalog.load(folder)
        index = load_index(folder, use_gpu=False, threads=threads)
        self.retriever = Retriever(self.catalog, index, RetrieveConfig(**self.settings["retrieve"]))
        self.reranker = Reranker(self.catalog, RerankConfig(**self.settings["rerank"]))
        self.similar_items = SimilarItems(self.catalog, index)
        self.model_version = self.settings["model_version"]
        self.max_length = int(self.settings["max_length"])
        # A ranker with objective heads also outputs their probabilities, which the re-rank weighs.
        self.specs = models(OBJECTIVES_OUTPUT in {output.name for output in self.ranker.get_outputs()})
        self.stages = {"query_encoder": self._onnx(self.query_encoder, QUERY_ENCODER), "retrieve": self._retrieve,
                       "rank": self._onnx(self.ranker, self.specs["rank"]), "rerank": self._rerank}

    def recommend(self, item_seq: np.ndarray, exclude: np.ndarray, limit,
                  objective_weights: np.ndarray | None = None) -> dict[str, np.ndarray]:
        """``item_seq`` (B, L) left-padded item indices, ``exclude`` (B, E) (0 = none), ``limit`` (B,) and
        optionally ``objective_weights`` (B, 4: ``ObjectiveWeights.rows``; None: the built ones): the
        ``recommend`` ensemble's graph, step by step as Triton runs it."""
        inputs = {"item_seq": np.asarray(item_seq, dtype=np.int64), "exclude": np.asarray(exclude),
                  "limit": np.asarray(limit).reshape(-1, 1)}
        if objective_weights is not None:
            inputs[WEIGHTS.name] = np.asarray(objective_weights, dtype=np.float32)
        return run_graph(self.specs["recommend"], self.stages, inputs)

    def _onnx(self, session: ort.InferenceSession, spec: ModelSpec):
        return lambda tensors: dict(zip(spec.output_names, session.run(list(spec.output_names), tensors),
                                        strict=True))

    def _retrieve(self, tensors: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return dict(zip(RETRIEVE.output_names, self.retriever(tensors["query_embedding"], tensors["item_seq"]),
                        strict=True))

    def _rerank(self, t: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        return rerank(self.reranker, t, self.model_version)

    def recommend_histories(self, histories, exclude=None, limit: int = 20,
                            objectives: ObjectiveWeights | None = None) -> dict[str, np.ndarray]:
        """:meth:`recommend` for raw histories (item indices, oldest first), as the clients send them;
        ``objectives``: every user's objective weights (None: the built ones)."""
        return self.recommend(*request_arrays(histories, exclude, limit, self.max_length),
                              None if objectives is None else objectives.rows(len(histories)))

    def similar(self, item_idx: int, limit: int, kind: str = "similar") -> dict[str, np.ndarray]:
        return pack([self.similar_items(int(item_idx), check_limit(limit), kind)], self.catalog, self.model_version)

    def trending(self, limit: int, category: str = "") -> dict[str, np.ndarray]:
        return pack([trending(self.catalog, check_limit(limit), category)], self.catalog, self.model_version)
