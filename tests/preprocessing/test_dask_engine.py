from pathlib import Path

import polars as pl
import pytest
from recstack.preprocessing.config import SplitConfig, WorkflowConfig
from recstack.preprocessing.datasets import SyntheticConfig, generate_synthetic, load_events_files
from recstack.preprocessing.pipeline import preprocess
from recstack.preprocessing.schema import InputError
from recstack.preprocessing.tombstones import digest

from tests.preprocessing.test_streaming import assert_same_outputs

pytest.importorskip("distributed", reason="the dask engine needs recstack[dask]")
from recstack.preprocessing.dask_engine import (  # noqa: E402
    dask_gpu_available,
    parquet_files,
    pieces,
    preprocess_dask,
    read_events,
)


def write_lake(events: pl.DataFrame, folder, replayed: int = 0) -> None:
    """``events`` as the event log lays them out (a part per day and batch, with event ids), the first
    ``replayed`` events of each day written a second time in a later part, as a batch re-read after a crash is."""
    logged = events.with_columns(pl.format("e{}", pl.int_range(pl.len())).alias("event_id"),
                                 pl.col("timestamp").dt.date().alias("date"))
    for (date,), day in logged.group_by("date", maintain_order=True):
        day = day.drop("date")
        out = folder / f"date={date.isoformat()}"
        out.mkdir(parents=True)
        half = day.height // 2
        day.head(half).write_parquet(out / "part-000001-0.parquet", row_group_size=500)
        day.tail(day.height - half).write_parquet(out / "part-000002-0.parquet", row_group_size=500)
        if replayed:
            day.head(replayed).write_parquet(out / "part-000003-0.parquet")


@pytest.fixture(scope="module")
def shop(tmp_path_factory):
    folder = tmp_path_factory.mktemp("dask-shop")
    data = generate_synthetic(SyntheticConfig(n_events=20_000, seed=5))
    # An impression (shown, not an interaction) is in the log but in neither engine's outputs.
    shown = data.events.head(3).with_columns(pl.lit("impression").alias("event_type"))
    write_lake(pl.concat([data.events, shown]), folder / "events", replayed=5)
    data.items.write_parquet(folder / "items.parquet")
    return folder, data


@pytest.mark.parametrize("split", [SplitConfig(), SplitConfig(strategy="temporal")], ids=lambda s: s.strategy)
def test_two_workers_give_the_polars_engine_s_outputs(split, shop, tmp_path):
    folder, data = shop
    files = (folder / "events", folder / "items.parquet")
    config = WorkflowConfig(min_item_count=2, min_user_count=2)  # OOV users and dropped events on OOV items
    gone = frozenset({digest(data.events["user_id"][0])})
    a = preprocess(load_events_files(*files), tmp_path / "a", config, split, engine="cpu", progress=False,
                   tombstones=gone)
    # Small partitions and chunks, so events of one user come from several partitions and chunks are many.
    b = preprocess_dask(*files, tmp_path / "b", config, split, workers=2, device="cpu", progress=False,
                        tombstones=gone, chunk_events=3_000, partition_rows=1_000)
    assert b.engine == "dask" and a.dropped["forgotten_users"] == 1
    assert_same_outputs(tmp_path / "a", tmp_path / "b", a, b)
    assert b.counts["train_users"] > 100 and not (tmp_path / "b" / ".dask").exists()


def test_a_folder_of_plain_parquet_files_and_a_single_file(shop, tmp_path):
    _, data = shop
    plain = tmp_path / "plain"
    plain.mkdir()
    data.events.head(8_000).write_parquet(plain / "a.parquet")
    data.events.slice(8_000).write_parquet(plain / "b.parquet")
    (plain / ".c.parquet.tmp").write_text("half written")
    data.events.head(20_000).write_parquet(tmp_path / "one.parquet", row_group_size=4_000)
    assert [p.name for p in parquet_files(plain)] == ["a.parquet", "b.parquet"]
    assert [[s.row_groups for s in piece] for piece in pieces([tmp_path / "one.parquet"], partition_rows=7_000)] == [
        [(0, 1)], [(2, 3)], [(4,)]]
    # Small files share a partition; each segment knows where its rows start in the input.
    (both,) = pieces(parquet_files(plain), partition_rows=data.events.height)
    assert [(Path(s.path).name, s.first_row) for s in both] == [("a.parquet", 0), ("b.parquet", 8_000)]
    whole = read_events(plain).compute()
    assert len(whole) == data.events.height
    assert sorted(whole["_row"].tolist()) == list(range(data.events.height))
    a = preprocess(load_events_files(tmp_path / "one.parquet"), tmp_path / "a", engine="cpu", progress=False)
    b = preprocess_dask(tmp_path / "one.parquet", None, tmp_path / "b", workers=1, device="cpu", progress=False,
                        chunk_events=50_000, partition_rows=5_000)
    assert_same_outputs(tmp_path / "a", tmp_path / "b", a, b)


def test_bad_inputs_are_named(shop, tmp_path):
    _, data = shop
    (tmp_path / "empty").mkdir()
    with pytest.raises(InputError, match="no parquet files in this folder"):
        preprocess_dask(tmp_path / "empty", None, tmp_path / "out", workers=1, device="cpu", progress=False)
    with pytest.raises(InputError, match="not found"):
        preprocess_dask(tmp_path / "nothing", None, tmp_path / "out", workers=1, device="cpu", progress=False)
    data.events.drop("timestamp").write_parquet(tmp_path / "no_time.parquet")
    with pytest.raises(InputError, match=r"no_time.parquet: missing column\(s\) \['timestamp'\]"):
        preprocess_dask(tmp_path / "no_time.parquet", None, tmp_path / "out", workers=1, device="cpu",
                        progress=False)
    data.events.head(0).write_parquet(tmp_path / "none.parquet")
    with pytest.raises(InputError, match="no events"):
        pieces([tmp_path / "none.parquet"])
    data.events.head(3).write_csv(tmp_path / "shop.csv")
    with pytest.raises(InputError, match="use the polars engine"):
        parquet_files(tmp_path / "shop.csv")


def test_a_bad_value_is_named_with_its_file_and_rows(shop, tmp_path):
    _, data = shop
    bad = data.events.head(4_000).with_columns(
        pl.when(pl.int_range(pl.len()) == 2_500).then(pl.lit("teleport")).otherwise(pl.col("event_type"))
        .alias("event_type"))
    bad.write_parquet(tmp_path / "bad.parquet", row_group_size=1_000)
    with pytest.raises(InputError, match=r"bad.parquet \(the rows from 2,001\): column 'event_type', row 501"):
        preprocess_dask(tmp_path / "bad.parquet", None, tmp_path / "out", workers=1, device="cpu",
                        progress=False, partition_rows=1_000)


@pytest.mark.gpu
def test_cudf_partitions_on_dask_cuda_workers_give_the_same_outputs(shop, tmp_path):
    if not dask_gpu_available():
        pytest.skip("needs dask-cudf, dask-cuda (recstack[gpu]) and a CUDA GPU")
    folder, _ = shop
    files = (folder / "events", folder / "items.parquet")
    a = preprocess(load_events_files(*files), tmp_path / "a", engine="cpu", progress=False)
    b = preprocess_dask(*files, tmp_path / "b", device="gpu", progress=False, chunk_events=5_000)
    assert b.engine == "dask-cudf"
    assert_same_outputs(tmp_path / "a", tmp_path / "b", a, b)
