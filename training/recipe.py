"""The part every model's training recipe shares: validate on a fixed subset, train, test the best checkpoint."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import torch
from recstack.training.config import TrainConfig
from recstack.training.data import EvalSet, PreparedData
from recstack.training.evaluate import KS, Scorer, evaluate
from recstack.training.report import TrainingReport
from recstack.training.trainer import Trained, Trainer, config_hash, with_model_lr
from torch import nn


def user_subset(eval_set: EvalSet, size: int | None, seed: int) -> EvalSet:
    """A fixed, seeded subset of ``size`` users (all of them when ``size`` is None or not smaller)."""
    if size is None or size >= len(eval_set):
        return eval_set
    rng = np.random.default_rng(seed)
    return eval_set.subset(np.sort(rng.choice(len(eval_set), size, replace=False)))


def train_and_test(name: str, model: nn.Module, model_config, data: PreparedData, output_dir: Path,
                   train_config: TrainConfig, make_batches: Callable[[list[np.ndarray]], tuple[Callable, int]],
                   scorer: Callable[[nn.Module, torch.device], Scorer], resume: bool, progress: bool,
                   test_ks: tuple[int, ...] = KS, eval_by_length: bool = False) -> Trained:
    """Train ``model`` with early stopping on validation NDCG@10 and evaluate its final model on test.

    ``make_batches(sequences)`` gives ``(batches, n_batches)`` for the training sequences and, with
    ``finish_epochs``, for the training + validation sequences of the finishing epochs; the final model is then
    the finished one and the best checkpoint's test metrics are kept beside its own (``test_best_checkpoint``).
    The report holds the test metrics (main process only), best epoch, time, device, precision, the
    per-epoch history and the model version ``<name>-<dataset fingerprint>-<config hash>-e<best epoch>``
    (``-f<finish epochs>`` appended when finished). ``eval_by_length`` validates and tests users in order of
    history length, for a scorer that pads each batch to its longest history.
    """
    train_config = with_model_lr(train_config, model_config)
    batches, n_batches = make_batches(data.train_sequences)
    valid = user_subset(data.valid, train_config.validation_users, train_config.seed)
    test = user_subset(data.test, train_config.test_users, train_config.seed)
    if eval_by_length:
        valid, test = valid.by_history_length(), test.by_history_length()
    identity = {"model": name, "dataset": data.fingerprint, "config": config_hash(model_config, train_config)}
    trainer = Trainer(model, train_config, output_dir, batches, n_batches,
                      validate=lambda m: evaluate(scorer(m, trainer.device), data, valid),
                      identity=identity, progress=progress)
    resumed = trainer.resume() if resume else False
    started = time.perf_counter()
    state = trainer.fit()
    report = TrainingReport(
        model=name, resumed=resumed, world_size=trainer.dist.world_size, epochs=state.epoch,
        best_epoch=state.best_epoch, train_seconds=round(state.seconds, 1),
        session_seconds=round(time.perf_counter() - started, 1),
        version=f"{name}-{data.fingerprint[:8]}-{identity['config']}-e{state.best_epoch}", device=str(trainer.device),
        precision=str(trainer.dtype).replace("torch.", ""), loss=model.loss_kind, test_users=len(test),
        history=state.history)
    final = None
    if trainer.dist.is_main:
        final = trainer.load_best()
        if train_config.finish_epochs:
            with torch.no_grad():
                report.test_best_checkpoint = evaluate(scorer(final, trainer.device), data, test,
                                                          ks=test_ks, progress=progress)
    if train_config.finish_epochs:
        final = trainer.finish(*make_batches(data.train_and_valid_sequences()))
        report.finish_epochs, report.finish_seconds = train_config.finish_epochs, round(trainer.finish_seconds, 1)
        report.version += f"-f{train_config.finish_epochs}"
    if trainer.dist.is_main:
        with torch.no_grad():
            report.test = evaluate(scorer(final, trainer.device), data, test, ks=test_ks, progress=progress)
    return Trained(final if trainer.dist.is_main else None, report)
