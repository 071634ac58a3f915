"""Training loop shared by the neural models: progress, validation, early stopping, checkpoints, resume, DDP."""

from __future__ import annotations

import hashlib
import json
import time
from collections.abc import Callable, Iterator
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path

import numpy as np
import torch
from recstack.training.config import TrainConfig
from recstack.training.report import TrainingReport
from recstack.training.runtime import Distributed, autocast, pick_device, resolve_precision, seed_everything
from torch import nn
from torch.nn.parallel import DistributedDataParallel
from tqdm.auto import tqdm

LAST, BEST, FINAL = "checkpoint_last.pt", "checkpoint_best.pt", "checkpoint_final.pt"
FINISH_EPOCH_OFFSET = 10_000


@dataclass
class TrainState:
    """What a checkpoint holds beyond the weights, so an interrupted run resumes where it stopped."""

    epoch: int = 0
    best_metric: float = float("-inf")
    best_epoch: int = 0
    stale_validations: int = 0
    seconds: float = 0.0
    history: list[dict] = field(default_factory=list)


BUDGET_CHECK_BATCHES = 8  # batches between checks of the time budget inside an epoch (a broadcast under DDP)
# Settings that do not change the training trajectory: a run may resume with other values.
_RESUMABLE_FIELDS = ("epochs", "max_minutes", "device", "patience", "finish_epochs", "test_users")


def with_model_lr(train_config: TrainConfig, model_config) -> TrainConfig:
    """``train_config`` with its learning rate, the model config's ``lr`` unless the training settings set one."""
    if train_config.lr is not None:
        return train_config
    if model_config.lr <= 0:
        raise ValueError(f"lr must be positive; {type(model_config).__name__} has {model_config.lr}")
    return replace(train_config, lr=model_config.lr)


# Settings added after models were trained, at the value that leaves the model as it was: left out of the hash at
# that value, so the versions of earlier runs stay valid (and they resume).
_ADDED_DEFAULTS = {"objectives": False, "objective_weight": 0.5}


def config_hash(*configs) -> str:
    """Short hash of the settings that shape the model; identifies a run for resuming and versions."""
    fields = [{k: v for k, v in asdict(c).items()
               if k not in _RESUMABLE_FIELDS and not (k in _ADDED_DEFAULTS and v == _ADDED_DEFAULTS[k])}
              for c in configs]
    return hashlib.sha256(json.dumps(fields, sort_keys=True, default=str).encode()).hexdigest()[:8]


def process_batches(n_batches: int, rank: int, world_size: int) -> range:
    """Indices of the batches this process runs: every ``world_size``-th one.

    Under DDP every process must run the same number of steps (each step all-reduces gradients), so
    the last ``n_batches % world_size`` batches of an epoch are left out; as each epoch shuffles anew,
    other rows are left out next time.
    """
    return range(rank, n_batches - n_batches % world_size, world_size)


@dataclass
class Trained:
    """A training run's outcome: the best model (None on torchrun's other processes) and its report."""

    model: nn.Module | None
    report: TrainingReport


class Objective(nn.Module):
    """Wraps a model's ``loss`` as ``forward`` so DistributedDataParallel synchronises its gradients."""

    def __init__(self, model: nn.Module):
        super().__init__()
        self.model = model

    def forward(self, *batch, generator=None):
        return self.model.loss(*batch, generator=generator)


