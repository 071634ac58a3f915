"""Dependency aliases of the routes."""

from __future__ import annotations

from typing import Annotated

from fastapi import Depends, Request
from recstack.client.core.metrics import Metrics
from recstack.client.core.recommender import Recommender


def get_recommender(request: Request) -> Recommender:
    return request.app.state.recommender


def get_metrics(request: Request) -> Metrics:
    return request.app.state.metrics


RecommenderDep = Annotated[Recommender, Depends(get_recommender)]
MetricsDep = Annotated[Metrics, Depends(get_metrics)]
