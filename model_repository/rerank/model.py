"""Triton python model `rerank`: its code is `recstack.ensemble.triton_models` (shared with the in-process funnel)."""

from recstack.ensemble.triton_models import RerankModel as TritonPythonModel

__all__ = ["TritonPythonModel"]
