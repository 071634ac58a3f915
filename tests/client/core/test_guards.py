"""The guard around engine calls: an open circuit is probed for readiness and recovers as soon as the engine is
ready, not after the rest of the open period."""

import asyncio

import pytest
from recstack.client.core.config import FacadeConfig
from recstack.client.core.guards import GuardedEngine, TritonUnavailable
from recstack.client.core.metrics import Metrics


class Engine:
    def __init__(self):
        self.up = False

    async def recommend(self):
        if not self.up:
            raise ConnectionError("down")
        return "answer"

    async def ready(self):
        return self.up


def test_an_open_circuit_lets_a_trial_through_as_soon_as_the_engine_is_ready():
    engine = Engine()
    guarded = GuardedEngine(engine, FacadeConfig(breaker_failures=1, breaker_reset_s=60, breaker_probe_s=0.01,
                                                 timeout_ms=50), Metrics())

    async def scenario():
        with pytest.raises(TritonUnavailable):
            await guarded.call("recommend", lambda e: e.recommend())
        await asyncio.sleep(0.05)
        still_open = guarded.breaker.state
        engine.up = True
        await asyncio.sleep(0.05)
        answer = await guarded.call("recommend", lambda e: e.recommend())
        return still_open, answer, guarded.breaker.state, guarded.probe.done()

    assert asyncio.run(scenario()) == ("open", "answer", "closed", True)
