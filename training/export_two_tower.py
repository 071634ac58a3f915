"""The two-tower model's serving graphs, exported to ONNX and checked against PyTorch: ``query_tower.onnx``
(``item_seq`` → ``query_embedding``), ``item_tower.onnx`` (item features → ``item_embedding``, for items added
after training) and ``item_embeddings.npy``, the vectors the retrieval index holds."""

from __future__ import annotations

import copy
from collections.abc import Sequence
from pathlib import Path

import numpy as np
import onnxruntime as ort
import torch
from recstack.preprocessing.vocabulary import OOV
from recstack.training.data import pad_left
from recstack.training.onnx_tools import DEFAULT_OPSET, export_graphs, random_sequences
from torch import nn


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
        return {"item_seq": random_sequences(rng, batch, length, n_items)}

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
