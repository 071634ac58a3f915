"""ONNX export with a parity check against PyTorch and onnxruntime CPU latencies.

The generic helpers (:func:`export_onnx`, :func:`check_parity`, :func:`onnx_latency`, :func:`onnx_signature`)
take any module whose ``forward`` takes named tensors, so the two-tower model's query and item towers export
the same way as the sequential ranker. :func:`export_sasrec` writes the serving funnel's SASRec graphs:

``ranker.onnx``
    ``item_seq`` (int64, batch × seq_len, left-padded with 0) and ``candidates`` (int64, batch ×
    n_candidates) → ``scores`` (float32, batch × n_candidates).
``user_encoder.onnx``
    ``item_seq`` → ``user_embedding`` (float32, batch × hidden).

Exporter choice (measured with torch 2.13, onnxscript 0.7.2, onnxruntime 1.31): the torch.export-based exporter
(``torch.onnx.export(dynamo=True)``, the default since torch 2.9). The legacy TorchScript exporter
(``dynamo=False``) is deprecated, traces shapes as constants unless every axis is declared, and turns the
attention mask's ``torch.eye(dtype=bool)`` into a boolean ``EyeLike`` node that onnxruntime has no kernel for,
so its SASRec graph does not even load. torch.export traces with symbolic dimensions: a dynamic axis that the
model would specialise fails at export time instead of producing a graph that is silently wrong at other sizes,
and the parity check then confirms it at sizes never seen during export.
"""

from __future__ import annotations

import contextlib
import copy
import json
import logging
import time
import warnings
from collections.abc import Iterator, Mapping, Sequence
from pathlib import Path

import numpy as np
import onnx
import onnx_ir as ir  # the exporter's graph representation (installed with onnxscript)
import onnxruntime as ort
import torch
from recstack.preprocessing.vocabulary import FIRST_INDEX, OOV
from recstack.training.data import pad_left
from recstack.training.models.sasrec import SASRec
from torch import nn

DEFAULT_OPSET = 18  # the exporter's native opset; lower ones go through a version converter
MIN_OPSET = 17
LATENCY_BATCHES = (1, 64)
# The protobuf limit is 2 GiB; keep a margin for the graph itself before moving weights to a side file.
_EXTERNAL_DATA_BYTES = 1_800_000_000

Inputs = Mapping[str, torch.Tensor | np.ndarray]
DynamicAxes = Mapping[str, Mapping[int, "str | torch.export.Dim"]]


class ParityError(AssertionError):
    """The ONNX graph disagrees with the PyTorch module beyond the tolerance."""


@contextlib.contextmanager
def _eval_mode(module: nn.Module) -> Iterator[nn.Module]:
    """Dropout off for the duration; afterwards every submodule is back in the mode it was in.

    ``module.train(was_training)`` would not do: it sets the whole tree, so wrapping an eval-mode model in a
    fresh (training-mode) wrapper would switch the model's dropout on.
    """
    modes = [(m, m.training) for m in module.modules()]
    module.eval()
    try:
        yield module
    finally:
        for m, training in modes:
            m.training = training


def _device_of(module: nn.Module) -> torch.device:
    tensor = next(iter(module.parameters()), None)
    if tensor is None:
        tensor = next(iter(module.buffers()), None)
    return tensor.device if tensor is not None else torch.device("cpu")


def _as_tensor(value: torch.Tensor | np.ndarray, device: torch.device) -> torch.Tensor:
    return (value if isinstance(value, torch.Tensor) else torch.from_numpy(np.asarray(value))).to(device)


def _as_numpy(value: torch.Tensor | np.ndarray) -> np.ndarray:
    return value.detach().cpu().numpy() if isinstance(value, torch.Tensor) else np.asarray(value)


