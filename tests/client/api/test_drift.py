"""Drift through the real app (the funnel in-process, a real Redis): requests with items and users the models
were not trained on, and a burst of events on a new item, read back from ``/metrics`` and the dashboard."""

import time
from collections import Counter

import polars as pl
import pytest
import redis
from prometheus_client.parser import text_string_to_metric_families
from recstack.client.core.bandit import EXPLORATION_VERSION
from recstack.client.core.sessions import KEY_PREFIX

from .conftest import make_api

pytestmark = pytest.mark.redis

NEW_ITEM = "sku-drift-1"
BURST = 200  # events on the new item: far above the sampling floor of a window this size


@pytest.fixture
def drift_api(trained_shop, model_repository, flush_redis):
    with make_api(trained_shop, "", flush_redis, engine="in-process", repository=model_repository,
                  drift_interval_s=0.1) as api:
        yield api


@pytest.fixture(scope="module")
def trained(trained_shop):
    """(users with training events, items with training events)."""
    data = trained_shop[0]
    users = pl.read_parquet(data / "sequences_train.parquet", columns=["user_id"])["user_id"].to_list()
    stats = pl.read_parquet(data / "item_stats.parquet").filter(pl.col("events") > 0)
    items = (pl.read_parquet(data / "items.parquet", columns=["item_idx", "item_id"])
             .join(stats, on="item_idx").sort("events", descending=True)["item_id"].to_list())
    return users, items


def drift_metrics(api) -> dict[tuple[str, str], float]:
    """(sample name, model version) -> value, for the drift samples of /metrics."""
    text = api.get("/metrics").text
    return {(s.name, s.labels["model_version"]): s.value for family in text_string_to_metric_families(text)
            for s in family.samples if s.name.startswith("recstack_drift_")}


def test_requests_with_unknown_items_and_users_and_a_popularity_shift_show_on_metrics(drift_api, trained,
                                                                                      flush_redis):
    api = drift_api
    users, items = trained
    expected = Counter()

    def ask(user, unknown_items, unknown_user):
        body = api.get(f"/api/v1/recommendations/{user}", params={"limit": 5}).json()
        version = next(r["model_version"] for r in body["recommendations"] if r["model_version"] !=
                       EXPLORATION_VERSION)
        expected[version, "requests"] += 1
        expected[version, "unknown_item"] += unknown_items
        expected[version, "unknown_user"] += unknown_user

    def post(events):
        assert api.post("/api/v1/events", json=events).json()["accepted"] == len(events)

    assert api.post("/api/v1/items", json={"items": [{"item_id": NEW_ITEM, "title": "Drift Lamp"}]}).status_code == 200
    ask(users[0], False, False)  # trained user, trained history
    post([{"user_id": users[1], "item_id": NEW_ITEM, "event_type": "view"}])
    ask(users[1], True, False)  # a live session holding an item added after training
    # An id only a facade with a newer catalog knows, in the shared session store: untrained as well.
    redis.Redis.from_url(flush_redis).rpush(f"{KEY_PREFIX}session:{users[2]}", "sku-from-a-newer-catalog")
    ask(users[2], True, False)
    ask("u_drift_never_seen", False, True)  # cold start
    post([{"user_id": "u_drift_new", "item_id": items[0], "event_type": "click"}])
    ask("u_drift_new", False, True)  # a new user on a trained item
    post([{"user_id": f"anon_drift_{i}", "item_id": NEW_ITEM, "event_type": "view"} for i in range(BURST)])
    events = BURST + 2

    versions = {version for version, _ in expected}
    deadline = time.monotonic() + 10  # the gauges are set every drift_interval_s, off the request path
    while {(values := drift_metrics(api)).get(("recstack_drift_window_events", v)) for v in versions} != {events}:
        assert time.monotonic() < deadline, f"the drift gauges were not refreshed: {values}"
        time.sleep(0.1)
    for version in versions:
        asked = expected[version, "requests"]
        assert values["recstack_drift_requests_total", version] == asked
        assert values["recstack_drift_unknown_item_requests_total", version] == expected[version, "unknown_item"]
        assert values["recstack_drift_unknown_user_requests_total", version] == expected[version, "unknown_user"]
        assert values["recstack_drift_unknown_item_share", version] == expected[version, "unknown_item"] / asked
        assert values["recstack_drift_unknown_user_share", version] == expected[version, "unknown_user"] / asked
        assert values["recstack_drift_window_events", version] == events
        # Almost every event of the window is on an item the models never saw: far above the noise of 202 events.
        js = values["recstack_drift_popularity_js", version]
        floor = values["recstack_drift_popularity_js_floor", version]
        assert 0 < floor < 0.9 < js <= 1

    board = api.get("/api/v1/dashboard").json()["drift"]
    assert board["events"] == events and board["js_divergence"] == pytest.approx(js)
    assert board["js_floor"] == pytest.approx(floor) and board["window_s"] == 3600
    assert {row["model_version"]: row["requests"] for row in board["versions"]} == \
        {version: expected[version, "requests"] for version in versions}
