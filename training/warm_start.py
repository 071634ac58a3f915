"""Warm starts for incremental retraining: a model for a grown catalog starts from the serving model's weights.

Incremental preprocessing (:mod:`recstack.preprocessing.incremental`) only appends users, items, categories and
tokens, so every table of the serving model is a prefix of the new model's: its rows are copied and the new
rows keep their fresh initialisation.
"""

from __future__ import annotations

from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from recstack.training.data import PreparedData
from recstack.training.trainer import BEST, FINAL
from torch import nn


def serving_checkpoint(model_dir: Path) -> Path:
    """The checkpoint a training run exported: the finished model when finishing epochs ran, else the best one."""
    for name in (FINAL, BEST):
        if (Path(model_dir) / name).exists():
            return Path(model_dir) / name
    raise FileNotFoundError(f"no trained checkpoint in {model_dir} ({FINAL} or {BEST}): train it first")


def grow_into(model: nn.Module, checkpoint: Path) -> dict[str, int]:
    """Load ``checkpoint``'s weights into ``model``, whose tables may have more rows; returns, per grown table,
    the rows added. Any other difference of shape is an error: the models do not belong together.

    Examples
    --------
    >>> old, new = nn.Embedding(3, 2), nn.Embedding(5, 2)
    >>> torch.save({"model": old.state_dict()}, "/tmp/old.pt")
    >>> grow_into(new, Path("/tmp/old.pt")), bool((new.weight[:3] == old.weight).all())
    ({'weight': 2}, True)
    """
    state = torch.load(checkpoint, map_location="cpu", weights_only=False)["model"]
    grown: dict[str, int] = {}
    with torch.no_grad():
        for name, target in model.state_dict().items():
            if name not in state:
                raise ValueError(f"{checkpoint} has no {name}: it is not a checkpoint of this model")
            source = state[name]
            if source.shape == target.shape:
                target.copy_(source)
            elif source.shape[1:] == target.shape[1:] and source.shape[0] < target.shape[0]:
                target[:source.shape[0]].copy_(source)
                grown[name] = target.shape[0] - source.shape[0]
            else:
                raise ValueError(f"{checkpoint}: {name} is {tuple(source.shape)}, the model's {tuple(target.shape)}; "
                                 "retrain from scratch (recstack retrain --full)")
    return grown


def focus(data: PreparedData, recent_users: np.ndarray, replay: float, seed: int) -> PreparedData:
    """``data`` training only on the users with new events and a random replay sample of ``replay`` times as many
    other users (so the model does not forget them); validation and test stay whole."""
    recent = np.isin(data.train_user_idx, recent_users)
    others = np.flatnonzero(~recent)
    rng = np.random.default_rng(seed)
    sample = rng.choice(others, min(len(others), int(round(replay * recent.sum()))), replace=False)
    rows = np.sort(np.concatenate([np.flatnonzero(recent), sample]))
    return replace(data, train_user_idx=data.train_user_idx[rows],
                   train_sequences=[data.train_sequences[i] for i in rows],
                   train_stages=None if data.train_stages is None else [data.train_stages[i] for i in rows])
