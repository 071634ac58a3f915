"""Drift (client/core/drift.py): the Jensen–Shannon divergence and its sampling floor, the sliding window, and
what the monitor publishes per model version."""

import math

import numpy as np
import pytest
from recstack.client.core.bandit import EXPLORATION_VERSION
from recstack.client.core.drift import (
    NO_VERSION,
    DriftMonitor,
    Novelty,
    SlidingWindow,
    js_divergence,
    sampling_floor,
    served_version,
)
from recstack.client.core.metrics import Metrics
from recstack.client.recommendation import Recommendation
from scipy.spatial.distance import jensenshannon

# A long-tailed training popularity over 2,000 items (index 0 and 1: padding and OOV, never trained).
TRAINED = np.concatenate([[0, 0], np.round(1e4 / np.arange(1, 2001) ** 1.1)])


def test_js_divergence_is_scipys_in_bits_and_bounded():
    rng = np.random.default_rng(0)
    for _ in range(20):
        p, q = rng.random(50) * (rng.random(50) < 0.7), rng.random(50)
        assert js_divergence(p, q) == pytest.approx(jensenshannon(p, q, base=2) ** 2, abs=1e-12)
        assert js_divergence(p, q) == pytest.approx(js_divergence(q, p))
    assert js_divergence([5, 3, 0], [10, 6]) == 0.0  # counts are normalised; the shorter is padded
    assert js_divergence([1, 0], [0, 1]) == 1.0
    # Events on items added after training (past the end of its vector) are all divergence.
    assert js_divergence([0, 0, 4], [3, 1]) == 1.0
    assert math.isnan(js_divergence([0, 0], [1, 1])) and math.isnan(js_divergence([1], []))


def test_the_floor_is_what_a_window_drawn_from_training_shows():
    rng = np.random.default_rng(1)
    p = TRAINED / TRAINED.sum()
    for n in (50, 500, 5000):
        observed = [js_divergence(rng.multinomial(n, p), TRAINED) for _ in range(40)]
        floor = sampling_floor(TRAINED, n)
        assert floor == pytest.approx(np.mean(observed), rel=0.1)
        assert np.quantile(observed, 0.95) < 1.25 * floor  # noise stays close to the floor, whatever n
    floors = [sampling_floor(TRAINED, n) for n in (10, 100, 1000, 10_000, 100_000)]
    assert floors == sorted(floors, reverse=True) and floors[0] > 0.5 and floors[-1] < 0.01
    # Many events: the chi-square limit, (support - 1) / (8 n ln 2) bits.
    assert floors[-1] == pytest.approx((np.count_nonzero(TRAINED) - 1) / (8 * 100_000 * math.log(2)), rel=0.15)
    assert sampling_floor(TRAINED, 300) == sampling_floor(TRAINED, 300)  # seeded: no flicker between refreshes
    assert math.isnan(sampling_floor(TRAINED, 0))


def test_a_shift_in_popularity_rises_above_the_floor_where_noise_does_not():
    rng = np.random.default_rng(2)
    n = 2000
    p = TRAINED / TRAINED.sum()
    same = js_divergence(rng.multinomial(n, p), TRAINED)
    shifted = js_divergence(rng.multinomial(n, np.roll(p, 50)), TRAINED)  # the head moved to other items
    floor = sampling_floor(TRAINED, n)
    assert same < 1.25 * floor < shifted / 3


def test_the_sliding_window_forgets_whole_steps():
    window = SlidingWindow(100, steps=10)
    window.add([1, 1, 2], now=0.0)
    window.add([2], now=55.0)
    assert window.counts(now=99.0) == {1: 2, 2: 2}
    assert window.counts(now=115.0) == {2: 1}  # the first step (0..10 s) is out of the last 100 s
    window.add([3], now=116.0)
    assert window.counts(now=116.0) == {2: 1, 3: 1}
    assert window.counts(now=1000.0) == {} and not window.buckets


def test_novelty_names_untrained_items_and_users():
    monitor = DriftMonitor(np.array([0, 0, 5, 0, 7]), Metrics(), 3600, 60)
    assert monitor.novelty(True, 2, [2, 4]) == Novelty(unknown_user=False, unknown_items=False)
    assert monitor.novelty(True, 1, [3]).unknown_items  # in the catalog, never in training
    assert monitor.novelty(True, 1, [5]).unknown_items  # added through the API since
    assert monitor.novelty(True, 2, [2]).unknown_items  # an id this process does not know (a newer catalog)
    assert monitor.novelty(False, 0, []) == Novelty(unknown_user=True, unknown_items=False)


def test_served_version_skips_the_bandits_slot():
    def item(version):
        return Recommendation(item_id="i", score=1.0, reason="r", model_version=version)

    assert served_version([item(EXPLORATION_VERSION), item("m1")]) == "m1"
    assert served_version([item(EXPLORATION_VERSION)]) == served_version([]) == NO_VERSION


def test_the_monitor_publishes_per_version_and_drops_versions_that_stopped_serving():
    metrics = Metrics()
    monitor = DriftMonitor(TRAINED, metrics, window_s=600, interval_s=60)

    def value(name, version):
        return metrics.registry.get_sample_value(name, {"model_version": version})

    for i in range(4):
        monitor.request("m1", Novelty(unknown_user=i == 0, unknown_items=i < 2), now=10.0)
    monitor.request("m2", Novelty(unknown_user=False, unknown_items=False), now=10.0)
    monitor.accepted(list(np.random.default_rng(3).choice(len(TRAINED), 1000, p=TRAINED / TRAINED.sum())), now=10.0)
    monitor.accepted([len(TRAINED) + 5] * 10, now=10.0)  # an item added since
    reading = monitor.refresh(now=20.0)
    assert value("recstack_drift_requests_total", "m1") == 4
    assert value("recstack_drift_unknown_item_requests_total", "m1") == 2
    assert value("recstack_drift_unknown_user_requests_total", "m1") == 1
    assert value("recstack_drift_unknown_item_share", "m1") == 0.5
    assert value("recstack_drift_unknown_user_share", "m1") == 0.25
    assert value("recstack_drift_unknown_item_share", "m2") == 0.0
    assert value("recstack_drift_window_events", "m2") == 1010
    js, floor = value("recstack_drift_popularity_js", "m1"), value("recstack_drift_popularity_js_floor", "m1")
    assert (js, floor) == (reading["js_divergence"], reading["js_floor"]) and 0 < floor < js < 1.5 * floor + 0.01
    assert [row["model_version"] for row in reading["versions"]] == ["m1", "m2"]

    monitor.request("m2", Novelty(unknown_user=True, unknown_items=False), now=700.0)
    reading = monitor.refresh(now=700.0)  # m1 served nothing in the last 600 s; the events are gone too
    assert value("recstack_drift_popularity_js", "m1") is None and value("recstack_drift_unknown_item_share",
                                                                          "m1") is None
    assert value("recstack_drift_requests_total", "m1") == 4  # counters stay: Prometheus computes the rates
    assert value("recstack_drift_unknown_user_share", "m2") == 1.0
    assert value("recstack_drift_window_events", "m2") == 0 and math.isnan(value("recstack_drift_popularity_js",
                                                                                "m2"))
    assert reading["js_divergence"] is None and reading["events"] == 0

    reading = monitor.refresh(now=2000.0)  # nobody asked within the window: the last version keeps its gauges
    assert [row["model_version"] for row in reading["versions"]] == ["m2"]
    assert reading["versions"][0]["unknown_user_share"] is None
