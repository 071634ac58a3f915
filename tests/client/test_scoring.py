"""Batch scoring: the three modes give the same lists; a killed run resumes without scoring anyone twice."""

import polars as pl
import pytest
from recstack.client.core.shop import Shop
from recstack.client.scoring import score_users


@pytest.fixture(scope="module")
def users(trained_shop) -> list[str]:
    return sorted(Shop.load(trained_shop[0]).histories)[:150]


@pytest.mark.triton
def test_in_process_and_triton_give_the_same_lists(trained_shop, model_repository, triton_server, users, tmp_path):
    data, _ = trained_shop
    exclude = ["i0000148"]
    local = score_users(data, tmp_path / "a", "in-process", 10, model_repository, users=users, exclude=exclude,
                        chunk_users=40, batch=16, progress=False)
    remote = score_users(data, tmp_path / "b", "triton", 10, triton_url=triton_server.grpc_url, users=users,
                         exclude=exclude, chunk_users=40, batch=16, progress=False)
    assert local["rows"] == remote["rows"] == 10 * len(users) and local["chunks"] == 4
    a = pl.read_parquet(tmp_path / "a" / "recommendations.parquet")
    b = pl.read_parquet(tmp_path / "b" / "recommendations.parquet")
    assert a.select("user_id", "rank", "item_id", "reason").equals(b.select("user_id", "rank", "item_id", "reason"))
    assert (a["score"] - b["score"]).abs().max() <= 1e-4
    shop = Shop.load(data)
    for user, items in a.group_by("user_id").agg("item_id").iter_rows():
        seen = {shop.item_ids[i] for i in shop.histories[user]}
        assert not set(items) & (seen | set(exclude)) and len(items) == 10
    assert pl.read_csv(tmp_path / "a" / "recommendations.csv").height == a.height
    assert a["reason"].str.len_chars().min() > 0


def test_a_killed_run_resumes_where_it_stopped(trained_shop, model_repository, users, tmp_path):
    data, _ = trained_shop
    whole = score_users(data, tmp_path / "whole", "batch", 5, model_repository, users=users, chunk_users=50,
                        progress=False)
    first = score_users(data, tmp_path / "run", "batch", 5, model_repository, users=users, chunk_users=50,
                        max_chunks=1, progress=False)
    assert first["chunks_done"] == 1 and "rows" not in first
    assert not (tmp_path / "run" / "recommendations.parquet").exists()
    rest = score_users(data, tmp_path / "run", "batch", 5, model_repository, users=users, chunk_users=50,
                       progress=False)
    assert rest["scored_now"] == len(users) - 50 and rest["chunks_done"] == 3
    resumed = pl.read_parquet(tmp_path / "run" / "recommendations.parquet")
    assert resumed.equals(pl.read_parquet(tmp_path / "whole" / "recommendations.parquet"))
    assert resumed["user_id"].n_unique() == len(users) and whole["rows"] == resumed.height
    with pytest.raises(ValueError, match="holds a run for other users"):
        score_users(data, tmp_path / "run", "batch", 7, model_repository, users=users, progress=False)
    with pytest.raises(ValueError, match="mode must be one of batch"):
        score_users(data, tmp_path / "other", "carrier-pigeon", 5, model_repository, users=users, progress=False)
    with pytest.raises(ValueError, match="not in"):
        score_users(data, tmp_path / "other", "batch", 5, model_repository, users=["nobody"], progress=False)
    with pytest.raises(ValueError, match="Dask workers run the batch mode"):
        score_users(data, tmp_path / "other", "in-process", 5, model_repository, users=users, workers=2,
                    progress=False)


def test_batch_mode_gives_the_in_process_lists(trained_shop, model_repository, users, tmp_path):
    data, _ = trained_shop
    exclude = ["i0000148", "i0000020"]
    online = score_users(data, tmp_path / "a", "in-process", 20, model_repository, users=users, exclude=exclude,
                         chunk_users=60, progress=False)
    batch = score_users(data, tmp_path / "b", "batch", 20, model_repository, users=users, exclude=exclude,
                        chunk_users=60, progress=False)
    assert batch["rows"] == online["rows"] == 20 * len(users) and batch["chunks"] == 3
    a = pl.read_parquet(tmp_path / "a" / "recommendations.parquet")
    b = pl.read_parquet(tmp_path / "b" / "recommendations.parquet")
    assert b.drop("score").equals(a.drop("score"))
    assert (a["score"] - b["score"]).abs().max() <= 1e-5
    assert sorted(p.name for p in (tmp_path / "b" / "parts").iterdir()) == [f"part-0000{n}.parquet" for n in range(3)]
