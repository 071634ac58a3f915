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


def label_stages(sequences: list[np.ndarray], stages: list[np.ndarray], max_length: int) -> torch.Tensor:
    """The funnel stage of each label of :func:`next_item_pairs` (0: unknown, and padding). A sequence longer than
    its stages (the validation targets the finishing epochs append) has unknown stages past them.

    Examples
    --------
    >>> label_stages([np.array([5, 6, 7])], [np.array([1, 4])], 4)
    tensor([[0, 0, 4, 0]], dtype=torch.int8)
    """
    usable = [(s, np.pad(t, (0, len(s) - len(t)))[-(max_length + 1):])
              for s, t in zip(sequences, stages, strict=True) if len(s) >= 2]
    return torch.from_numpy(pad_left([t[1:] for _, t in usable], max_length)).to(torch.int8)


# Batches per pool sorted by length: pools this large hold many users of each length (little padding), and
# shuffling the pools, then the batches, keeps which users share a batch random from epoch to epoch.
POOL_BATCHES = 64


def length_bucketed(lengths: torch.Tensor, batch_size: int, generator: torch.Generator) -> list[torch.Tensor]:
    """Row indices of each batch: a shuffle cut into pools of ``POOL_BATCHES`` batches, each pool sorted by
    length and cut into batches, and the batches shuffled. As many batches as a plain shuffle gives.

    Examples
    --------
    >>> lengths = torch.tensor([1, 9, 2, 8, 1, 9, 2, 8])
    >>> batches = length_bucketed(lengths, 2, torch.Generator().manual_seed(0))
    >>> len(batches), sorted(sorted(lengths[b].tolist()) for b in batches)
    (4, [[1, 1], [2, 2], [8, 8], [9, 9]])
    """
    order = torch.randperm(len(lengths), generator=generator)
    batches = []
    for pool in order.split(batch_size * POOL_BATCHES):
        batches.extend(pool[torch.argsort(lengths[pool], stable=True)].split(batch_size))
    return [batches[i] for i in torch.randperm(len(batches), generator=generator)]


def epoch_batches(inputs: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int, length_aware: bool = False,
                  stages: torch.Tensor | None = None):
    """``batches(epoch, rank, world_size)``: a seeded shuffle per epoch, split between processes.

    ``length_aware`` groups rows of similar length (:func:`length_bucketed`) and cuts each batch to its longest
    row; otherwise batches are a uniform shuffle at the full padded width. ``stages`` (the labels' funnel stages,
    for the objective heads) come as a third tensor of each batch.
    """
    n_batches = -(-len(inputs) // batch_size)
    lengths = (inputs != 0).sum(1)

    def batches(epoch: int, rank: int, world_size: int):
        generator = torch.Generator().manual_seed(seed + epoch)
        if length_aware:
            rows_of = length_bucketed(lengths, batch_size, generator)
        else:
            order = torch.randperm(len(inputs), generator=generator)
            rows_of = order.split(batch_size)
        for i in process_batches(n_batches, rank, world_size):
            rows = rows_of[i]
            width = int(lengths[rows].max()) if length_aware else inputs.shape[1]
            batch = (inputs[rows, -width:].long(), labels[rows, -width:].long())
            yield batch if stages is None else (*batch, stages[rows, -width:].long())
    return batches, n_batches


def sequence_scorer(model: SASRec, device: torch.device) -> Scorer:
    """Scores of every item for a batch of histories, padded to the window or, with ``length_aware``, to the
    batch's longest history (the same scores, fewer positions)."""
    def score(histories, user_idx):
        window = model.config.max_length
        if model.config.length_aware:
            window = max(1, min(window, max(len(h) for h in histories)))
        seq = torch.from_numpy(pad_left(histories, window)).to(device)
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

    if model_config.objectives and data.train_stages is None:
        data = data.with_funnel_stages()

    def make_batches(sequences):
        # The training sequences, or with the validation targets appended: the same users in the same order.
        inputs, labels = next_item_pairs(sequences, model_config.max_length)
        stages = label_stages(sequences, data.train_stages, model_config.max_length) \
            if model_config.objectives else None
        return epoch_batches(inputs, labels, train_config.batch_size, train_config.seed, model_config.length_aware,
                             stages)

    return train_and_test("sasrec", model, model_config, data, output_dir, train_config, make_batches,
                          sequence_scorer, resume, progress, eval_by_length=model_config.length_aware)
