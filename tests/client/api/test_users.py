"""Deleting a user: gone from every store recstack keeps, as a scan of every Redis key and every file of the build
folder shows; kept out of the next build by the tombstone list."""

import shutil

import polars as pl
import pytest
import redis
from recstack.client.scoring import score_users

from .conftest import make_api

pytestmark = [pytest.mark.triton, pytest.mark.redis]


def redis_texts(url: str) -> list[str]:
    """Every key of the store with everything it holds, as text."""
    store = redis.Redis.from_url(url, decode_responses=True)
    texts = []
    for key in store.scan_iter("*"):
        kind = store.type(key)
        value = {"string": lambda k: store.get(k), "list": lambda k: store.lrange(k, 0, -1),
                 "hash": store.hgetall, "set": store.smembers, "zset": lambda k: store.zrange(k, 0, -1),
                 "stream": lambda k: store.xrange(k)}[kind](key)
        texts.append(f"{key} {value}")
    return texts


def file_texts(root) -> dict[str, str]:
    """Every file under ``root``: its bytes, and parquet tables decoded (a compressed column hides a string)."""
    texts = {}
    for path in root.rglob("*"):
        if path.is_file():
            text = path.read_bytes().decode("latin-1")
            if path.suffix == ".parquet":
                text += repr(pl.read_parquet(path).rows())
            texts[str(path.relative_to(root))] = text
    return texts


def test_a_deleted_user_is_found_nowhere(trained_shop, model_repository, triton_server, flush_redis, known_user,
                                         items, tmp_path):
    user, _ = known_user
    build = tmp_path / "build"
    data = build / "data" / "shop"
    shutil.copytree(trained_shop[0], data)
    everyone = pl.read_parquet(data / "eval_test.parquet")["user_id"].to_list()
    other = next(u for u in everyone if u != user)
    score_users(data, build / "scores", k=5, repository=model_repository, users=[user, other], progress=False)
    with make_api(trained_shop, triton_server.grpc_url, flush_redis, data_dir=data, build_dir=build) as api:
        assert api.post("/api/v1/events", json=[{"user_id": user, "item_id": items[0], "event_type": "click"},
                                                {"user_id": other, "item_id": items[1], "event_type": "view"}]
                        ).status_code == 200
        assert api.get(f"/api/v1/recommendations/{user}").status_code == 200  # an exposure naming the user
        assert any(user in text for text in redis_texts(flush_redis))
        assert any(user in text for text in file_texts(build).values())

        response = api.delete(f"/api/v1/users/{user}")
        assert response.status_code == 200, response.text
        removed = response.json()
        assert removed["tombstoned"] == 1
        assert removed["store"][user] == {"session": 1, "events": 1, "exposures": 1}
        assert removed["prepared_data"]["data/shop"] > 0 and removed["scores"]["scores"] == 5
        assert str(tmp_path) not in response.text  # folders relative to the build folder, never host paths

        assert not [text for text in redis_texts(flush_redis) if user in text]
        assert not [name for name, text in file_texts(build).items() if user in text]
        # Nobody else lost anything, and the deleted user is a stranger now.
        assert pl.read_parquet(build / "scores" / "recommendations.parquet")["user_id"].unique().to_list() == [other]
        assert other in pl.read_parquet(data / "eval_test.parquet")["user_id"].to_list()
        assert api.app.state.recommender.shop.histories.get(user) is None
        again = api.delete(f"/api/v1/users/{user}").json()  # idempotent
        assert again["tombstoned"] == 0 and again["store"][user] == {"session": 0, "events": 0, "exposures": 0}


def test_other_facade_processes_forget_the_user_through_the_tombstone_list(trained_shop, triton_server, known_user,
                                                                           tmp_path):
    user, _ = known_user
    with (make_api(trained_shop, triton_server.grpc_url, None, build_dir=tmp_path, keys_refresh_s=0.0) as first,
          make_api(trained_shop, triton_server.grpc_url, None, build_dir=tmp_path, keys_refresh_s=0.0) as second):
        before = second.get(f"/api/v1/recommendations/{user}", params={"limit": 5}).json()
        assert before["recommendations"][0]["model_version"] != "fallback-popular"
        assert first.delete(f"/api/v1/users/{user}").status_code == 200
        after = second.get(f"/api/v1/recommendations/{user}", params={"limit": 5}).json()
        stranger = second.get("/api/v1/recommendations/never-seen", params={"limit": 5}).json()
        assert [r["item_id"] for r in after["recommendations"]] == [r["item_id"] for r in stranger["recommendations"]]
