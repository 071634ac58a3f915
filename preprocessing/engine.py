"""Where polars plans run: RAPIDS cuDF on a GPU (via cudf-polars) when available, the CPU otherwise.

One code path: every stage builds ``pl.LazyFrame`` plans and calls :func:`collect`, which passes the
engine to ``LazyFrame.collect``. Operations cudf-polars does not support fall back to the CPU by
themselves, so a plan never fails for running on the GPU.
"""

from __future__ import annotations

import functools
import importlib.util
from typing import Literal

import polars as pl

EngineName = Literal["auto", "cpu", "gpu"]


@functools.cache
def gpu_available() -> bool:
    """True when cudf-polars is installed and a tiny plan really runs on the GPU."""
    if importlib.util.find_spec("cudf_polars") is None:
        return False
    try:
        pl.LazyFrame({"a": [1, 2]}).select(pl.col("a").sum()).collect(engine=pl.GPUEngine(raise_on_fail=True))
    except Exception:  # no device, no driver or a broken install: the CPU is the answer in every case
        return False
    return True


def resolve_engine(name: EngineName = "auto") -> Literal["cpu", "gpu"]:
    """Resolve ``auto`` to ``gpu`` or ``cpu``; asking for ``gpu`` without one is an error."""
    if name == "cpu":
        return "cpu"
    if name == "gpu":
        if not gpu_available():
            raise RuntimeError("engine 'gpu' requested but cudf-polars or a CUDA GPU is not available "
                               "(install recstack[gpu] on a GPU host, or use engine 'auto'/'cpu')")
        return "gpu"
    if name != "auto":
        raise ValueError(f"unknown engine {name!r}; use 'auto', 'cpu' or 'gpu'")
    return "gpu" if gpu_available() else "cpu"


def collect(plan: pl.LazyFrame, engine: Literal["cpu", "gpu"] = "cpu") -> pl.DataFrame:
    """Run a lazy plan on the chosen engine."""
    if engine == "gpu":
        return plan.collect(engine=pl.GPUEngine(raise_on_fail=False))
    return plan.collect()