def _dynamic_shapes(example_inputs: Mapping[str, torch.Tensor], dynamic_axes: DynamicAxes
                    ) -> dict[str, dict[int, torch.export.Dim]]:
    """Axis names → ``torch.export`` dimensions; one name is one dimension, so inputs sharing "batch" agree."""
    unknown = set(dynamic_axes) - set(example_inputs)
    if unknown:
        raise ValueError(f"dynamic_axes names {sorted(unknown)} that are not inputs ({list(example_inputs)}); "
                         "output shapes follow from the inputs and need no declaration")
    dims: dict[str, torch.export.Dim] = {}
    shapes: dict[str, dict[int, torch.export.Dim]] = {}
    for name, axes in dynamic_axes.items():
        shapes[name] = {}
        for axis, dim in axes.items():
            size = example_inputs[name].shape[axis]
            # torch.export specialises sizes 0 and 1, so such an axis would be frozen rather than dynamic.
            if size < 2:
                raise ValueError(f"example input {name!r} has size {size} on dynamic axis {axis}; "
                                 "use at least 2 so the exporter keeps the axis symbolic")
            if isinstance(dim, str):
                dim = dims.setdefault(dim, torch.export.Dim(dim))
            shapes[name][axis] = dim
    return shapes


def export_onnx(module: nn.Module, example_inputs: Inputs, output_names: Sequence[str], path: str | Path,
                dynamic_axes: DynamicAxes | None = None, opset: int = DEFAULT_OPSET) -> Path:
    """Export ``module(**example_inputs)`` to an ONNX file with named, dynamic axes.

    Parameters
    ----------
    module : nn.Module
        Its ``forward`` parameters are named like the keys of ``example_inputs``, which become the graph's
        input names in that order. Exported in eval mode; the module's own mode is left unchanged.
    example_inputs : mapping of str to Tensor or ndarray
        Tensors of the dtypes the graph will take. Every dynamic axis needs a size of at least 2, and
        different dynamic axes should have different example sizes.
    output_names : sequence of str
        Names of the module's outputs (a tensor or a tuple of tensors), in order.
    path : str or Path
        The ``.onnx`` file to write; weights above ~1.8 GB (the protobuf limit) go to a data file next to it.
    dynamic_axes : mapping, optional
        ``{input name: {axis: axis name or torch.export.Dim}}``; axes with the same name share one
        dimension (e.g. "batch"). A ``Dim`` carries bounds where the model needs them. Output axes are
        derived from the inputs.
    opset : int
        ONNX opset, at least 17.

    Returns
    -------
    Path
        The written file, checked with ``onnx.checker``.

    Examples
    --------
    >>> tower = nn.Embedding(10, 4)
    >>> export_onnx(tower, {"input": torch.tensor([1, 2, 3])}, ["embedding"], "/tmp/tower.onnx",
    ...             {"input": {0: "batch"}})  # doctest: +SKIP
    PosixPath('/tmp/tower.onnx')
    """
    if opset < MIN_OPSET:
        raise ValueError(f"opset {opset} is below {MIN_OPSET}, the lowest this project serves")
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    device = _device_of(module)
    inputs = {name: _as_tensor(value, device) for name, value in example_inputs.items()}
    shapes = _dynamic_shapes(inputs, dynamic_axes or {})
    n_bytes = sum(t.numel() * t.element_size() for t in [*module.parameters(), *module.buffers()])
    registration_log = logging.getLogger("torch.onnx._internal.exporter._registration")
    level = registration_log.level
    # The exporter logs optional torchvision kernels it skips and warns about axis names it merges:
    # neither is actionable here, and both would bury the training command's own output.
    registration_log.setLevel(logging.ERROR)
    try:
        with _eval_mode(module), torch.no_grad(), warnings.catch_warnings():
            warnings.filterwarnings("ignore", message=".*axis name.*will not be used.*")
            warnings.filterwarnings("ignore", category=FutureWarning, module="copyreg")
            program = torch.onnx.export(module, (), kwargs=inputs, dynamic_shapes=shapes or None,
                                        opset_version=opset, dynamo=True, verbose=False)
    finally:
        registration_log.setLevel(level)
    _name_graph_values(program.model.graph, list(inputs), list(output_names))
    program.save(path, external_data=n_bytes > _EXTERNAL_DATA_BYTES)
    onnx.checker.check_model(str(path))
    return path


