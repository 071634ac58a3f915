"""The closed loop end to end on a real Triton and a real Redis: events posted through the facade for an item
added through the API → ``recstack loop --once`` → a new model version that retrieves and ranks the item; a
candidate made worse on purpose is refused by the gate while the old version keeps serving."""

import json
import os
import signal
import subprocess
import sys
import threading
from datetime import UTC, datetime, timedelta

import polars as pl
import pytest
from recstack.ensemble.build import build_repository
from recstack.ensemble.server import TritonServer
from recstack.preprocessing.lake import LAKE_NAME, EventLake

from recstack.loop import run_loop
from recstack.retrain import RetrainError
from recstack.settings import Settings
from recstack.versions import JOURNAL_NAME, VERSIONS_NAME
from tests.client.api.conftest import make_api

NEW_ITEM = "sku-fresh-1"
NEW_USERS = 60


def recstack(args: list[str], build_dir, redis_url: str, **env) -> subprocess.CompletedProcess:
    environment = {**os.environ, "RECSTACK_BUILD_DIR": str(build_dir), "RECSTACK_FACADE__REDIS_URL": redis_url,
                   **{f"RECSTACK_{name.upper()}": str(value) for name, value in env.items()}}
    return subprocess.run([sys.executable, "-m", "recstack", *args], env=environment, capture_output=True,
                          text=True, timeout=900)


def served(api, user: str) -> tuple[list[str], set[str]]:
    body = api.get(f"/api/v1/recommendations/{user}", params={"limit": 10}).json()
    assert body["degraded"] is False, body
    return [r["item_id"] for r in body["recommendations"]], {r["model_version"] for r in body["recommendations"]}


def post_sequences(api, users: list[str], items: list[list[str]], start: datetime) -> None:
    events = [{"user_id": user, "item_id": item, "event_type": "click",
               "timestamp": (start + timedelta(minutes=i)).isoformat()}
              for user, sequence in zip(users, items, strict=True) for i, item in enumerate(sequence)]
    response = api.post("/api/v1/events", json=events)
    assert response.status_code == 200 and response.json()["accepted"] == len(events), response.text


@pytest.mark.triton
@pytest.mark.redis
def test_loop_learns_a_new_item_and_the_gate_refuses_a_worse_candidate(trained_shop, flush_redis, tmp_path):
    data, models = trained_shop
    build_dir = tmp_path / "build"
    repository = build_dir / "model_repository"
    build_repository(data, models, repository, verbose=False)
    items = pl.read_parquet(data / "items.parquet").filter(pl.col("item_idx") >= 2).sort("item_idx")
    anchor, others = items["item_id"][0], items["item_id"][50:50 + NEW_USERS].to_list()
    server = TritonServer(repository).start()
    try:
        with make_api(trained_shop, server.grpc_url, flush_redis, ingest_file=build_dir / "ingest" /
                      "new_items.jsonl", exploration_slots=0) as api:  # the models alone place the item
            assert api.post("/api/v1/items", json={"item_id": NEW_ITEM, "title": "Fresh Thing",
                                                   "price": 9.5}).json()["accepted"] == 1
            _, before = served(api, "probe")
            # New users who go from the anchor to the new item: a pattern only a model trained on them knows.
            users = [f"fresh-{i}" for i in range(NEW_USERS)]
            now = datetime.now(UTC) - timedelta(hours=1)
            post_sequences(api, users, [[other, anchor, NEW_ITEM, anchor, NEW_ITEM] for other in others], now)

            loop = recstack(["loop", "--once", "--reload", server.http_url], build_dir, flush_redis)
            assert loop.returncode == 0, loop.stderr
            for name in ("ingest", "retrain", "gate", "publish"):
                assert f"{name} done in" in loop.stderr, loop.stderr
            journal = [json.loads(line) for line in
                       (build_dir / VERSIONS_NAME / JOURNAL_NAME).read_text().splitlines()]
            assert [e["decision"] for e in journal] == ["initial", "published"]
            published = journal[-1]
            assert published["new_events"] == 5 * NEW_USERS and published["new_items"] == 1
            assert 0 < published["freshness_s"]["last_event"] < 900  # accepted → published, by the facade's clock

            post_sequences(api, ["probe"], [[anchor]], datetime.now(UTC))
            listed, after = served(api, "probe")
            assert after.isdisjoint(before) and all(v.endswith("/r2") for v in after), (before, after)
            assert NEW_ITEM in listed, listed

            # A candidate trained with a learning rate far too high, judged on every test user (the new events'
            # users all end on the same item, which even a broken model can rank first): refused, and version 2
            # keeps serving.
            post_sequences(api, users[:30], [[anchor, NEW_ITEM]] * 30, datetime.now(UTC))
            worse = recstack(["loop", "--once", "--reload", server.http_url], build_dir, flush_redis,
                             train__lr=50.0, retrain__epochs=3, gate__min_users=1_000_000)
            assert worse.returncode == 3, worse.stderr
            refused = json.loads((build_dir / VERSIONS_NAME / JOURNAL_NAME).read_text().splitlines()[-1])
            assert refused["decision"] == "refused" and refused["repository_version"] is None
            assert "is refused" in refused["reason"] and "is refused" in worse.stderr
            assert json.loads((repository / "repository.json").read_text())["version"] == 2
            _, still = served(api, "probe")
            assert still == after
    finally:
        server.stop()


