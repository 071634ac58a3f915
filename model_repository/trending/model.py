"""Triton python model `trending`: the code lives in `ensemble.triton_models` (shared with the in-process funnel)."""

from ensemble.triton_models import TrendingModel as TritonPythonModel

__all__ = ["TritonPythonModel"]
