"""The FastAPI facade (``recstack serve api``): recommendations, events, ranking, health and metrics."""
