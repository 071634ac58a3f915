"""The new-item bandit through the API, and the experiment report from what Redis logged."""

import json
from collections import Counter

import pytest
import redis
from recstack.client.core.shop import Shop

from recstack.cli import main

from .conftest import make_api, write_experiments

pytestmark = [pytest.mark.triton, pytest.mark.redis]


def test_new_items_get_a_slot_and_the_bandit_learns_from_clicks(api, trained_shop, known_user, flush_redis):
    shop = Shop.load(trained_shop[0])
    new = {shop.item_ids[i] for i in shop.new_items(14.0)}
    assert len(new) >= 2
    user = known_user[0]
    first = api.get(f"/api/v1/recommendations/{user}", params={"limit": 8}).json()["recommendations"]
    explored = [r for r in first if r["reason"] == "new arrival" and r["model_version"] == "bandit-thompson"]
    assert len(explored) == 1 and explored[0]["item_id"] in new
    favourite = sorted(new)[0]
    clicks = [{"user_id": f"fan{i}", "item_id": favourite, "event_type": "click"} for i in range(60)]
    assert api.post("/api/v1/events", json=clicks).json()["accepted"] == 60
    store = redis.Redis.from_url(flush_redis, decode_responses=True)
    assert store.hget("recstack:bandit:rewards", favourite) == "60"
    picks = Counter()
    for _ in range(30):
        recs = api.get(f"/api/v1/recommendations/{user}", params={"limit": 8}).json()["recommendations"]
        picks.update(r["item_id"] for r in recs if r["model_version"] == "bandit-thompson")
    assert picks.most_common(1)[0][0] == favourite
    assert int(store.hget("recstack:bandit:shows", favourite)) >= picks[favourite]
    short = api.get(f"/api/v1/recommendations/{user}", params={"limit": 3}).json()["recommendations"]
    assert "bandit-thompson" not in {r["model_version"] for r in short}  # the slot is position 3 or nothing


def test_report_reads_exposures_and_events_from_redis(trained_shop, triton_server, flush_redis, known_user,
                                                     tmp_path, capsys):
    path = write_experiments(tmp_path / "e.json", [{"id": "e1", "variants": [
        {"name": "control"}, {"name": "popular", "source": "popular"}]}])
    with make_api(trained_shop, triton_server.grpc_url, flush_redis, experiments_file=path) as api:
        served = {}
        for user in [f"r{i}" for i in range(12)]:
            api.post("/api/v1/events", json={"user_id": user, "item_id": "i0000148", "event_type": "view"})
            served[user] = api.get(f"/api/v1/recommendations/{user}", params={"limit": 4}).json()
        clicker = "r0"
        api.post("/api/v1/events", json={"user_id": clicker, "event_type": "purchase",
                                          "item_id": served[clicker]["recommendations"][0]["item_id"]})
    assert main(["report", "--redis-url", flush_redis, "--json"]) == 0
    report = json.loads(capsys.readouterr().out)
    rows = {r["variant"]: r for r in report["variants"]}
    assert sum(r["lists"] for r in rows.values()) == 12
    assert rows[served[clicker]["variant"]]["converted"] == 1 and rows[served[clicker]["variant"]]["clicked"] == 1
