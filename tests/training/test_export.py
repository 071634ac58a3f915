import copy
import json

import numpy as np
import onnx
import pytest
import torch
from recstack.training.config import SASRecConfig
from recstack.training.export_sasrec import export_sasrec
from recstack.training.models.sasrec import SASRec
from recstack.training.onnx_tools import ParityError, check_parity, export_onnx, onnx_latency, onnx_session
from torch import nn

WINDOW, N_ITEMS, HIDDEN = 12, 60, 16


class Scores(nn.Module):
    """The reference the ranker graph must reproduce, written here rather than taken from the exporter."""

    def __init__(self, model: SASRec):
        super().__init__()
        self.model = model

    def forward(self, item_seq, candidates):
        return self.model.score_candidates(item_seq[:, -WINDOW:], candidates)


def left_padded(rng, batch, length, filled_max):
    seq = np.zeros((batch, length), dtype=np.int64)
    for row in range(batch):
        filled = rng.integers(0, min(filled_max, length) + 1)
        seq[row, length - filled:] = rng.integers(2, N_ITEMS, filled)
    return seq


@pytest.fixture(scope="module")
def exported(tmp_path_factory):
    torch.manual_seed(0)
    model = SASRec(N_ITEMS, SASRecConfig(max_length=WINDOW, hidden=HIDDEN, blocks=2, heads=2, dropout=0.3)).eval()
    rng = np.random.default_rng(1)
    real = [rng.integers(2, N_ITEMS, rng.integers(1, 30)) for _ in range(80)]
    out = tmp_path_factory.mktemp("onnx")
    manifest = export_sasrec(model, out, real, n_checks=3, latency_repeats=3, extra={"version": "sasrec-test"},
                             verbose=False)
    return model, out, manifest


@pytest.mark.parametrize(("batch", "length", "n_candidates", "filled_max"),
                         [(1, 1, 1, 1), (5, 4, 2, 2), (64, WINDOW, 37, 2), (9, WINDOW, 250, WINDOW),
                          (3, WINDOW + 8, 6, 20), (2, 7, 1, 0)])
def test_ranker_matches_pytorch_on_shapes_not_seen_at_export(exported, batch, length, n_candidates, filled_max):
    model, out, _ = exported
    rng = np.random.default_rng(batch * 1000 + length)
    inputs = {"item_seq": left_padded(rng, batch, length, filled_max),
              "candidates": rng.integers(2, N_ITEMS, (batch, n_candidates))}
    assert check_parity(Scores(model), out / "ranker.onnx", [inputs]) <= 1e-4
    # Beyond the window the newest items decide, as pad_left does in training.
    scores = onnx_session(out / "ranker.onnx").run(None, inputs)[0]
    with torch.no_grad():
        expected = model.score_candidates(torch.from_numpy(inputs["item_seq"][:, -WINDOW:]),
                                          torch.from_numpy(inputs["candidates"])).numpy()
    assert scores.shape == (batch, n_candidates) and np.abs(scores - expected).max() <= 1e-4


def test_the_served_graph_scores_only_the_last_position_and_matches_the_full_computation(exported):
    model, out, _ = exported
    rng = np.random.default_rng(7)
    seq = left_padded(rng, 32, WINDOW, WINDOW)
    candidates = rng.integers(2, N_ITEMS, (32, 40))
    scores = onnx_session(out / "ranker.onnx").run(None, {"item_seq": seq, "candidates": candidates})[0]
    with torch.no_grad():
        user = model.encode(torch.from_numpy(seq))[:, -1]  # every position through every block
        full = (model.item_embedding(torch.from_numpy(candidates)) * user.unsqueeze(1)).sum(-1).numpy()
    assert np.abs(scores - full).max() <= 1e-5
    # The last block's feed-forward runs once per user: its input has one row per user, not one per position.
    shapes = []
    hook = model.blocks[-1].ffn.register_forward_hook(lambda module, args, _: shapes.append(args[0].shape))
    try:
        with torch.no_grad():
            model(torch.from_numpy(seq))
    finally:
        hook.remove()
    assert shapes == [(32, 1, HIDDEN)]


def test_user_encoder_matches_the_model_forward(exported):
    model, out, _ = exported
    seq = left_padded(np.random.default_rng(5), 17, 6, 6)
    embedding = onnx_session(out / "user_encoder.onnx").run(None, {"item_seq": seq})[0]
    with torch.no_grad():
        expected = model(torch.from_numpy(seq)).numpy()
    assert embedding.shape == (17, HIDDEN) and np.abs(embedding - expected).max() <= 1e-4


