"""Training recipe of the sequential ranker on a prepared dataset."""

from __future__ import annotations

import time
from pathlib import Path

import numpy as np
import torch

from training.data import PreparedData, pad_left
from training.evaluate import Scorer, evaluate
from training.models.sasrec import SASRec, SASRecConfig
from training.trainer import TrainConfig, Trained, Trainer, config_hash


def next_item_pairs(sequences: list[np.ndarray], max_length: int) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs (all but the last item) and labels (all but the first), left-padded to ``max_length``."""
    usable = [s[-(max_length + 1):] for s in sequences if len(s) >= 2]
    inputs = torch.from_numpy(pad_left([s[:-1] for s in usable], max_length)).int()
    labels = torch.from_numpy(pad_left([s[1:] for s in usable], max_length)).int()
    return inputs, labels


def epoch_batches(inputs: torch.Tensor, labels: torch.Tensor, batch_size: int, seed: int):
    """``batches(epoch, rank, world_size)``: a seeded shuffle per epoch, every world_size-th batch per process.

    Under DDP every process must run the same number of steps (each step all-reduces gradients), so
    the last ``n_batches % world_size`` batches of an epoch's shuffle are left out; another shuffle
    leaves out other rows next epoch.
    """
    n_batches = -(-len(inputs) // batch_size)

    def batches(epoch: int, rank: int, world_size: int):
        order = torch.randperm(len(inputs), generator=torch.Generator().manual_seed(seed + epoch))
        for i in range(rank, n_batches - n_batches % world_size, world_size):
            rows = order[i * batch_size:(i + 1) * batch_size]
            yield inputs[rows].long(), labels[rows].long()
    return batches, n_batches


def sequence_scorer(model: SASRec, device: torch.device) -> Scorer:
    def score(histories, user_idx):
        seq = torch.from_numpy(pad_left(histories, model.config.max_length)).to(device)
        return model.score_all(seq).float()
    return score


def train_sasrec(data: PreparedData, output_dir: Path, model_config: SASRecConfig | None = None,
                 train_config: TrainConfig | None = None, resume: bool = True, progress: bool = True) -> Trained:
    """Train with early stopping on validation NDCG@10; evaluate the best checkpoint on the test set.

    Returns the best model (on the main process) and its report: test metrics, best epoch, time,
    model version and the per-epoch history.
    """
    model_config, train_config = model_config or SASRecConfig(), train_config or TrainConfig()
    model = SASRec(data.n_items, model_config)
    inputs, labels = next_item_pairs(data.train_sequences, model_config.max_length)
    batches, n_batches = epoch_batches(inputs, labels, train_config.batch_size, train_config.seed)
    rng = np.random.default_rng(train_config.seed)
    n_valid = min(train_config.validation_users, len(data.valid))
    valid = data.valid.subset(np.sort(rng.choice(len(data.valid), n_valid, replace=False)))
    identity = {"model": "sasrec", "dataset": data.fingerprint, "config": config_hash(model_config, train_config)}
    trainer = Trainer(model, train_config, output_dir, batches, n_batches,
                      validate=lambda m: evaluate(sequence_scorer(m, trainer.device), data, valid),
                      identity=identity, progress=progress)
    resumed = trainer.resume() if resume else False
    started = time.perf_counter()
    state = trainer.fit()
    report = {"model": "sasrec", "resumed": resumed, "world_size": trainer.dist.world_size,
              "epochs": state.epoch, "best_epoch": state.best_epoch,
              "train_seconds": round(state.seconds, 1), "session_seconds": round(time.perf_counter() - started, 1),
              "version": f"sasrec-{data.fingerprint[:8]}-{identity['config']}-e{state.best_epoch}",
              "device": str(trainer.device), "precision": str(trainer.dtype).replace("torch.", ""),
              "history": state.history}
    best = None
    if trainer.dist.is_main:
        best = trainer.load_best()
        with torch.no_grad():
            report["test"] = evaluate(sequence_scorer(best, trainer.device), data, data.test, progress=progress)
    return Trained(best, report)
