"""POST /api/v1/rank and /api/v1/search/rerank."""

import pytest

pytestmark = [pytest.mark.triton, pytest.mark.redis]


def test_category_page_is_ordered_by_the_ranker(api, known_user, items, funnel_scores):
    user, history = known_user
    page = items[40:52]
    response = api.post("/api/v1/rank", json={"user_id": user, "item_ids": page})
    assert response.status_code == 200
    body = response.json()
    ordered = [r["item_id"] for r in body["recommendations"]]
    assert sorted(ordered) == sorted(page) and not body["degraded"]
    scores = funnel_scores(history, [items.index(i) + 2 for i in page])
    expected = [page[i] for i in sorted(range(len(page)), key=lambda i: -scores[i])]
    assert ordered == expected
    assert {r["reason"] for r in body["recommendations"]} == {"ranked for you"}


def test_search_rerank_keeps_part_of_the_given_order(api, known_user, items):
    user, _ = known_user
    results = items[60:70]
    kept = api.post("/api/v1/search/rerank", json={"user_id": user, "item_ids": results, "keep_order_weight": 1.0})
    assert [r["item_id"] for r in kept.json()["recommendations"]] == results
    mixed = api.post("/api/v1/search/rerank", json={"user_id": user, "item_ids": results}).json()
    assert sorted(r["item_id"] for r in mixed["recommendations"]) == sorted(results)


def test_a_user_without_history_keeps_the_given_order(api, items):
    page = items[5:9]
    body = api.post("/api/v1/rank", json={"user_id": "stranger", "item_ids": page}).json()
    assert [r["item_id"] for r in body["recommendations"]] == page and body["degraded"] is False


@pytest.mark.parametrize(("body", "status"), [
    ({"user_id": "u1", "item_ids": []}, 422),
    ({"user_id": "u1", "item_ids": ["nope"]}, 404),
    ({"user_id": "u1"}, 422),
    ({"user_id": "u1", "item_ids": ["x"], "keep_order_weight": 2}, 422),
])
def test_bad_rank_requests(api, body, status):
    path = "/api/v1/search/rerank" if "keep_order_weight" in body else "/api/v1/rank"
    assert api.post(path, json=body).status_code == status