def test_graphs_have_the_documented_names_dtypes_and_opset(exported):
    _, out, manifest = exported
    int64, float32 = onnx.TensorProto.INT64, onnx.TensorProto.FLOAT

    def signature(values):
        return [(v.name, v.type.tensor_type.elem_type,
                 [d.dim_param or d.dim_value for d in v.type.tensor_type.shape.dim]) for v in values]

    ranker = onnx.load(out / "ranker.onnx")
    assert signature(ranker.graph.input) == [("item_seq", int64, ["batch", "seq_len"]),
                                             ("candidates", int64, ["batch", "n_candidates"])]
    assert signature(ranker.graph.output) == [("scores", float32, ["batch", "n_candidates"])]
    encoder = onnx.load(out / "user_encoder.onnx")
    assert signature(encoder.graph.input) == [("item_seq", int64, ["batch", "seq_len"])]
    assert signature(encoder.graph.output) == [("user_embedding", float32, ["batch", HIDDEN])]
    for graph in (ranker, encoder):
        assert next(o.version for o in graph.opset_import if o.domain in ("", "ai.onnx")) >= 17
    assert manifest["opset"] >= 17
    assert manifest["graphs"]["ranker"]["outputs"] == [
        {"name": "scores", "dtype": "float32", "shape": ["batch", "n_candidates"]}]


def test_manifest_reports_parity_latency_and_the_callers_facts(exported):
    _, out, manifest = exported
    assert json.loads((out / "manifest.json").read_text()) == manifest
    assert manifest["version"] == "sasrec-test"
    assert manifest["files"] == {"ranker": ["ranker.onnx"], "user_encoder": ["user_encoder.onnx"]}
    for name in ("ranker", "user_encoder"):
        parity = manifest["parity"][name]
        assert 0 <= parity["max_abs_diff"] <= 1e-4 and "real_max_abs_diff" in parity
        for batch in ("batch_1", "batch_64"):
            assert manifest["latency_ms"][name][batch]["p50_ms"] > 0
            assert manifest["latency_ms"][name][batch]["mean_ms"] > 0


def test_parity_check_fails_against_a_module_with_other_weights(exported):
    model, out, _ = exported
    perturbed = copy.deepcopy(model)
    with torch.no_grad():
        perturbed.blocks[0].ffn[0].weight.add_(0.05 * torch.randn_like(perturbed.blocks[0].ffn[0].weight))
    rng = np.random.default_rng(2)
    inputs = [{"item_seq": left_padded(rng, 4, WINDOW, WINDOW), "candidates": rng.integers(2, N_ITEMS, (4, 10))}]
    assert check_parity(Scores(model), out / "ranker.onnx", inputs) <= 1e-4
    with pytest.raises(ParityError, match="scores.*differs from PyTorch"):
        check_parity(Scores(perturbed), out / "ranker.onnx", inputs)


class ItemTower(nn.Module):
    """Shaped like a two-tower model's item side: several feature tensors in, one embedding per item out."""

    def __init__(self):
        super().__init__()
        self.category = nn.Embedding(7, 8)
        self.price = nn.Linear(1, 8)

    def forward(self, category, price):
        return nn.functional.normalize(self.category(category) + self.price(price.unsqueeze(-1)), dim=-1)


def test_generic_helpers_export_time_and_check_another_module(tmp_path):
    torch.manual_seed(0)
    tower = ItemTower()
    example = {"category": torch.tensor([1, 2, 3]), "price": torch.tensor([0.5, 2.0, 9.9])}
    with pytest.raises(ValueError, match="at least 2"):
        export_onnx(tower, {k: v[:1] for k, v in example.items()}, ["embedding"], tmp_path / "x.onnx",
                    {"category": {0: "batch"}, "price": {0: "batch"}})
    path = export_onnx(tower, example, ["embedding"], tmp_path / "item_tower.onnx",
                       {"category": {0: "batch"}, "price": {0: "batch"}})
    batches = [{"category": torch.randint(0, 7, (n,)), "price": torch.rand(n) * 10} for n in (1, 2, 500)]
    assert check_parity(tower, path, batches) <= 1e-4
    latency = onnx_latency(path, batches[2], repeats=2)
    assert set(latency) == {"batch_1", "batch_64"} and latency["batch_64"]["p50_ms"] > 0