def _name_graph_values(graph: ir.Graph, input_names: list[str], output_names: list[str]) -> None:
    """Name the graph's inputs and outputs, first renaming any internal value that already has such a name.

    The exporter's own ``output_names`` only relabels the outputs: an output called like an op it lowers
    (an item tower's "embedding" output next to its ``aten.embedding`` node) leaves two values with one name,
    a graph that ``onnx.checker`` rejects.
    """
    for kind, values, names in (("inputs", graph.inputs, input_names), ("outputs", graph.outputs, output_names)):
        if len(values) != len(names):
            raise ValueError(f"the graph has {len(values)} {kind} but {len(names)} names were given ({names}); "
                             "non-tensor inputs are baked in as constants and are not graph inputs")
    wanted = {**dict(zip(input_names, graph.inputs, strict=True)),
              **dict(zip(output_names, graph.outputs, strict=True))}
    if len(wanted) != len(input_names) + len(output_names):
        raise ValueError(f"input and output names must be distinct: {input_names} {output_names}")
    internal = [*graph.inputs, *(v for node in ir.traversal.RecursiveGraphIterator(graph) for v in node.outputs)]
    taken = {v.name for v in internal} | set(graph.initializers) | set(wanted)
    if clash := set(graph.initializers) & set(wanted):
        raise ValueError(f"names {sorted(clash)} are taken by the module's weights; choose other names")
    for value in internal:
        if value.name in wanted and wanted[value.name] is not value:
            suffix = 1
            while f"{value.name}_{suffix}" in taken:
                suffix += 1
            value.name = f"{value.name}_{suffix}"
            taken.add(value.name)
    for name, value in wanted.items():
        value.name = name


def onnx_session(path: str | Path, threads: int | None = None) -> ort.InferenceSession:
    """An onnxruntime CPU session; ``threads`` caps intra-op threads (default: onnxruntime's choice)."""
    options = ort.SessionOptions()
    if threads:
        options.intra_op_num_threads = threads
    return ort.InferenceSession(str(path), options, providers=["CPUExecutionProvider"])


def _max_abs_diff(expected: np.ndarray, actual: np.ndarray) -> float:
    """Largest absolute difference; equal infinities (e.g. masked scores) agree, any other non-finite does not."""
    expected, actual = expected.astype(np.float64), actual.astype(np.float64)
    same = (expected == actual) | (np.isnan(expected) & np.isnan(actual))
    diff = np.where(same, 0.0, np.abs(expected - actual))
    return float(np.nan_to_num(diff, nan=np.inf).max(initial=0.0))


def check_parity(module: nn.Module, path: str | Path, inputs_list: Sequence[Inputs], atol: float = 1e-4,
                 session: ort.InferenceSession | None = None) -> float:
    """Largest absolute difference between ``module(**inputs)`` and the ONNX graph over all input sets.

    Parameters
    ----------
    module : nn.Module
        The reference, run in eval mode under ``no_grad`` on its own device.
    path : str or Path
        The ONNX file, run on onnxruntime CPU.
    inputs_list : sequence of mappings of str to Tensor or ndarray
        Input sets keyed by the graph's input names; shapes may differ between sets.
    atol : float
        Tolerance on the largest absolute difference of any output element.
    session : onnxruntime.InferenceSession, optional
        An open session of ``path``, to avoid loading it again.

    Returns
    -------
    float
        The largest absolute difference seen.

    Raises
    ------
    ParityError
        When an output's shape differs or its difference exceeds ``atol``; the message names the input set.
    """
    if not inputs_list:
        raise ValueError("check_parity needs at least one input set")
    session = session or onnx_session(path)
    graph_inputs = [i.name for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]
    device = _device_of(module)
    worst = 0.0
    with _eval_mode(module), torch.no_grad():
        for index, inputs in enumerate(inputs_list):
            if set(inputs) != set(graph_inputs):
                raise ValueError(f"input set {index} has {sorted(inputs)}, the graph takes {graph_inputs}")
            expected = module(**{name: _as_tensor(value, device) for name, value in inputs.items()})
            expected = expected if isinstance(expected, tuple | list) else (expected,)
            actual = session.run(None, {name: _as_numpy(value) for name, value in inputs.items()})
            shapes = {name: tuple(np.shape(v)) for name, v in inputs.items()}
            for name, want, got in zip(output_names, expected, actual, strict=True):
                want = _as_numpy(want)
                if want.shape != got.shape:
                    raise ParityError(f"{path}: output {name!r} has shape {got.shape}, PyTorch gives {want.shape} "
                                      f"(input set {index}, shapes {shapes})")
                diff = _max_abs_diff(want, got)
                if diff > atol:
                    raise ParityError(f"{path}: output {name!r} differs from PyTorch by {diff:.3g} > atol {atol:g} "
                                      f"(input set {index}, shapes {shapes})")
                worst = max(worst, diff)
    return worst