def test_sigterm_lets_the_step_in_progress_finish_then_stops_the_loop(trained_shop, tmp_path):
    data, models = trained_shop
    build_dir = tmp_path / "build"
    build_repository(data, models, build_dir / "model_repository", verbose=False)
    users = pl.read_parquet(data / "eval_test.parquet")["user_id"].head(40).to_list()
    items = pl.read_parquet(data / "items.parquet").filter(pl.col("item_idx") >= 2)["item_id"].head(3).to_list()
    now = datetime.now(UTC)
    EventLake(build_dir / LAKE_NAME).write(
        [{"event_id": f"{user}-{i}", "user_id": user, "item_id": item, "event_type": "click",
          "timestamp": (now + timedelta(seconds=i)).isoformat()}
         for user in users for i, item in enumerate(items)], batch_name=f"{int(now.timestamp() * 1000)}-0")
    environment = {key: value for key, value in os.environ.items() if not key.startswith("RECSTACK_")}
    loop = subprocess.Popen([sys.executable, "-m", "recstack", "loop", "--every", "1h"], text=True,
                            env={**environment, "RECSTACK_BUILD_DIR": str(build_dir)}, stderr=subprocess.PIPE)
    log = []
    for line in loop.stderr:  # no facade Redis: the round starts with the event log as it is
        log.append(line)
        if "retrain ..." in line:
            loop.send_signal(signal.SIGTERM)
            break
    log += loop.stderr.readlines()
    assert loop.wait(600) == 0, "".join(log)
    text = "".join(log)
    assert "ingest skipped" in text and "retrain done in" in text and "round 1: stopped" in text, text
    assert "gate ..." not in text
    journal = [json.loads(line) for line in (build_dir / VERSIONS_NAME / JOURNAL_NAME).read_text().splitlines()]
    assert [e["decision"] for e in journal] == ["initial"]  # the stopped round decided nothing


def test_a_failed_round_is_logged_and_a_running_loop_goes_on(tmp_path, caplog):
    settings = Settings(build_dir=tmp_path)  # no model repository: every round fails
    stop = threading.Event()
    threading.Timer(0.5, stop.set).start()
    rounds = run_loop(settings, every_s=0.1, once=False, triton_url=None, full=False, canary=None, stop=stop)
    assert len(rounds) >= 2 and {r["outcome"] for r in rounds} == {"failed"}
    assert "no model repository" in caplog.text and "round 2 failed" in caplog.text
    with pytest.raises(RetrainError, match="no model repository"):  # one round alone reports its failure
        run_loop(settings, every_s=0.1, once=True, triton_url=None, full=False, canary=None,
                 stop=threading.Event())
