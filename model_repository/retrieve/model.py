"""Triton python model `retrieve`: the code lives in `ensemble.triton_models` (shared with the in-process funnel)."""

from ensemble.triton_models import RetrieveModel as TritonPythonModel

__all__ = ["TritonPythonModel"]
