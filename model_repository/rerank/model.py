"""Triton python model `rerank`: the code lives in `ensemble.triton_models` (shared with the in-process funnel)."""

from ensemble.triton_models import RerankModel as TritonPythonModel

__all__ = ["TritonPythonModel"]
