"""Serving stage: builds the Triton model repository and runs the retrieve -> rank -> re-rank funnel."""
