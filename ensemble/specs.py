"""The Triton models' tensors and the ``recommend`` ensemble's graph, declared once.

``recstack build-repo`` renders every ``config.pbtxt`` from these specs, the in-process funnel runs the same graph
(:func:`run_graph`), the python models read their inputs by these names and the clients build their requests from
them, so a tensor renamed here is renamed everywhere.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Literal

import numpy as np
from recstack.ensemble.config import OBJECTIVE_WEIGHTS
from recstack.training.config import OBJECTIVES, OBJECTIVES_OUTPUT

DataType = Literal["INT8", "INT32", "INT64", "FP32", "STRING"]
Platform = Literal["onnxruntime_onnx", "python", "ensemble"]
# Triton's wire name of each type (the clients' ``InferInput`` datatype) and the numpy type of its arrays.
WIRE_TYPES: dict[DataType, str] = {"INT8": "INT8", "INT32": "INT32", "INT64": "INT64", "FP32": "FP32",
                                   "STRING": "BYTES"}
NUMPY_TYPES: dict[DataType, type] = {"INT8": np.int8, "INT32": np.int32, "INT64": np.int64, "FP32": np.float32,
                                     "STRING": np.object_}


@dataclass(frozen=True)
class TensorSpec:
    """One tensor of a model, per batch row: ``dims`` are -1 (any length), a number, or the name of a build
    value (``dim``: the embedding width; ``candidates``: the retrieval depth)."""

    name: str
    dtype: DataType
    dims: tuple[int | str, ...] = (-1,)
    optional: bool = False  # an input a request may leave out

    def pbtxt(self, values: Mapping[str, int]) -> str:
        dims = ", ".join(str(values[d] if isinstance(d, str) else d) for d in self.dims)
        optional = " optional: true" if self.optional else ""
        return f'{{ name: "{self.name}" data_type: TYPE_{self.dtype} dims: [ {dims} ]{optional} }}'


@dataclass(frozen=True)
class Step:
    """One model of an ensemble: its inputs and outputs mapped to the ensemble's tensor names."""

    model: str
    inputs: Mapping[str, str]  # model input -> ensemble tensor
    outputs: Mapping[str, str]  # model output -> ensemble tensor


@dataclass(frozen=True)
class ModelSpec:
    name: str
    platform: Platform
    about: str  # the comment at the top of its config.pbtxt
    inputs: tuple[TensorSpec, ...]
    outputs: tuple[TensorSpec, ...]
    steps: tuple[Step, ...] = field(default=())  # ensembles only

    @property
    def input_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.inputs)

    @property
    def output_names(self) -> tuple[str, ...]:
        return tuple(t.name for t in self.outputs)

    def input(self, name: str) -> TensorSpec:
        return next(t for t in self.inputs if t.name == name)


ITEM_SEQ = TensorSpec("item_seq", "INT64")
LIMIT = TensorSpec("limit", "INT32", (1,))
# What every list-answering model returns: a row of items per request, padded with item index -1.
LIST_OUTPUTS = (TensorSpec("item_ids", "STRING"), TensorSpec("item_idx", "INT64"), TensorSpec("scores", "FP32"),
                TensorSpec("reasons", "STRING"), TensorSpec("model_version", "STRING", (1,)))

QUERY_ENCODER = ModelSpec(
    "query_encoder", "onnxruntime_onnx",
    "The two-tower query tower: the user's item sequence -> a unit query vector for retrieval.",
    (ITEM_SEQ,), (TensorSpec("query_embedding", "FP32", ("dim",)),))
RETRIEVE = ModelSpec(
    "retrieve", "python",
    "FAISS ANN + co-visitation + trending + new-item exploration -> a fixed number of candidates per user.",
    (TensorSpec("query_embedding", "FP32", ("dim",)), ITEM_SEQ),
    (TensorSpec("candidates", "INT64", ("candidates",)), TensorSpec("sources", "INT8", ("candidates",)),
     TensorSpec("anchors", "INT64", ("candidates",))))
