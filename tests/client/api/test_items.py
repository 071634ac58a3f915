"""New items through the API: known at once, then embedded and indexed by a new repository version that Triton
loads without a restart."""

import json
import shutil

import polars as pl
import pytest
from recstack.ensemble.build import build_repository
from recstack.ensemble.server import TritonServer

from .conftest import make_api

pytestmark = [pytest.mark.triton, pytest.mark.redis]

NEW = [{"item_id": "sku-new-1", "title": "Trail Bike Light Pro", "category": None, "brand": None, "price": 24.5},
       {"item_id": "sku-new-2", "title": "Mystery Box", "price": 3.0}]


def test_new_items_are_served_at_once_and_indexed_after_publishing(trained_shop, model_repository, flush_redis,
                                                                  known_user, categories, tmp_path):
    data, models = trained_shop
    repository = tmp_path / "repo"
    shutil.copytree(model_repository, repository)
    ingest = tmp_path / "ingest" / "new_items.jsonl"
    # A new variant of a known product: same category, brand and price, the same title with another suffix.
    source = pl.read_parquet(data / "items.parquet").filter(pl.col("item_idx") == 12).row(0, named=True)
    brands = pl.read_parquet(data / "workflow" / "vocab_brand.parquet")
    brand = brands.filter(pl.col("index") == source["brand_idx"])["raw"][0]
    category = categories[source["item_id"]]
    title = source["title"].rsplit(" ", 1)[0] + " Z999"
    items = [{**NEW[0], "title": title, "category": category, "brand": brand, "price": source["price"]}, NEW[1]]
    server = TritonServer(repository).start()
    try:
        with make_api(trained_shop, server.grpc_url, flush_redis, ingest_file=ingest) as api:
            response = api.post("/api/v1/items", json={"items": items + [{"item_id": "sku-new-1"},
                                                                         {"item_id": "x", "price": -1}]})
            assert response.status_code == 200
            body = response.json()
            assert body["accepted"] == 2 and [r["index"] for r in body["rejected"]] == [2, 3]
            reasons = [r["reason"] for r in body["rejected"]]
            assert "already in the catalog" in reasons[0] and "price" in reasons[1]
            assert [json.loads(line)["item_id"] for line in ingest.read_text().splitlines()] == ["sku-new-1",
                                                                                                 "sku-new-2"]
            # Known at once: events on it are accepted, and a history holding it is served by the old version.
            user = known_user[0]
            assert api.post("/api/v1/events", json={"user_id": user, "item_id": "sku-new-1",
                                                    "event_type": "click"}).json()["accepted"] == 1
            # Triton does not serve it yet: similar items fall back, without opening the circuit for everyone.
            for _ in range(4):
                early = api.get("/api/v1/similar/sku-new-1").json()
                assert early["degraded"] is True
            listed = api.get(f"/api/v1/recommendations/{user}", params={"limit": 10}).json()
            assert listed["degraded"] is False and "sku-new-1" not in [r["item_id"] for r in listed["recommendations"]]
            # Publishing: a new version with the items embedded by the item tower, loaded without a restart.
            report = build_repository(data, models, repository, new_items=ingest, verbose=False)
            assert report["version"] == 2 and report["ingested_items"] == 2
            server.reload_all()
            similar = api.get("/api/v1/similar/sku-new-1", params={"limit": 5}).json()
            assert similar["degraded"] is False and len(similar["recommendations"]) == 5
            assert all(r["reason"] == f"similar to {title}" for r in similar["recommendations"])
            # Placed by its content alone (no interactions yet): near the product it is a variant of.
            in_category = [categories.get(r["item_id"]) for r in similar["recommendations"]]
            assert in_category.count(category) >= 3, in_category
            trending = api.get("/api/v1/recommendations/someone", params={"type": "trending"}).json()
            assert trending["degraded"] is False
    finally:
        server.stop()
    # A restarted facade still knows the items added before.
    with make_api(trained_shop, "127.0.0.1:1", flush_redis, ingest_file=ingest, timeout_ms=50) as api:
        assert api.post("/api/v1/events", json={"user_id": "u", "item_id": "sku-new-2",
                                                "event_type": "view"}).json()["accepted"] == 1


@pytest.mark.parametrize(("body", "message"), [([], "no items"), ({"item_id": ""}, "no valid item"),
                                               ({"item_id": "a", "colour": "red"}, "no valid item")])
def test_bad_item_bodies(api, body, message):
    response = api.post("/api/v1/items", json=body)
    assert response.status_code == 422 and message in response.text


def test_item_text_is_kept_as_given_numbers_must_be_finite_and_answers_show_no_paths(api, tmp_path):
    hostile = {"item_id": "sku-xss", "title": "<script>alert(1)</script>", "price": 9.5}
    # JSON has no Infinity; Python's encoder writes it anyway, as the measured attack did: such a body is not JSON,
    # so all of it is refused and nothing is stored.
    for bad in (float("inf"), float("nan")):
        body = json.dumps([hostile, {"item_id": "sku-bad", "price": bad}])
        response = api.post("/api/v1/items", content=body, headers={"content-type": "application/json"})
        assert response.status_code == 422 and "finite" in response.json()["detail"], response.text
    ingest = api.app.state.config.ingest_file
    assert not ingest.exists() or not ingest.read_text()
    response = api.post("/api/v1/items", json=[hostile])
    assert response.status_code == 200 and response.json()["accepted"] == 1, response.text
    assert str(ingest) not in response.text and str(ingest.parent) not in response.text
    stored = [json.loads(line) for line in ingest.read_text().splitlines()]
    assert [{k: row[k] for k in hostile} for row in stored] == [hostile]  # stored as given
    assert "Infinity" not in ingest.read_text() and "NaN" not in ingest.read_text()
