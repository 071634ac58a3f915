"""Where code runs: one answer to "is there a GPU?", asked the same way and named the same way ("gpu") by every
stage. Each stage then maps it to its own backend: cuDF for polars plans, ``cuda`` for torch, ``KIND_GPU`` for
Triton instance groups, faiss-gpu for the index.

It sits below every stage (any of them may import it) and imports no stage.
"""

from __future__ import annotations

import functools
import importlib.util
import os
from pathlib import Path
from typing import Literal

Device = Literal["auto", "cpu", "gpu"]
DEVICES: tuple[Device, ...] = ("auto", "cpu", "gpu")
NVIDIA_DRIVER_GPUS = Path("/proc/driver/nvidia/gpus")  # one folder per GPU the NVIDIA driver sees


@functools.cache
def gpu_count() -> int:
    """CUDA GPUs this process may use: torch's count where torch is installed (it honours
    ``CUDA_VISIBLE_DEVICES``), otherwise the NVIDIA driver's device list, so the torch-free roles (the facade,
    ``build-repo`` on a serving host) answer the same question without installing torch."""
    if importlib.util.find_spec("torch") is not None:
        import torch

        return torch.cuda.device_count()
    visible = os.environ.get("CUDA_VISIBLE_DEVICES")
    if visible is not None and not visible.strip(","):
        return 0
    found = len(list(NVIDIA_DRIVER_GPUS.iterdir())) if NVIDIA_DRIVER_GPUS.is_dir() else 0
    return min(found, len(visible.split(","))) if visible else found


def usable_cores() -> int:
    """CPU cores this process may run on (its affinity mask, which containers and ``taskset`` narrow), for the
    thread pools a stage sizes itself; ``os.cpu_count()`` counts the whole machine's."""
    return len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1


def resolve(device: str, available: bool | None = None) -> Literal["cpu", "gpu"]:
    """``auto`` → ``gpu`` when one is available, else ``cpu``; ``gpu`` without one is an error that says so.
    ``cuda`` (torch's name) reads as ``gpu``. ``available`` defaults to :func:`gpu_count` > 0; a stage passes
    its own check (e.g. that cudf-polars really runs a plan).

    Examples
    --------
    >>> resolve("auto", available=False), resolve("cuda", available=True), resolve("cpu", available=True)
    ('cpu', 'gpu', 'cpu')
    >>> resolve("gpu", available=False)
    Traceback (most recent call last):
    ...
    RuntimeError: device 'gpu' requested but no usable GPU was found (use 'auto' or 'cpu')
    """
    name = "gpu" if device == "cuda" or device.startswith("cuda:") else device
    if name not in DEVICES:
        raise ValueError(f"unknown device {device!r}; use one of {list(DEVICES)}")
    if name == "cpu":
        return "cpu"
    available = gpu_count() > 0 if available is None else available
    if name == "gpu" and not available:
        raise RuntimeError(f"device {device!r} requested but no usable GPU was found (use 'auto' or 'cpu')")
    return "gpu" if available else "cpu"
