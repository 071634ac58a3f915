"""Typed settings of the serving stage (part of :class:`recstack.settings.Settings` as ``serving``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Literal

from ensemble.index import IndexKind
from ensemble.rerank import RerankConfig
from ensemble.retrieve import RetrieveConfig

DeviceKind = Literal["auto", "cpu", "gpu"]


@dataclass
class ServingConfig:
    """How the model repository is built and where Triton listens.

    ``device`` decides every ``instance_group`` at once: ``KIND_GPU`` on a GPU host (``auto`` when CUDA is
    visible), ``KIND_CPU`` otherwise; the same repository layout either way.
    """

    retrieve: RetrieveConfig = field(default_factory=RetrieveConfig)
    rerank: RerankConfig = field(default_factory=RerankConfig)
    index: IndexKind = "auto"
    index_target_recall: float = 0.95  # IVF nprobe grows until recall@candidates vs exact reaches it
    freshness_days: float = 14.0  # items created (or first seen) this recently are "new arrivals"
    device: DeviceKind = "auto"
    instances: int = 1  # per model
    max_batch_size: int = 64
    queue_delay_us: int = 200  # dynamic batching: how long a request may wait for others
    onnx_threads: int = 1
    keep_versions: int = 2  # older model versions are deleted from the repository at build time
    host: str = "127.0.0.1"
    http_port: int = 8000
    grpc_port: int = 8001
    metrics_port: int = 8002

    def __post_init__(self):
        if self.keep_versions < 1:
            raise ValueError("keep_versions must be at least 1 (the version being served)")
        if min(self.instances, self.max_batch_size, self.onnx_threads) < 1 or self.queue_delay_us < 0:
            raise ValueError("instances, max_batch_size and onnx_threads must be positive, queue_delay_us ≥ 0")
