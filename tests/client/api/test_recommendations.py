"""GET /api/v1/recommendations and /api/v1/similar against real Triton and Redis."""

import pytest

pytestmark = [pytest.mark.triton, pytest.mark.redis]


def get(api, user, **params):
    return api.get(f"/api/v1/recommendations/{user}", params=params)


def test_personalized_list_for_a_known_user(api, known_user, items):
    user, history = known_user
    response = get(api, user, limit=7)
    assert response.status_code == 200
    body = response.json()
    assert set(body) == {"recommendations", "experiment_id", "variant", "request_id", "degraded", "degraded_parts"}
    assert not body["degraded"] and body["degraded_parts"] == [] and len(body["request_id"]) == 32
    recs = body["recommendations"]
    assert len(recs) == 7 and all(set(r) == {"item_id", "score", "reason", "model_version"} for r in recs)
    seen = {items[i - 2] for i in history}
    assert not {r["item_id"] for r in recs} & seen  # raw ids out, nothing already seen
    assert all(r["reason"] for r in recs)
    # One slot (position 3) belongs to the new-item bandit; the rest come from the models.
    assert [r["model_version"] for r in recs].count("bandit-thompson") == 1
    assert recs[3]["reason"] == "new arrival" and recs[3]["model_version"] == "bandit-thompson"
    assert all(r["model_version"].startswith("sasrec-") for i, r in enumerate(recs) if i != 3)


def test_exclude_category_and_product_page(api, known_user, items, categories):
    user, _ = known_user
    first = [r["item_id"] for r in get(api, user, limit=10).json()["recommendations"]]
    again = get(api, user, limit=10, exclude=",".join(first[:3])).json()["recommendations"]
    assert not {r["item_id"] for r in again} & set(first[:3])
    repeated = get(api, user, limit=10, exclude=[first[0], first[1]]).json()["recommendations"]
    assert not {r["item_id"] for r in repeated} & set(first[:2])
    on_page = get(api, user, limit=10, context="product_page", item_id=first[0]).json()["recommendations"]
    assert first[0] not in {r["item_id"] for r in on_page}
    category = categories[first[0]]  # a category with items the user has not seen
    in_category = get(api, user, limit=5, category=category).json()["recommendations"]
    assert len(in_category) == 5 and {categories[r["item_id"]] for r in in_category} == {category}
    assert get(api, user, category="no/such").status_code == 422


def test_a_new_user_gets_trending_then_personal_after_events(api, items):
    cold = get(api, "brand-new-user", limit=5, context="homepage").json()
    assert cold["degraded"] is False and len(cold["recommendations"]) == 5
    assert all(r["reason"] == "popular right now" or r["reason"].startswith("trending")
               for r in cold["recommendations"])
    posted = items[10:13]
    assert api.post("/api/v1/events", json=[{"user_id": "brand-new-user", "item_id": i, "event_type": "view"}
                                             for i in posted]).status_code == 200
    warm = get(api, "brand-new-user", limit=10).json()["recommendations"]
    assert not {r["item_id"] for r in warm} & set(posted)
    assert any(r["reason"].startswith(("because you viewed", "customers who viewed")) for r in warm)


def test_session_shifts_with_posted_events(api, known_user, items):
    user, history = known_user
    before = [r["item_id"] for r in get(api, user, limit=10).json()["recommendations"]]
    fresh = [i for i in items[200:260] if i not in before][:8]
    for item in fresh:
        assert api.post("/api/v1/events", json={"user_id": user, "item_id": item, "event_type": "click"}
                        ).status_code == 200
    after = [r["item_id"] for r in get(api, user, limit=10).json()["recommendations"]]
    assert after != before and not set(after) & set(fresh)


def test_trending_and_similar_types(api, items):
    trending = get(api, "u", type="trending", limit=4).json()
    assert len(trending["recommendations"]) == 4 and not trending["degraded"]
    similar = get(api, "u", type="similar", item_id=items[5], limit=3).json()["recommendations"]
    assert len(similar) == 3 and items[5] not in {r["item_id"] for r in similar}
    for kind in ("similar", "also_viewed", "bought_together"):
        response = api.get(f"/api/v1/similar/{items[5]}", params={"limit": 4, "kind": kind})
        assert response.status_code == 200 and len(response.json()["recommendations"]) == 4


@pytest.mark.parametrize(("path", "params", "status", "message"), [
    ("/api/v1/recommendations/u1", {"limit": 0}, 422, ""),
    ("/api/v1/recommendations/u1", {"limit": 101}, 422, "less than or equal to 100"),
    ("/api/v1/recommendations/u1", {"type": "best"}, 422, ""),
    ("/api/v1/recommendations/u1", {"context": "checkout"}, 422, ""),
    ("/api/v1/recommendations/u1", {"type": "similar"}, 422, "needs item_id"),
    ("/api/v1/recommendations/u1", {"type": "similar", "item_id": "nope"}, 404, "unknown item_id 'nope'"),
    ("/api/v1/recommendations/u1", {"context": "product_page", "item_id": "nope"}, 404, "unknown item_id"),
    ("/api/v1/similar/nope", {}, 404, "unknown item_id 'nope'"),
    ("/api/v1/similar/x", {"kind": "hated_together"}, 422, ""),
])
def test_bad_requests_are_explained(api, path, params, status, message):
    response = api.get(path, params=params)
    assert response.status_code == status
    assert message in response.text


def test_trending_rises_with_posted_events(api, items):
    before = [r["item_id"] for r in get(api, "anyone", type="trending", limit=5).json()["recommendations"]]
    rising = next(i for i in items[100:] if i not in before)
    api.post("/api/v1/events", json=[{"user_id": f"shopper{k}", "item_id": rising, "event_type": "purchase"}
                                     for k in range(20)])
    after = get(api, "anyone", type="trending", limit=5).json()["recommendations"]
    assert rising in [r["item_id"] for r in after[:2]]  # as hot as the top built-in trending item
