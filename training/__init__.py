"""Training stage: sequential ranker, two-tower retrieval, baselines, full-ranking evaluation, ONNX export.

Reads a preprocessed dataset folder (layout in ``preprocessing/pipeline.py``) and writes models,
metrics and ONNX files under ``build/models/<dataset>/``.
"""