# Per user, how the re-rank weighs the ranker's objective heads (``OBJECTIVE_WEIGHTS`` order); left out: the
# weights the repository was built with (``RerankConfig.objectives``; none: relevance alone).
WEIGHTS = TensorSpec("objective_weights", "FP32", (len(OBJECTIVE_WEIGHTS),), optional=True)
# A ranker trained with objective heads also outputs P(click), P(add-to-cart), P(purchase) of each candidate.
PROBABILITIES = TensorSpec(OBJECTIVES_OUTPUT, "FP32", (-1, len(OBJECTIVES)))
RANK = ModelSpec(
    "rank", "onnxruntime_onnx",
    "The SASRec-family ranker: scores each candidate against the user's item sequence.",
    (ITEM_SEQ, TensorSpec("candidates", "INT64")), (TensorSpec("scores", "FP32"),))
RERANK = ModelSpec(
    "rerank", "python",
    "Exclusions, MMR diversity, category runs, freshness, promoted slots, and a reason per item.",
    (ITEM_SEQ, TensorSpec("exclude", "INT64"), LIMIT, TensorSpec("candidates", "INT64"), TensorSpec("scores", "FP32"),
     TensorSpec("sources", "INT8"), TensorSpec("anchors", "INT64"), WEIGHTS),
    LIST_OUTPUTS)
SIMILAR = ModelSpec(
    "similar", "python",
    'Item -> neighbours: "similar" (item vectors), "also_viewed" and "bought_together" (co-occurrence).',
    (TensorSpec("item_idx", "INT64", (1,)), LIMIT, TensorSpec("kind", "STRING", (1,))), LIST_OUTPUTS)
TRENDING = ModelSpec(
    "trending", "python", 'Most popular items right now, overall or within a category ("" for all).',
    (TensorSpec("category", "STRING", (1,)), LIMIT), LIST_OUTPUTS)
RECOMMEND = ModelSpec(
    "recommend", "ensemble",
    "The personalised funnel: query_encoder -> retrieve -> rank -> rerank, one request from the client.",
    (ITEM_SEQ, TensorSpec("exclude", "INT64"), LIMIT, WEIGHTS), LIST_OUTPUTS,
    steps=(
        Step("query_encoder", {"item_seq": "item_seq"}, {"query_embedding": "query"}),
        Step("retrieve", {"query_embedding": "query", "item_seq": "item_seq"},
             {"candidates": "candidates", "sources": "sources", "anchors": "anchors"}),
        Step("rank", {"item_seq": "item_seq", "candidates": "candidates"}, {"scores": "ranker_scores"}),
        Step("rerank", {"item_seq": "item_seq", "exclude": "exclude", "limit": "limit", "candidates": "candidates",
                        "scores": "ranker_scores", "sources": "sources", "anchors": "anchors",
                        "objective_weights": "objective_weights"},
             {name: name for name in RERANK.output_names}),
    ))
MODELS: dict[str, ModelSpec] = {m.name: m for m in (QUERY_ENCODER, RETRIEVE, RANK, RERANK, SIMILAR, TRENDING,
                                                    RECOMMEND)}


def _with_objectives() -> dict[str, ModelSpec]:
    """The models of a repository whose ranker has objective heads: ``rank`` outputs their probabilities and the
    ensemble passes them to ``rerank``."""
    rank = replace(RANK, outputs=(*RANK.outputs, PROBABILITIES))
    rerank = replace(RERANK, inputs=(*RERANK.inputs, PROBABILITIES))
    steps = {step.model: step for step in RECOMMEND.steps}
    passed = {OBJECTIVES_OUTPUT: "ranker_objectives"}
    steps["rank"] = replace(steps["rank"], outputs={**steps["rank"].outputs, **passed})
    steps["rerank"] = replace(steps["rerank"], inputs={**steps["rerank"].inputs, **passed})
    return {**MODELS, "rank": rank, "rerank": rerank, "recommend": replace(RECOMMEND, steps=tuple(steps.values()))}


OBJECTIVE_MODELS = _with_objectives()


def models(objectives: bool) -> dict[str, ModelSpec]:
    """The repository's model specs: :data:`OBJECTIVE_MODELS` for a ranker with objective heads (the build value
    ``objectives``), :data:`MODELS` otherwise.

    Examples
    --------
    >>> models(True)["rank"].output_names, models(False)["rank"].output_names
    (('scores', 'objectives'), ('scores',))
    """
    return OBJECTIVE_MODELS if objectives else MODELS


