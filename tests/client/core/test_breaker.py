import pytest
from recstack.client.core.breaker import CircuitBreaker


class Clock:
    def __init__(self):
        self.now = 0.0

    def __call__(self):
        return self.now


def test_opens_after_consecutive_failures_and_recovers_through_one_trial():
    clock = Clock()
    breaker = CircuitBreaker(failures=2, reset_s=5, clock=clock)
    breaker.record(False)
    assert breaker.allow() and breaker.state == "closed"
    breaker.record(False)
    assert breaker.state == "open" and not breaker.allow()
    clock.now = 5.0
    assert breaker.allow() and not breaker.allow()  # one trial at a time
    breaker.record(False)  # the trial failed: open again
    assert breaker.state == "open"
    clock.now = 10.0
    assert breaker.allow()
    breaker.record(True)
    assert breaker.state == "closed" and breaker.allow()


def test_a_success_resets_the_count():
    breaker = CircuitBreaker(failures=2, reset_s=1)
    breaker.record(False)
    breaker.record(True)
    breaker.record(False)
    assert breaker.state == "closed"


def test_settings_are_checked():
    with pytest.raises(ValueError):
        CircuitBreaker(failures=0)


def test_a_released_trial_lets_the_next_call_try():
    clock = Clock()
    breaker = CircuitBreaker(failures=1, reset_s=1, clock=clock)
    breaker.record(False)
    clock.now = 1.0
    assert breaker.allow() and not breaker.allow()
    breaker.release()  # the trial was cancelled: no verdict
    assert breaker.allow()


def test_half_open_ends_the_open_period_now():
    clock = Clock()
    breaker = CircuitBreaker(failures=1, reset_s=60, clock=clock)
    breaker.half_open()  # closed: nothing to end
    assert breaker.state == "closed"
    breaker.record(False)
    clock.now = 1.0
    breaker.half_open()
    assert breaker.state == "half-open" and breaker.allow() and not breaker.allow()