def onnx_latency(path: str | Path, inputs: Inputs, repeats: int = 50, batch_sizes: Sequence[int] = LATENCY_BATCHES,
                 threads: int | None = None, warmup: int = 3) -> dict[str, dict[str, float]]:
    """onnxruntime CPU latency of one call per batch size.

    Parameters
    ----------
    path : str or Path
        The ONNX file.
    inputs : mapping of str to Tensor or ndarray
        One set of inputs with the batch on axis 0; its rows are repeated or cut to each batch size.
    repeats : int
        Timed calls per batch size, after ``warmup`` untimed ones (first calls allocate).
    batch_sizes : sequence of int
        Batch sizes to time.
    threads : int, optional
        Intra-op threads (default: onnxruntime's choice).

    Returns
    -------
    dict
        ``{"batch_1": {"p50_ms": ..., "mean_ms": ...}, "batch_64": {...}}``.
    """
    session = onnx_session(path, threads)
    arrays = {name: _as_numpy(value) for name, value in inputs.items()}
    result = {}
    for batch in batch_sizes:
        feed = {name: np.take(a, np.arange(batch) % len(a), axis=0) for name, a in arrays.items()}
        for _ in range(warmup):
            session.run(None, feed)
        times = []
        for _ in range(repeats):
            started = time.perf_counter()
            session.run(None, feed)
            times.append((time.perf_counter() - started) * 1000)
        result[f"batch_{batch}"] = {"p50_ms": round(float(np.median(times)), 4),
                                    "mean_ms": round(float(np.mean(times)), 4)}
    return result


def onnx_signature(path: str | Path) -> dict[str, list[dict]]:
    """Inputs and outputs of an ONNX file: name, numpy dtype and shape (axis names for dynamic axes).

    Examples
    --------
    >>> onnx_signature("build/models/synthetic/onnx/ranker.onnx")["outputs"]  # doctest: +SKIP
    [{'name': 'scores', 'dtype': 'float32', 'shape': ['batch', 'n_candidates']}]
    """
    graph = onnx.load(str(path), load_external_data=False).graph

    def describe(value: onnx.ValueInfoProto) -> dict:
        tensor = value.type.tensor_type
        return {"name": value.name,
                "dtype": np.dtype(onnx.helper.tensor_dtype_to_np_dtype(tensor.elem_type)).name,
                "shape": [d.dim_param or d.dim_value for d in tensor.shape.dim]}

    return {"inputs": [describe(v) for v in graph.input], "outputs": [describe(v) for v in graph.output]}


def opset_of(path: str | Path) -> int:
    model = onnx.load(str(path), load_external_data=False)
    return next(o.version for o in model.opset_import if o.domain in ("", "ai.onnx"))


# -- SASRec ----------------------------------------------------------------------------------------


class SequenceRanker(nn.Module):
    """The funnel's rank stage as one graph: ``(item_seq, candidates) → scores``.

    Sequences longer than the model's window keep their newest ``max_length`` items, as ``pad_left`` does
    in training, so a client never has to know the window to get the model's answer.
    """

    def __init__(self, model: SASRec):
        super().__init__()
        self.model = model

    def forward(self, item_seq: torch.Tensor, candidates: torch.Tensor) -> torch.Tensor:
        # Items added to the catalog after training (indices past the model's table) are read as OOV, in the
        # history and among the candidates, so a newer catalog never breaks the ranker.
        n_items = self.model.n_items
        item_seq = torch.where(item_seq >= n_items, torch.full_like(item_seq, OOV), item_seq)
        candidates = torch.where(candidates >= n_items, torch.full_like(candidates, OOV), candidates)
        return self.model.score_candidates(item_seq[:, -self.model.config.max_length:], candidates)


class UserEncoder(nn.Module):
    """``item_seq → user_embedding``: the query vector for retrieval over the item embeddings."""

    def __init__(self, model: SASRec):
        super().__init__()
        self.model = model

    def forward(self, item_seq: torch.Tensor) -> torch.Tensor:
        return self.model(item_seq[:, -self.model.config.max_length:])


