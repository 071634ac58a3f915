"""Triton python model `retrieve`: its code is `recstack.ensemble.triton_models` (shared with the in-process funnel)."""

from recstack.ensemble.triton_models import RetrieveModel as TritonPythonModel

__all__ = ["TritonPythonModel"]
