import json
import shutil

import numpy as np
import onnx
import polars as pl
import pytest
from onnx import helper
from recstack.ensemble.build import BuildError, build_repository
from recstack.ensemble.funnel import Funnel
from recstack.ensemble.new_items import read_new_items
from recstack.preprocessing.vocabulary import OOV
from recstack.preprocessing.workflow import Workflow


def write_items(path, rows):
    path.write_text("".join(json.dumps(r) + "\n" for r in rows))
    return path


def test_ingest_files_are_read_in_order_without_duplicates(tmp_path):
    path = write_items(tmp_path / "n.jsonl", [{"item_id": "b", "price": 3}, {"item_id": "a", "title": "T"},
                                              {"item_id": "b", "price": 9}])
    frame = read_new_items(path)
    assert frame["item_id"].to_list() == ["b", "a"] and frame["price"].to_list() == [3.0, None]
    assert set(frame.columns) == {"item_id", "title", "category", "brand", "price", "created_at"}
    with pytest.raises(FileNotFoundError):
        read_new_items(tmp_path / "absent.jsonl")
    (tmp_path / "bad.csv").write_text("sku,title\n1,x\n")
    with pytest.raises(ValueError, match="item_id"):
        read_new_items(tmp_path / "bad.csv")


def test_new_items_are_encoded_with_the_fitted_vocabularies(trained_shop):
    data, _ = trained_shop
    workflow = Workflow.load(data / "workflow")
    known = pl.read_parquet(data / "workflow" / "vocab_category.parquet")["raw"][0]
    features = workflow.encode_new_items(pl.DataFrame({"item_id": ["n1", "n2"], "category": [known, "nope"],
                                                       "title": ["alpha zzzunknownzzz", None],
                                                       "price": [10.0, None]}), first_index=900)
    assert features["item_idx"].to_list() == [900, 901]
    assert features["category_idx"][0] >= 2 and features["category_idx"][1] == OOV
    assert features["price_bucket"][0] >= 1 and features["price_bucket"][1] == 0
    assert OOV in features["title_tokens"][0].to_list() and features["title_tokens"][1].to_list() == []


def test_build_appends_embedded_new_items_that_every_stage_serves(trained_shop, tmp_path):
    data, models = trained_shop
    items = pl.read_parquet(data / "items.parquet").sort("item_idx")
    path = write_items(tmp_path / "n.jsonl", [{"item_id": items["item_id"][5]},  # already known: skipped
                                              {"item_id": "fresh-1", "title": items["title"][7]}])
    report = build_repository(data, models, tmp_path / "repo", new_items=path, verbose=False)
    assert report["ingested_items"] == 1 and report["n_items"] == items.height + 1
    funnel = Funnel(tmp_path / "repo")
    index = items.height
    assert funnel.catalog.item_ids[index] == "fresh-1" and funnel.catalog.is_new[index]
    assert np.linalg.norm(funnel.catalog.vectors[index]) == pytest.approx(1.0, abs=1e-5)
    out = funnel.recommend_histories([[7, index]], limit=5)
    assert (out["item_idx"][0] >= 2).all() and index not in out["item_idx"][0]
    assert funnel.similar(index, 3)["item_idx"].shape == (1, 3)


def test_an_old_ranker_export_is_reported(trained_shop, tmp_path):
    data, models = trained_shop
    copy = tmp_path / "models"
    shutil.copytree(models, copy)
    # A ranker graph without the clamp: a bare Gather over a table as long as the catalog.
    table = helper.make_tensor("table", onnx.TensorProto.FLOAT, [3, 1], [0.0, 1.0, 2.0])
    node = helper.make_node("Gather", ["table", "candidates"], ["picked"])
    squeeze = helper.make_node("Squeeze", ["picked", "axes"], ["scores"])
    axes = helper.make_tensor("axes", onnx.TensorProto.INT64, [1], [2])
    graph = helper.make_graph([node, squeeze], "old", [
        helper.make_tensor_value_info("item_seq", onnx.TensorProto.INT64, ["b", "l"]),
        helper.make_tensor_value_info("candidates", onnx.TensorProto.INT64, ["b", "n"])],
        [helper.make_tensor_value_info("scores", onnx.TensorProto.FLOAT, ["b", "n"])], [table, axes])
    onnx.save(helper.make_model(graph, opset_imports=[helper.make_opsetid("", 18)], ir_version=10),
              copy / "onnx" / "sasrec" / "ranker.onnx")
    path = write_items(tmp_path / "n.jsonl", [{"item_id": "fresh-2"}])
    with pytest.raises(BuildError, match="export it again"):
        build_repository(data, copy, tmp_path / "repo", new_items=path, verbose=False)
