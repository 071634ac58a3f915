"""Triton python model `similar`: its code is `recstack.ensemble.triton_models` (shared with the in-process funnel)."""

from recstack.ensemble.triton_models import SimilarModel as TritonPythonModel

__all__ = ["TritonPythonModel"]
