"""The facade's services: catalog and id maps, session store, circuit breaker, experiments, recommender."""