def _random_sequences(rng: np.random.Generator, batch: int, length: int, n_items: int) -> np.ndarray:
    """Left-padded rows with between 0 and ``length`` real items; half of them mostly padding."""
    seq = np.zeros((batch, length), dtype=np.int64)
    for row in range(batch):
        # Real histories are short next to the window, and an all-padding row is a new user.
        filled = rng.integers(0, length + 1) if row % 2 else rng.integers(0, max(length // 8, 1) + 1)
        # From OOV up: serving sees OOV for items that arrived after training.
        seq[row, length - filled:] = rng.integers(OOV, n_items, filled)
    return seq


def _random_candidates(rng: np.random.Generator, batch: int, count: int, n_items: int) -> np.ndarray:
    return rng.integers(FIRST_INDEX, n_items, (batch, count), dtype=np.int64)


def sasrec_parity_inputs(model: SASRec, n_checks: int, real_sequences: Sequence[np.ndarray] | None = None,
                         seed: int = 0) -> tuple[list[dict[str, np.ndarray]], list[dict[str, np.ndarray]]]:
    """Random and real ranker input sets (``item_seq`` and ``candidates``) to check a SASRec export on.

    Random sets cycle through batch sizes, window lengths (one, short, the full window and longer than it)
    and candidate counts; real sets are left-padded real sequences, ``n_checks`` batches of up to 64 users.
    """
    rng = np.random.default_rng(seed)
    window, n_items = model.config.max_length, model.n_items
    batches, counts = (1, 7, 64, 3, 33), (1, 100, 5, 17, 2)
    lengths = (window, 1, max(window // 4, 1), window + 3, max(window // 2, 1))
    random = [{"item_seq": _random_sequences(rng, batches[i % 5], lengths[i % 5], n_items),
               "candidates": _random_candidates(rng, batches[i % 5], counts[i % 5], n_items)}
              for i in range(n_checks)]
    real = []
    if real_sequences:
        # With 64 users or fewer every batch would hold all of them again.
        for _ in range(n_checks if len(real_sequences) > 64 else 1):
            rows = rng.choice(len(real_sequences), min(64, len(real_sequences)), replace=False)
            seq = pad_left([real_sequences[r] for r in rows], window)
            # The user's own items among the candidates, as when retrieval returns items they already saw.
            candidates = _random_candidates(rng, len(rows), 50, n_items)
            candidates[:, :5] = np.where(seq[:, -5:] > 0, seq[:, -5:], candidates[:, :5])
            real.append({"item_seq": seq, "candidates": candidates})
    return random, real


def export_graphs(graphs: Mapping[str, tuple[nn.Module, Inputs, list[str], DynamicAxes]],
                  random_sets: Sequence[Inputs], real_sets: Sequence[Inputs], latency_inputs: Inputs,
                  out_dir: Path, manifest: dict, extra: dict, atol: float, opset: int, latency_repeats: int,
                  verbose: bool, latency_info: Mapping[str, dict] | None = None) -> dict:
    """Export each graph, check it against PyTorch on the input sets (each graph reads the inputs it
    declares), time it, and write ``manifest.json`` (the exporter's facts plus the caller's ``extra``)."""
    clash = set(extra) & set(manifest)
    if clash:
        raise ValueError(f"extra keys {sorted(clash)} would overwrite the exporter's own manifest entries")
    for name, (module, example_inputs, outputs, axes) in graphs.items():
        path = export_onnx(module, example_inputs, outputs, out_dir / f"{name}.onnx", axes, opset)
        session = onnx_session(path)
        keep = list(example_inputs)
        parity = {}
        for kind, sets in (("random", random_sets), ("real", real_sets)):
            if sets:
                sets = [{k: v for k, v in s.items() if k in keep} for s in sets]
                parity[f"{kind}_max_abs_diff"] = check_parity(module, path, sets, atol, session)
        parity = {"max_abs_diff": max(parity.values()), **parity, "atol": atol,
                  "input_sets": len(random_sets) + len(real_sets)}
        latency = onnx_latency(path, {k: v for k, v in latency_inputs.items() if k in keep}, latency_repeats)
        manifest["files"][name] = sorted(p.name for p in out_dir.glob(f"{name}.onnx*"))  # + external data
        manifest["graphs"][name] = {"file": path.name, **onnx_signature(path)}
        manifest["opset"] = opset_of(path)
        manifest["parity"][name] = parity
        manifest["latency_ms"][name] = {**latency, **(latency_info or {}).get(name, {})}
        if verbose:
            print(f"{name}.onnx: max |onnx - torch| = {parity['max_abs_diff']:.2e} over {parity['input_sets']} "
                  f"input sets; onnxruntime CPU p50 {latency['batch_1']['p50_ms']:.2f} ms (batch 1), "
                  f"{latency['batch_64']['p50_ms']:.2f} ms (batch 64)")
    manifest.update(extra)
    (out_dir / "manifest.json").write_text(json.dumps(manifest, indent=2) + "\n")
    return manifest


def export_sasrec(model: SASRec, out_dir: str | Path, real_sequences: Sequence[np.ndarray] | None = None,
                  n_checks: int = 10, atol: float = 1e-4, opset: int = DEFAULT_OPSET, latency_repeats: int = 20,
                  latency_candidates: int = 100, extra: dict | None = None, verbose: bool = True) -> dict:
    """Write ``ranker.onnx``, ``user_encoder.onnx`` and ``manifest.json`` and check them against PyTorch.

    Parameters
    ----------
    model : SASRec
        A trained model, on any device; exported from a CPU copy in eval mode and left unchanged.
    out_dir : str or Path
        Folder for the files.
    real_sequences : sequence of np.ndarray, optional
        Users' item-index sequences (oldest first) to check parity on, besides random inputs.
    n_checks : int
        Random input sets, and batches of real sequences, per graph.
    atol : float
        Parity tolerance; above it :class:`ParityError` is raised and no manifest is written.
    opset : int
        ONNX opset.
    latency_repeats, latency_candidates : int
        Timed onnxruntime calls per batch size (1 and 64), and candidates per user in the ranker's timing.
    extra : dict, optional
        Caller's facts (model version, dataset fingerprint, metrics) merged into ``manifest.json``.
    verbose : bool
        Print parity and latency per graph.

    Returns
    -------
    dict
        The manifest: files, opset, inputs and outputs with shapes, parity and latency per graph, plus ``extra``.

    Examples
    --------
    >>> export_sasrec(model, "build/models/synthetic/onnx", data.test.histories[:1000],
    ...               extra={"version": report["version"]})["parity"]["ranker"]  # doctest: +SKIP
    {'max_abs_diff': 9.5e-07, 'random_max_abs_diff': 9.5e-07, 'real_max_abs_diff': 4.8e-07, ...}
    """
    if n_checks < 1:
        raise ValueError("n_checks must be at least 1")
    extra = dict(extra or {})
    out_dir = Path(out_dir)
    # ORT CPU is the reference runtime; comparing a GPU model against it would measure GPU arithmetic,
    # not the export.
    if _device_of(model).type != "cpu":
        model = copy.deepcopy(model).cpu()
    window, n_items = model.config.max_length, model.n_items
    rng = np.random.default_rng(1234)
    # Distinct example sizes per axis, none of them 0 or 1, keep torch.export from equating or freezing axes.
    example_seq = _random_sequences(rng, 2, max(window, 4), n_items)
    example = {"item_seq": example_seq, "candidates": _random_candidates(rng, 2, 3, n_items)}
    random_sets, real_sets = sasrec_parity_inputs(model, n_checks, real_sequences)
    graphs = {
        "ranker": (SequenceRanker(model), example, ["scores"],
                   {"item_seq": {0: "batch", 1: "seq_len"}, "candidates": {0: "batch", 1: "n_candidates"}}),
        "user_encoder": (UserEncoder(model), {"item_seq": example_seq}, ["user_embedding"],
                         {"item_seq": {0: "batch", 1: "seq_len"}}),
    }
    manifest: dict = {"format": "onnx", "opset": opset, "exporter": f"torch.onnx dynamo (torch {torch.__version__})",
                      "onnxruntime": ort.__version__,
                      "model": {"name": "sasrec", "n_items": n_items, "max_length": window,
                                "hidden": model.config.hidden},
                      "files": {}, "graphs": {}, "parity": {}, "latency_ms": {}}
    latency_inputs = {"item_seq": _random_sequences(rng, 64, window, n_items),
                      "candidates": _random_candidates(rng, 64, latency_candidates, n_items)}
    latency_info = {"ranker": {"seq_len": window, "n_candidates": latency_candidates},
                    "user_encoder": {"seq_len": window}}
    return export_graphs(graphs, random_sets, real_sets, latency_inputs, out_dir, manifest, extra, atol, opset,
                         latency_repeats, verbose, latency_info)


class ItemTowerGraph(nn.Module):
    """Item features → ``item_embedding``: embeds items added to the catalog after training (cold start)."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.tower = model.items

    def forward(self, item_idx, category, brand, price_bucket, title_tokens, has_id):
        return self.tower.embed(item_idx, category, brand, price_bucket, title_tokens, has_id.float())


class QueryTowerGraph(nn.Module):
    """``item_seq`` → ``query_embedding``, with the catalog's item vectors baked in as a constant."""

    def __init__(self, model: nn.Module, item_vectors: torch.Tensor):
        super().__init__()
        self.model = model
        self.register_buffer("item_vectors", item_vectors)

    def forward(self, item_seq: torch.Tensor) -> torch.Tensor:
        window = self.model.config.history_length
        seq = item_seq[:, -window:]
        # Items unknown to this export (added to the catalog later) are read as OOV.
        seq = torch.where(seq >= self.item_vectors.shape[0], torch.full_like(seq, OOV), seq)
        return self.model.query(seq, self.item_vectors)


def export_two_tower(model: nn.Module, out_dir: str | Path, real_sequences: Sequence[np.ndarray] | None = None,
                     n_checks: int = 6, atol: float = 1e-4, opset: int = DEFAULT_OPSET, latency_repeats: int = 20,
                     extra: dict | None = None, verbose: bool = True) -> dict:
    """Write ``query_tower.onnx``, ``item_tower.onnx``, ``item_embeddings.npy`` (what the retrieval index
    holds, one row per item index) and ``manifest.json``, each graph checked against PyTorch."""
    out_dir = Path(out_dir)
    out_dir.mkdir(parents=True, exist_ok=True)
    model = copy.deepcopy(model).cpu().eval()
    features = model.features
    with torch.no_grad():
        vectors = model.item_embeddings()
    np.save(out_dir / "item_embeddings.npy", vectors.numpy().astype(np.float32))
    n_items, window = len(features), model.config.history_length
    rng = np.random.default_rng(1234)

    def item_inputs(rows: np.ndarray) -> dict[str, np.ndarray]:
        index = torch.from_numpy(rows)
        return {"item_idx": rows, "category": features.category[index].numpy(),
                "brand": features.brand[index].numpy(), "price_bucket": features.price_bucket[index].numpy(),
                "title_tokens": features.title_tokens[index].numpy(), "has_id": features.has_id[index].numpy()}

    def sequence_set(batch: int, length: int) -> dict[str, np.ndarray]:
        return {"item_seq": _random_sequences(rng, batch, length, n_items)}

    random_sets = [{**sequence_set(b, length), **item_inputs(rng.integers(0, n_items, b))}
                   for b, length in zip((1, 7, 64, 3, 33, 5)[:n_checks], (window, 1, window // 2 + 1, window + 3,
                                                                          3, window)[:n_checks], strict=True)]
    real_sets = []
    if real_sequences:
        for _ in range(min(n_checks, 3)):
            rows = rng.choice(len(real_sequences), min(64, len(real_sequences)), replace=False)
            real_sets.append({"item_seq": pad_left([real_sequences[r] for r in rows], window),
                              **item_inputs(np.arange(min(n_items, 500)))})
    graphs = {
        "query_tower": (QueryTowerGraph(model, vectors), sequence_set(2, max(window, 4)), ["query_embedding"],
                        {"item_seq": {0: "batch", 1: "seq_len"}}),
        "item_tower": (ItemTowerGraph(model), item_inputs(np.arange(2, 5)), ["item_embedding"],
                       {**{k: {0: "items"} for k in ("item_idx", "category", "brand", "price_bucket", "has_id")},
                        "title_tokens": {0: "items"}}),
    }
    manifest: dict = {"format": "onnx", "opset": opset, "exporter": f"torch.onnx dynamo (torch {torch.__version__})",
                      "onnxruntime": ort.__version__,
                      "model": {"name": "two_tower", "n_items": n_items, "history_length": window,
                                "dim": model.config.dim, "item_embeddings": "item_embeddings.npy"},
                      "files": {}, "graphs": {}, "parity": {}, "latency_ms": {}}
    latency_inputs = {**sequence_set(64, window), **item_inputs(rng.integers(0, n_items, 64))}
    return export_graphs(graphs, random_sets, real_sets, latency_inputs, out_dir, manifest, dict(extra or {}),
                         atol, opset, latency_repeats, verbose)
