"""The part every model's training recipe shares: validate on a fixed subset, train, test the best checkpoint."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from torch import nn

from training.data import EvalSet, PreparedData
from training.evaluate import KS, Scorer, evaluate
from training.trainer import TrainConfig, Trained, Trainer, config_hash


def validation_subset(valid: EvalSet, config: TrainConfig) -> EvalSet:
    """A fixed, seeded subset of validation users: validation stays cheap on large datasets."""
    rng = np.random.default_rng(config.seed)
    size = min(config.validation_users, len(valid))
    return valid.subset(np.sort(rng.choice(len(valid), size, replace=False)))


def train_and_test(name: str, model: nn.Module, model_config, data: PreparedData, output_dir: Path,
                   train_config: TrainConfig, batches, n_batches: int,
                   scorer: Callable[[nn.Module, torch.device], Scorer], resume: bool, progress: bool,
                   test_ks: tuple[int, ...] = KS) -> Trained:
    """Train ``model`` with early stopping on validation NDCG@10 and evaluate its best checkpoint on test.

    The report holds the test metrics (main process only), best epoch, time, device, precision, the
    per-epoch history and the model version ``<name>-<dataset fingerprint>-<config hash>-e<best epoch>``.
    """
    valid = validation_subset(data.valid, train_config)
    identity = {"model": name, "dataset": data.fingerprint, "config": config_hash(model_config, train_config)}
    trainer = Trainer(model, train_config, output_dir, batches, n_batches,
                      validate=lambda m: evaluate(scorer(m, trainer.device), data, valid),
                      identity=identity, progress=progress)
    resumed = trainer.resume() if resume else False
    started = time.perf_counter()
    state = trainer.fit()
    report = {"model": name, "resumed": resumed, "world_size": trainer.dist.world_size,
              "epochs": state.epoch, "best_epoch": state.best_epoch,
              "train_seconds": round(state.seconds, 1), "session_seconds": round(time.perf_counter() - started, 1),
              "version": f"{name}-{data.fingerprint[:8]}-{identity['config']}-e{state.best_epoch}",
              "device": str(trainer.device), "precision": str(trainer.dtype).replace("torch.", ""),
              "history": state.history}
    best = None
    if trainer.dist.is_main:
        best = trainer.load_best()
        with torch.no_grad():
            report["test"] = evaluate(scorer(best, trainer.device), data, data.test, ks=test_ks, progress=progress)
    return Trained(best, report)
