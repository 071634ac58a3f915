"""Generic ONNX tooling: export with a parity check against PyTorch, onnxruntime CPU latencies, signatures.

The helpers (:func:`export_onnx`, :func:`check_parity`, :func:`onnx_latency`, :func:`onnx_signature`,
:func:`export_graphs`) take any module whose ``forward`` takes named tensors; the per-model exporters
(:mod:`.export_sasrec`, :mod:`.export_two_tower`) say which graphs a model serves with.

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


def device_of(module: nn.Module) -> torch.device:
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
    device = device_of(module)
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
        Tolerance on the largest absolute difference of any output element, for outputs of magnitude up to 1;
        larger outputs are allowed ``atol`` times their largest magnitude (float32 rounding grows with the
        values: a model with large weights is not a broken export).
    session : onnxruntime.InferenceSession, optional
        An open session of ``path``, to avoid loading it again.

    Returns
    -------
    float
        The largest absolute difference seen.

    Raises
    ------
    ParityError
        When an output's shape differs or its difference exceeds the tolerance; the message names the input set.
    """
    if not inputs_list:
        raise ValueError("check_parity needs at least one input set")
    session = session or onnx_session(path)
    graph_inputs = [i.name for i in session.get_inputs()]
    output_names = [o.name for o in session.get_outputs()]
    device = device_of(module)
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
                tolerance = atol * max(1.0, float(np.abs(want[np.isfinite(want)]).max(initial=0.0)))
                if diff > tolerance:
                    raise ParityError(f"{path}: output {name!r} differs from PyTorch by {diff:.3g} > {tolerance:.3g} "
                                      f"(atol {atol:g} scaled by the outputs' magnitude; input set {index}, "
                                      f"shapes {shapes})")
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


def random_sequences(rng: np.random.Generator, batch: int, length: int, n_items: int) -> np.ndarray:
    """Left-padded rows with between 0 and ``length`` real items; half of them mostly padding."""
    seq = np.zeros((batch, length), dtype=np.int64)
    for row in range(batch):
        # Real histories are short next to the window, and an all-padding row is a new user.
        filled = rng.integers(0, length + 1) if row % 2 else rng.integers(0, max(length // 8, 1) + 1)
        # From OOV up: serving sees OOV for items that arrived after training.
        seq[row, length - filled:] = rng.integers(OOV, n_items, filled)
    return seq


def random_candidates(rng: np.random.Generator, batch: int, count: int, n_items: int) -> np.ndarray:
    return rng.integers(FIRST_INDEX, n_items, (batch, count), dtype=np.int64)


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
