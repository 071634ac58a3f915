"""Preprocessing stage: raw interaction logs and item metadata in, model features and sequences out.

See :mod:`preprocessing.pipeline` for the output layout and :mod:`preprocessing.workflow` for the
fit/transform workflow.
"""
