"""The sequential ranker's serving graphs, exported to ONNX and checked against PyTorch:

``ranker.onnx``
    ``item_seq`` (int64, batch × seq_len, left-padded with 0) and ``candidates`` (int64, batch ×
    n_candidates) → ``scores`` (float32, batch × n_candidates); a ranker trained with objective heads
    (``SASRecConfig.objectives``) also → ``objectives`` (float32, batch × n_candidates × 3: P(click),
    P(add-to-cart), P(purchase), ``OBJECTIVES`` order), checked against PyTorch like the scores.
``user_encoder.onnx``
    ``item_seq`` → ``user_embedding`` (float32, batch × hidden).
"""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from recstack.preprocessing.vocabulary import OOV
from recstack.training.config import OBJECTIVES_OUTPUT
from recstack.training.data import pad_left
from recstack.training.models.sasrec import SASRec
from recstack.training.onnx_tools import (
    DEFAULT_OPSET,
    device_of,
    export_graphs,
    random_candidates,
    random_sequences,
)
from torch import nn


class SequenceRanker(nn.Module):
    """The funnel's rank stage as one graph: ``(item_seq, candidates) → scores``, or ``→ (scores, objectives)``
    for a model with objective heads.

    Sequences longer than the model's window keep their newest ``max_length`` items, as ``pad_left`` does
    in training, so a client never has to know the window to get the model's answer.
    """

    def __init__(self, model: SASRec):
        super().__init__()
        self.model = model

    @property
    def output_names(self) -> list[str]:
        return ["scores", OBJECTIVES_OUTPUT] if self.model.heads is not None else ["scores"]

    def forward(self, item_seq: torch.Tensor, candidates: torch.Tensor
                ) -> torch.Tensor | tuple[torch.Tensor, torch.Tensor]:
        # Items added to the catalog after training (indices past the model's table) are read as OOV, in the
        # history and among the candidates, so a newer catalog never breaks the ranker.
        n_items = self.model.n_items
        item_seq = torch.where(item_seq >= n_items, torch.full_like(item_seq, OOV), item_seq)
        candidates = torch.where(candidates >= n_items, torch.full_like(candidates, OOV), candidates)
        item_seq = item_seq[:, -self.model.config.max_length:]
        if self.model.heads is not None:
            return self.model.score_objectives(item_seq, candidates)
        return self.model.score_candidates(item_seq, candidates)


class UserEncoder(nn.Module):
    """``item_seq → user_embedding``: the query vector for retrieval over the item embeddings."""

    def __init__(self, model: SASRec):
        super().__init__()
        self.model = model

    def forward(self, item_seq: torch.Tensor) -> torch.Tensor:
        return self.model(item_seq[:, -self.model.config.max_length:])


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
    random = [{"item_seq": random_sequences(rng, batches[i % 5], lengths[i % 5], n_items),
               "candidates": random_candidates(rng, batches[i % 5], counts[i % 5], n_items)}
              for i in range(n_checks)]
    real = []
    if real_sequences:
        # With 64 users or fewer every batch would hold all of them again.
        for _ in range(n_checks if len(real_sequences) > 64 else 1):
            rows = rng.choice(len(real_sequences), min(64, len(real_sequences)), replace=False)
            seq = pad_left([real_sequences[r] for r in rows], window)
            # The user's own items among the candidates, as when retrieval returns items they already saw.
            candidates = random_candidates(rng, len(rows), 50, n_items)
            candidates[:, :5] = np.where(seq[:, -5:] > 0, seq[:, -5:], candidates[:, :5])
            real.append({"item_seq": seq, "candidates": candidates})
    return random, real


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
    ...               extra={"version": report.version})["parity"]["ranker"]  # doctest: +SKIP
    {'max_abs_diff': 9.5e-07, 'random_max_abs_diff': 9.5e-07, 'real_max_abs_diff': 4.8e-07, ...}
    """
    if n_checks < 1:
        raise ValueError("n_checks must be at least 1")
    extra = dict(extra or {})
    out_dir = Path(out_dir)
    # ORT CPU is the reference runtime; comparing a GPU model against it would measure GPU arithmetic,
    # not the export.
    if device_of(model).type != "cpu":
        model = copy.deepcopy(model).cpu()
    window, n_items = model.config.max_length, model.n_items
    rng = np.random.default_rng(1234)
    # Distinct example sizes per axis, none of them 0 or 1, keep torch.export from equating or freezing axes.
    example_seq = random_sequences(rng, 2, max(window, 4), n_items)
    example = {"item_seq": example_seq, "candidates": random_candidates(rng, 2, 3, n_items)}
    random_sets, real_sets = sasrec_parity_inputs(model, n_checks, real_sequences)
    ranker = SequenceRanker(model)
    graphs = {
        "ranker": (ranker, example, ranker.output_names,
                   {"item_seq": {0: "batch", 1: "seq_len"}, "candidates": {0: "batch", 1: "n_candidates"}}),
        "user_encoder": (UserEncoder(model), {"item_seq": example_seq}, ["user_embedding"],
                         {"item_seq": {0: "batch", 1: "seq_len"}}),
    }
    manifest: dict = {"format": "onnx", "opset": opset, "exporter": f"torch.onnx dynamo (torch {torch.__version__})",
                      "onnxruntime": ort.__version__,
                      "model": {"name": "sasrec", "n_items": n_items, "max_length": window,
                                "hidden": model.config.hidden},
                      "files": {}, "graphs": {}, "parity": {}, "latency_ms": {}}
    latency_inputs = {"item_seq": random_sequences(rng, 64, window, n_items),
                      "candidates": random_candidates(rng, 64, latency_candidates, n_items)}
    latency_info = {"ranker": {"seq_len": window, "n_candidates": latency_candidates},
                    "user_encoder": {"seq_len": window}}
    return export_graphs(graphs, random_sets, real_sets, latency_inputs, out_dir, manifest, extra, atol, opset,
                         latency_repeats, verbose, latency_info)
