"""Preprocessing stage: raw interaction logs and item metadata in, model features and sequences out.

See :mod:`recstack.preprocessing.pipeline` for the output layout and :mod:`recstack.preprocessing.workflow` for the
fit/transform workflow.
"""