@dataclass
class Trainer:
    """Runs epochs of ``batches`` through ``model.loss`` and validates with ``validate``.

    ``batches(epoch, rank, world_size)`` yields tuples of tensors for this process;
    ``validate(model)`` returns metrics, of which ``monitor`` decides the best checkpoint.
    """

    model: nn.Module
    config: TrainConfig
    output_dir: Path
    batches: Callable[[int, int, int], Iterator[tuple[torch.Tensor, ...]]]
    batches_per_epoch: int
    validate: Callable[[nn.Module], dict[str, float]]
    identity: dict  # model name, config hash, dataset fingerprint: a checkpoint must match to resume
    monitor: str = "ndcg@10"
    progress: bool = True

    def __post_init__(self):
        if self.config.lr is None:
            raise ValueError("TrainConfig.lr is None: resolve it with the model's default first (with_model_lr)")
        self.device = pick_device(self.config.device)
        self.dtype = resolve_precision(self.config.precision, self.device)
        self.dist = Distributed.from_environment(self.device)
        self.output_dir = Path(self.output_dir)
        seed_everything(self.config.seed)
        self.model.to(self.device)
        self.objective = Objective(self.model)
        if self.dist.world_size > 1:
            self.objective = DistributedDataParallel(
                self.objective, device_ids=[self.device.index] if self.device.type == "cuda" else None)
        self.optimizer = torch.optim.AdamW(self.model.parameters(), lr=self.config.lr,
                                           weight_decay=self.config.weight_decay)
        self.state = TrainState()
        self.finish_seconds = 0.0

    # -- checkpoints --------------------------------------------------------------------------------
    def _save(self, name: str) -> None:
        if not self.dist.is_main:
            return
        self.output_dir.mkdir(parents=True, exist_ok=True)
        payload = {"identity": self.identity, "state": asdict(self.state), "model": self.model.state_dict(),
                   "optimizer": self.optimizer.state_dict(), "torch_rng": torch.get_rng_state(),
                   "cuda_rng": torch.cuda.get_rng_state_all() if torch.cuda.is_available() else None,
                   "numpy_rng": np.random.get_state()}
        tmp = self.output_dir / f".{name}.tmp"
        torch.save(payload, tmp)
        tmp.replace(self.output_dir / name)  # atomic: an interruption never leaves a torn checkpoint

    def resume(self) -> bool:
        """Continue from ``checkpoint_last.pt`` when it belongs to this run; True if it did."""
        path = self.output_dir / LAST
        if not path.exists():
            return False
        payload = torch.load(path, map_location=self.device, weights_only=False)
        if payload["identity"] != self.identity:
            raise ValueError(f"{path} belongs to another run ({payload['identity']} != {self.identity}); "
                             "delete it or choose another output folder")
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        self.state = TrainState(**payload["state"])
        # RNG states must be CPU byte tensors, whatever map_location moved them to.
        torch.set_rng_state(payload["torch_rng"].cpu())
        if payload.get("cuda_rng") and torch.cuda.is_available():
            torch.cuda.set_rng_state_all([state.cpu() for state in payload["cuda_rng"]])
        np.random.set_state(payload["numpy_rng"])
        return True

    # -- loop ---------------------------------------------------------------------------------------
    def fit(self) -> TrainState:
        cfg = self.config
        started = time.perf_counter() - self.state.seconds
        bar = tqdm(total=cfg.epochs, initial=self.state.epoch, desc="train", unit="epoch",
                   disable=not (self.progress and self.dist.is_main))
        generator = torch.Generator(device=self.device)
        # A resumed run that had already stopped (patience or time budget) stays stopped.
        stop = self.state.stale_validations >= cfg.patience or self._out_of_time()
        deadline = started + cfg.max_minutes * 60 if cfg.max_minutes is not None else None
        while self.state.epoch < cfg.epochs and not stop:
            epoch = self.state.epoch
            losses = self._epoch(self.batches, epoch, generator, deadline=deadline)
            self.state.epoch = epoch + 1
            self.state.seconds = time.perf_counter() - started
            record = {"epoch": epoch + 1, "loss": float(np.mean(losses)) if losses else float("nan"),
                      "batches": len(losses), "seconds": round(self.state.seconds, 1)}
            out_of_time = self._out_of_time()
            last_epoch = self.state.epoch == cfg.epochs
            if self.dist.is_main and ((epoch + 1) % cfg.validate_every == 0 or out_of_time or last_epoch):
                self.model.eval()
                with torch.no_grad():  # in fp32, like the test: bf16 scores tie and make the monitor noisy
                    metrics = self.validate(self.model)
                record.update({f"valid_{k}": v for k, v in metrics.items()})
                if metrics[self.monitor] > self.state.best_metric:
                    self.state.best_metric, self.state.best_epoch = metrics[self.monitor], epoch + 1
                    self.state.stale_validations = 0
                    self._save(BEST)
                else:
                    self.state.stale_validations += 1
                stop = self.state.stale_validations >= cfg.patience
            self.state.history.append(record)
            self._save(LAST)
            stop = self.dist.broadcast_flag(stop or out_of_time)
            bar.update(1)
            bar.set_postfix(loss=f"{record['loss']:.4f}", best=f"{self.state.best_metric:.4f}",
                            at=self.state.best_epoch)
        bar.close()
        self.dist.barrier()
        return self.state

    def _epoch(self, batches, epoch: int, generator: torch.Generator, schedule=None,
               deadline: float | None = None) -> list[float]:
        """One pass over ``batches(epoch, ...)``, cut short once ``time.perf_counter()`` passes ``deadline`` (an
        epoch over a 1M-item catalog takes longer than a whole time budget); returns the batch losses."""
        # Each process draws its own negatives and dropout masks.
        generator.manual_seed((self.config.seed * 1_000_003 + epoch) * 1_009 + self.dist.rank)
        self.model.train()
        losses = []
        for step, batch in enumerate(batches(epoch, self.dist.rank, self.dist.world_size)):
            # Every process must stop at the same batch: the main process decides, every few batches.
            if deadline is not None and step and step % BUDGET_CHECK_BATCHES == 0 \
                    and self.dist.broadcast_flag(time.perf_counter() > deadline):
                break
            batch = tuple(t.to(self.device, non_blocking=True) for t in batch)
            with autocast(self.device, self.dtype):
                loss = self.objective(*batch, generator=generator)
            self.optimizer.zero_grad(set_to_none=True)
            loss.backward()
            self.optimizer.step()
            if schedule is not None:
                schedule.step()
            losses.append(float(loss.detach()))
        return losses

    def finish(self, batches: Callable[[int, int, int], Iterator[tuple[torch.Tensor, ...]]], n_batches: int
               ) -> nn.Module:
        """``config.finish_epochs`` epochs over ``batches`` from the best checkpoint (weights and optimizer),
        the learning rate decaying linearly to 0; saved as ``checkpoint_final.pt``. A finished stage is loaded,
        not run again; an interrupted one starts over from the best checkpoint."""
        cfg = self.config
        path = self.output_dir / FINAL
        if path.exists():
            payload = torch.load(path, map_location=self.device, weights_only=False)
            if payload["identity"] == {**self.identity, "finish_epochs": cfg.finish_epochs}:
                self.model.load_state_dict(payload["model"])
                return self.model.eval()
        payload = torch.load(self.output_dir / BEST, map_location=self.device, weights_only=False)
        self.model.load_state_dict(payload["model"])
        self.optimizer.load_state_dict(payload["optimizer"])
        steps = max(1, cfg.finish_epochs * len(process_batches(n_batches, self.dist.rank, self.dist.world_size)))
        schedule = torch.optim.lr_scheduler.LambdaLR(self.optimizer, lambda step: max(0.0, 1 - step / steps))
        generator = torch.Generator(device=self.device)
        bar = tqdm(total=cfg.finish_epochs, desc="finish", unit="epoch", disable=not (self.progress and
                                                                                     self.dist.is_main))
        started = time.perf_counter()
        for epoch in range(cfg.finish_epochs):
            # Epoch numbers past the main run's give this stage shuffles and masks of its own.
            losses = self._epoch(batches, FINISH_EPOCH_OFFSET + epoch, generator, schedule)
            bar.update(1)
            bar.set_postfix(loss=f"{np.mean(losses):.4f}")
        bar.close()
        self.finish_seconds = time.perf_counter() - started
        if self.dist.is_main:
            torch.save({"identity": {**self.identity, "finish_epochs": cfg.finish_epochs},
                        "model": self.model.state_dict()}, path.with_suffix(".tmp"))
            path.with_suffix(".tmp").replace(path)
        self.dist.barrier()
        return self.model.eval()

    def _out_of_time(self) -> bool:
        return self.config.max_minutes is not None and self.state.seconds > self.config.max_minutes * 60

    def load_best(self) -> nn.Module:
        payload = torch.load(self.output_dir / BEST, map_location=self.device, weights_only=False)
        self.model.load_state_dict(payload["model"])
        self.model.eval()
        return self.model
