"""Where and how training runs: device, precision, seeding and torchrun's distributed processes."""

from __future__ import annotations

import os
import random
from contextlib import nullcontext
from dataclasses import dataclass

import numpy as np
import torch
import torch.distributed as dist
from recstack.training.config import Precision

from recstack.devices import resolve


def pick_device(name: str = "auto") -> torch.device:
    """``auto``: the GPU when present (this process's local GPU under torchrun), else the CPU. ``gpu`` and torch's
    ``cuda`` / ``cuda:N`` both name the GPU."""
    kind = resolve(name, available=torch.cuda.is_available())
    device = torch.device(name if name.startswith("cuda:") else "cuda" if kind == "gpu" else "cpu")
    if device.type == "cuda":
        if device.index is None:  # one GPU per torchrun process
            device = torch.device("cuda", int(os.environ.get("LOCAL_RANK", 0)))
        torch.cuda.set_device(device)
    return device


def resolve_precision(precision: Precision, device: torch.device) -> torch.dtype:
    """bf16 autocast where the hardware computes it natively (Ampere+ GPUs; CPUs with AMX), else fp32."""
    if precision == "fp32":
        return torch.float32
    if precision == "bf16":
        return torch.bfloat16
    if device.type == "cuda":
        return torch.bfloat16 if torch.cuda.is_bf16_supported() else torch.float32
    return torch.bfloat16 if torch.cpu._is_amx_tile_supported() else torch.float32


def autocast(device: torch.device, dtype: torch.dtype):
    return nullcontext() if dtype == torch.float32 else torch.autocast(device.type, dtype=dtype)


def seed_everything(seed: int) -> None:
    random.seed(seed)
    np.random.seed(seed)
    torch.manual_seed(seed)


@dataclass(frozen=True)
class Distributed:
    """This process's place among torchrun's processes (a single process when not under torchrun)."""

    rank: int = 0
    world_size: int = 1
    device: torch.device = torch.device("cpu")

    @property
    def is_main(self) -> bool:
        return self.rank == 0

    @classmethod
    def from_environment(cls, device: torch.device) -> Distributed:
        world_size = int(os.environ.get("WORLD_SIZE", 1))
        if world_size == 1:
            return cls(device=device)
        if not dist.is_initialized():
            dist.init_process_group("nccl" if device.type == "cuda" else "gloo")
        return cls(dist.get_rank(), world_size, device)

    def broadcast_flag(self, flag: bool) -> bool:
        """The main process's decision (e.g. early stop), shared with every process."""
        if self.world_size == 1:
            return flag
        value = torch.tensor([int(flag)], device=self.device)
        dist.broadcast(value, src=0)
        return bool(value.item())

    def barrier(self) -> None:
        if self.world_size > 1:
            dist.barrier()
