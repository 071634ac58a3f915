"""The Triton python models of the repository (``model_repository/<name>/model.py`` re-exports them).

Each reads its artifacts from its own version folder (``<repository>/<model>/<version>/``), so a new version
loads with new data while the old one finishes its requests. The stage logic is the same code the in-process
funnel (:mod:`recstack.ensemble.funnel`) runs.
"""

from __future__ import annotations

import json
from abc import ABC, abstractmethod
from pathlib import Path

import numpy as np
from recstack.ensemble.catalog import Catalog
from recstack.ensemble.config import RerankConfig, RetrieveConfig
from recstack.ensemble.index import load_index
from recstack.ensemble.lookups import SimilarItems, trending
from recstack.ensemble.objectives import check_weights
from recstack.ensemble.rerank import Reranker, pack
from recstack.ensemble.retrieve import Retriever
from recstack.ensemble.specs import OBJECTIVE_MODELS, PROBABILITIES, RETRIEVE, SIMILAR, TRENDING, WEIGHTS

FUNNEL_FILE = "funnel.json"


def _pb():
    import triton_python_backend_utils as pb_utils  # only importable inside the python backend's stub

    return pb_utils


class _Model(ABC):
    """Shared plumbing: the version folder, its settings, tensors in and out, per-request errors. Each model
    names its ``inputs``, loads its artifacts in :meth:`setup` and answers one request's arrays in :meth:`run`."""

    inputs: tuple[str, ...] = ()

    def initialize(self, args: dict) -> None:
        self.folder = Path(args["model_repository"]) / args["model_version"]
        self.settings = json.loads((self.folder / FUNNEL_FILE).read_text())
        self.gpu = args.get("model_instance_kind") == "GPU"
        self.setup()

    @abstractmethod
    def setup(self) -> None:
        """Load this version's artifacts from ``self.folder``."""

    @abstractmethod
    def run(self, inputs: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
        """Output tensors for one request's input tensors; ``ValueError`` for bad input."""

    def execute(self, requests):
        pb_utils = _pb()
        responses = []
        for request in requests:
            try:
                tensors = {name: pb_utils.get_input_tensor_by_name(request, name) for name in self.inputs}
                # An optional input the request left out comes as None.
                arrays = {name: tensor.as_numpy() for name, tensor in tensors.items() if tensor is not None}
                outputs = self.run(arrays)
                responses.append(pb_utils.InferenceResponse(
                    output_tensors=[pb_utils.Tensor(name, value) for name, value in outputs.items()]))
            except ValueError as exc:  # bad input: this request fails with the reason, the others go on
                code = getattr(pb_utils.TritonError, "INVALID_ARG", None)  # so clients tell it from a failure
                error = pb_utils.TritonError(str(exc), code) if code is not None else pb_utils.TritonError(str(exc))
                responses.append(pb_utils.InferenceResponse(output_tensors=[], error=error))
        return responses


def _text(value) -> str:
    return value.decode() if isinstance(value, bytes) else str(value)


class RetrieveModel(_Model):
    inputs = RETRIEVE.input_names

    def setup(self) -> None:
        catalog = Catalog.load(self.folder)
        self.retriever = Retriever(catalog, load_index(self.folder, use_gpu=self.gpu),
                                   RetrieveConfig(**self.settings["retrieve"]))

    def run(self, inputs):
        return dict(zip(RETRIEVE.output_names, self.retriever(inputs["query_embedding"], inputs["item_seq"]),
                        strict=True))


class RerankModel(_Model):
    inputs = OBJECTIVE_MODELS["rerank"].input_names  # with the heads' probabilities, present when the ranker has them

    def setup(self) -> None:
        self.catalog = Catalog.load(self.folder)
        self.reranker = Reranker(self.catalog, RerankConfig(**self.settings["rerank"]))

    def run(self, inputs):
        return rerank(self.reranker, inputs, self.settings["model_version"])


class SimilarModel(_Model):
    inputs = SIMILAR.input_names

    def setup(self) -> None:
        self.catalog = Catalog.load(self.folder)
        self.similar = SimilarItems(self.catalog, load_index(self.folder, use_gpu=self.gpu))

    def run(self, inputs):
        results = [self.similar(int(inputs["item_idx"][row][0]), check_limit(inputs["limit"][row][0]),
                                _text(inputs["kind"][row][0]))
                   for row in range(len(inputs["item_idx"]))]
        return pack(results, self.catalog, self.settings["model_version"])


class TrendingModel(_Model):
    inputs = TRENDING.input_names

    def setup(self) -> None:
        self.catalog = Catalog.load(self.folder)

    def run(self, inputs):
        results = [trending(self.catalog, check_limit(inputs["limit"][row][0]), _text(inputs["category"][row][0]))
                   for row in range(len(inputs["limit"]))]
        return pack(results, self.catalog, self.settings["model_version"])


def rerank(reranker: Reranker, inputs: dict[str, np.ndarray], model_version: str) -> dict[str, np.ndarray]:
    """The ``rerank`` model's outputs for its input tensors (the optional ``objectives`` and ``objective_weights``
    may be absent): what Triton's model and the in-process funnel both answer."""
    weights = inputs.get(WEIGHTS.name)
    results = reranker.batch(inputs["candidates"], inputs["scores"], inputs["sources"], inputs["anchors"],
                             inputs["item_seq"], inputs["exclude"],
                             [check_limit(limit) for limit in inputs["limit"][:, 0]], inputs.get(PROBABILITIES.name),
                             None if weights is None else check_weights(weights, len(inputs["candidates"])))
    return pack(results, reranker.catalog, model_version)


MAX_LIMIT = 1000


def check_limit(limit) -> int:
    limit = int(limit)
    if not 1 <= limit <= MAX_LIMIT:
        raise ValueError(f"limit must be within 1..{MAX_LIMIT}; got {limit}")
    return limit