def render_config(spec: ModelSpec, values: Mapping[str, int | str], versions: Sequence[int] = (),
                  step_version: int = -1, name: str | None = None) -> str:
    """The ``config.pbtxt`` of a model. ``values``: ``max_batch_size``, ``kind`` (KIND_CPU or KIND_GPU),
    ``instances``, ``queue_delay_us``, ``onnx_threads``, ``dim`` and ``candidates``. ``versions``: the versions
    to load (the newest one when empty); ``step_version``: the version every step of an ensemble runs (-1: the
    newest loaded); ``name``: another name for the model (an ensemble served beside it).

    Examples
    --------
    >>> values = {"max_batch_size": 8, "kind": "KIND_CPU", "instances": 1, "queue_delay_us": 100,
    ...           "onnx_threads": 1, "dim": 4, "candidates": 10}
    >>> print(render_config(QUERY_ENCODER, values).splitlines()[6])
    output [ { name: "query_embedding" data_type: TYPE_FP32 dims: [ 4 ] } ]
    """
    def tensors(kind: str, specs: tuple[TensorSpec, ...]) -> str:
        if len(specs) == 1:
            return f"{kind} [ {specs[0].pbtxt(values)} ]"
        return f"{kind} [\n" + ",\n".join(f"  {t.pbtxt(values)}" for t in specs) + "\n]"

    platform = f'backend: "{spec.platform}"' if spec.platform == "python" else f'platform: "{spec.platform}"'
    lines = [f"# {spec.about}", f'name: "{name or spec.name}"', platform,
             f"max_batch_size: {values['max_batch_size']}"]
    if versions:
        lines.append(f"version_policy: {{ specific: {{ versions: [ {', '.join(map(str, versions))} ] }} }}")
    elif spec.platform != "ensemble":
        lines.append("version_policy: { latest: { num_versions: 1 } }")
    lines += [tensors("input", spec.inputs), tensors("output", spec.outputs)]
    if spec.platform == "ensemble":
        lines.append("ensemble_scheduling {\n  step [\n" + ",\n".join(_step(s, step_version) for s in spec.steps)
                     + "\n  ]\n}")
    else:
        lines.append(f"instance_group [ {{ kind: {values['kind']} count: {values['instances']} }} ]")
        lines.append(f"dynamic_batching {{ max_queue_delay_microseconds: {values['queue_delay_us']} }}")
    if spec.platform == "onnxruntime_onnx":
        lines.append('parameters { key: "intra_op_thread_count" value: { string_value: "'
                     f'{values["onnx_threads"]}" }} }}')
    return "\n".join(lines) + "\n"


def _step(step: Step, version: int) -> str:
    maps = [f'      input_map {{ key: "{k}" value: "{v}" }}' for k, v in step.inputs.items()]
    maps += [f'      output_map {{ key: "{k}" value: "{v}" }}' for k, v in step.outputs.items()]
    return ("    {\n" + f'      model_name: "{step.model}"\n      model_version: {version}\n' + "\n".join(maps)
            + "\n    }")


def run_graph(spec: ModelSpec, stages: Mapping[str, Callable[[dict[str, np.ndarray]], dict[str, np.ndarray]]],
              inputs: Mapping[str, np.ndarray]) -> dict[str, np.ndarray]:
    """Run an ensemble's steps in this process, as Triton would: each stage gets its inputs by its own names and
    its outputs join the ensemble's tensors.

    Examples
    --------
    >>> double = {"query_encoder": lambda t: {"query_embedding": t["item_seq"] * 2}}
    >>> graph = ModelSpec("g", "ensemble", "", (ITEM_SEQ,), (TensorSpec("query", "INT64"),),
    ...                   (Step("query_encoder", {"item_seq": "item_seq"}, {"query_embedding": "query"}),))
    >>> run_graph(graph, double, {"item_seq": np.array([[1, 2]])})["query"].tolist()
    [[2, 4]]
    """
    tensors = dict(inputs)
    for step in spec.steps:
        # An optional input the request left out is left out of the step's inputs, as Triton does.
        outputs = stages[step.model]({name: tensors[source] for name, source in step.inputs.items()
                                      if source in tensors})
        tensors.update({target: outputs[name] for name, target in step.outputs.items()})
    return {name: tensors[name] for name in spec.output_names}
