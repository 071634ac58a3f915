"""Triton python model `trending`: its code is `recstack.ensemble.triton_models` (shared with the in-process funnel)."""

from recstack.ensemble.triton_models import TrendingModel as TritonPythonModel

__all__ = ["TritonPythonModel"]
