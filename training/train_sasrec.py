"""Training recipe of the sequential ranker on a prepared dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from recstack.training.config import SASRecConfig, TrainConfig
from recstack.training.data import PreparedData, pad_left
from recstack.training.evaluate import Scorer
from recstack.training.models.sasrec import SASRec
from recstack.training.recipe import train_and_test
from recstack.training.runtime import seed_everything
from recstack.training.trainer import Trained, process_batches
from recstack.training.warm_start import grow_into


def next_item_pairs(sequences: list[np.ndarray], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (all but the last item) and labels (all but the first), left-padded to ``max_length``."""
    usable = [s[-(max_length + 1):] for s in sequences if len(s) >= 2]
    inputs = torch.from_numpy(pad_left([s[:-1] for s in usable], max_length)).int()
    labels = torch.from_numpy(pad_left([s[1:] for s in usable], max_length)).int()
    return inputs, labels


def epoch_batches(inputs: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int):
    """``batches(epoch, rank, world_size)``: a seeded shuffle per epoch, split between processes."""
    n_batches = -(-len(inputs) // batch_size)

    def batches(epoch: int, rank: int, world_size: int):
        order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(seed + epoch))
        for i in process_batches(n_batches, rank, world_size):
            rows = order[i * batch_size:(i + 1) * batch_size]
            yield inputs[rows].long(), labels[rows].long()
    return batches, n_batches


def sequence_scorer(model: SASRec, device: torch.device) -> Scorer:
    def score(histories, user_idx):
        seq = torch.from_numpy(pad_left(histories, model.config.max_length)).to(device)
        return model.score_all(seq).float()
    return score


def train_sasrec(data: PreparedData, output_dir: Path, model_config: SASRecConfig | None = None,
                 train_config: TrainConfig | None = None, resume: bool = True, progress: bool = True,
                 warm_start: Path | None = None) -> Trained:
    """Train with early stopping on validation NDCG@10 (then `finish_epochs`, if set); evaluate the final model on test.

    Returns the best model (on the main process) and its report: test metrics, best epoch, time,
    model version and the per-epoch history.
    """
    model_config, train_config = model_config or SASRecConfig(), train_config or TrainConfig()
    seed_everything(train_config.seed)  # the initial weights are part of the reproducible run
    model = SASRec(data.n_items, model_config)
    if warm_start is not None:
        grow_into(model, warm_start)

    def make_batches(sequences):
        inputs, labels = next_item_pairs(sequences, model_config.max_length)
        return epoch_batches(inputs, labels, train_config.batch_size, train_config.seed)

    return train_and_test("sasrec", model, model_config, data, output_dir, train_config, make_batches,
                          sequence_scorer, resume, progress)