def test_two_tower_export_embeds_cold_items_like_pytorch(prepared, tmp_path):
    from dataclasses import replace as _replace

    from recstack.training.config import TwoTowerConfig
    from recstack.training.export_two_tower import export_two_tower
    from recstack.training.models.two_tower import ItemFeatures, TwoTower
    from recstack.training.train_two_tower import NextItemExamples

    features = ItemFeatures.from_prepared(prepared)
    config = _replace(TwoTowerConfig(), dim=16, history_length=10)
    examples = NextItemExamples(prepared.train_sequences, config.history_length, config.cuts_per_user)
    model = TwoTower(features, config, popularity=examples.positive_counts(prepared.n_items)).eval()
    manifest = export_two_tower(model, tmp_path, prepared.test.histories[:100], verbose=False)
    assert all(p["max_abs_diff"] <= 1e-4 for p in manifest["parity"].values())
    vectors = np.load(tmp_path / "item_embeddings.npy")
    with torch.no_grad():
        assert np.allclose(vectors, model.item_embeddings().numpy(), atol=1e-6)
    cold = np.flatnonzero(~features.has_id.numpy())[2:]  # items without training interactions (beyond PAD/OOV)
    assert len(cold) > 0
    session = onnx_session(tmp_path / "item_tower.onnx")
    index = torch.from_numpy(cold)
    out = session.run(None, {"item_idx": cold, "category": features.category[index].numpy(),
                             "brand": features.brand[index].numpy(),
                             "price_bucket": features.price_bucket[index].numpy(),
                             "title_tokens": features.title_tokens[index].numpy(),
                             "has_id": features.has_id[index].numpy()})[0]
    assert np.allclose(out, vectors[cold], atol=1e-4)
    assert np.allclose(np.linalg.norm(out, axis=1), 1.0, atol=1e-4)


@pytest.fixture(scope="module")
def exported_heads(tmp_path_factory):
    """A ranker with objective heads (their item biases drawn, so each item converts differently), exported."""
    torch.manual_seed(0)
    model = SASRec(N_ITEMS, SASRecConfig(max_length=WINDOW, hidden=HIDDEN, blocks=1, heads=2, objectives=True)).eval()
    with torch.no_grad():
        model.heads.item_bias.weight.normal_()
    out = tmp_path_factory.mktemp("onnx_heads")
    manifest = export_sasrec(model, out, n_checks=2, latency_repeats=2, verbose=False)
    return model, out, manifest


def test_a_ranker_with_heads_exports_their_probabilities_equal_to_pytorch(exported_heads):
    model, out, manifest = exported_heads
    rng = np.random.default_rng(7)
    inputs = {"item_seq": left_padded(rng, 6, WINDOW + 3, WINDOW), "candidates": rng.integers(0, N_ITEMS + 5, (6, 23))}
    scores, probabilities = onnx_session(out / "ranker.onnx").run(None, inputs)
    seq = torch.from_numpy(inputs["item_seq"][:, -WINDOW:])
    # Indices past the table (items added after training) read as OOV, as in the graph without heads.
    candidates = torch.from_numpy(np.where(inputs["candidates"] >= N_ITEMS, 1, inputs["candidates"]))
    with torch.no_grad():
        want_scores, want_probabilities = model.score_objectives(seq, candidates)
    assert probabilities.shape == (6, 23, 3) and probabilities.std() > 0.01
    assert np.abs(probabilities - want_probabilities.numpy()).max() <= 1e-5
    finite, want_scores = np.isfinite(scores), want_scores.numpy()
    assert (finite == np.isfinite(want_scores)).all()  # padding and OOV candidates are -inf in both
    assert np.abs(scores[finite] - want_scores[finite]).max() <= 1e-4
    assert [o["name"] for o in manifest["graphs"]["ranker"]["outputs"]] == ["scores", "objectives"]
    assert manifest["graphs"]["ranker"]["outputs"][1]["shape"] == ["batch", "n_candidates", 3]
    assert manifest["parity"]["ranker"]["max_abs_diff"] <= 1e-4


def test_the_parity_check_covers_the_heads(exported_heads):
    from recstack.training.export_sasrec import SequenceRanker

    model, out, _ = exported_heads
    other = copy.deepcopy(model)
    with torch.no_grad():
        other.heads.item_bias.weight.add_(1.0)  # the scores are untouched: only the probabilities differ
    rng = np.random.default_rng(3)
    inputs = {"item_seq": left_padded(rng, 4, WINDOW, WINDOW), "candidates": rng.integers(2, N_ITEMS, (4, 9))}
    with pytest.raises(ParityError, match="'objectives'"):
        check_parity(SequenceRanker(other), out / "ranker.onnx", [inputs])
