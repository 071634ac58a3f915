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

from recstack.devices import DEVICES, Device, resolve

EngineName = Device
# polars' streaming engine (CPU): runs a plan in batches, so a scan larger than memory can be aggregated or sunk
# to files; preprocessing/streaming.py runs every plan on it.
STREAMING = "streaming"
Engine = Literal["cpu", "gpu", "streaming"]


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
    if name not in DEVICES:
        raise ValueError(f"unknown engine {name!r}; use 'auto', 'cpu' or 'gpu'")
    try:
        return resolve(name, available=name != "cpu" and gpu_available())
    except RuntimeError as exc:
        raise RuntimeError(f"{exc}: polars on the GPU needs cudf-polars and a CUDA GPU (install recstack[gpu] on "
                           "a GPU host)") from exc


def collect(plan: pl.LazyFrame, engine: Engine = "cpu") -> pl.DataFrame:
    """Run a lazy plan on the chosen engine."""
    if engine == "gpu":
        return plan.collect(engine=pl.GPUEngine(raise_on_fail=False))
    return plan.collect(engine="streaming" if engine == STREAMING else "auto")
