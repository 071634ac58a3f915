"""Triton python model `similar`: the code lives in `ensemble.triton_models` (shared with the in-process funnel)."""

from ensemble.triton_models import SimilarModel as TritonPythonModel

__all__ = ["TritonPythonModel"]
