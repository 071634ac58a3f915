from dataclasses import replace

import numpy as np
import pytest
import torch
from recstack.training.baselines import MostPopular
from recstack.training.config import SASRecConfig, TrainConfig
from recstack.training.data import load_prepared, pad_left
from recstack.training.evaluate import evaluate
from recstack.training.models.sasrec import SASRec
from recstack.training.train_sasrec import epoch_batches, next_item_pairs, sequence_scorer, train_sasrec
from recstack.training.trainer import BEST, BUDGET_CHECK_BATCHES, FINAL, LAST

TINY = SASRecConfig(max_length=20, hidden=32, blocks=1, heads=2, dropout=0.0)
FAST = TrainConfig(epochs=2, batch_size=64, lr=3e-3, validate_every=1, precision="fp32", device="cpu")


def test_scores_of_candidates_equal_the_full_scores_at_those_items():
    model = SASRec(40, TINY).eval()
    seq = torch.tensor([[0, 0, 5, 9, 12, 7, 3, 8] + [4] * 12, [0] * 18 + [6, 2]])
    candidates = torch.tensor([[3, 4, 5, 39], [2, 2, 10, 11]])
    with torch.no_grad():
        full = model.score_all(seq)
        assert torch.allclose(model.score_candidates(seq, candidates), full.gather(1, candidates), atol=1e-5)
        assert torch.isinf(full[:, :2]).all()


def test_padding_does_not_change_the_user_representation():
    model = SASRec(40, TINY).eval()
    short = torch.tensor([[0] * 17 + [5, 9, 12]])
    with torch.no_grad():
        a = model(short)
        b = model(torch.tensor([[0] * 7 + [5, 9, 12]]))  # the same items, a shorter padded window
    assert torch.allclose(a, b, atol=1e-5)


def _histories(rng, n_items, lengths):
    return [rng.integers(2, n_items, n) for n in lengths]


def test_a_sequence_cut_to_its_length_scores_as_when_padded_to_the_full_window():
    # Default window (200): a model trained on cut batches serves full-length, left-padded input.
    torch.manual_seed(0)
    model = SASRec(80, SASRecConfig(hidden=32, blocks=2, heads=2)).eval()
    histories = _histories(np.random.default_rng(0), 80, [1, 3, 17, 60, 199, 200])
    with torch.no_grad():
        full = model.score_all(torch.from_numpy(pad_left(histories, 200)))
        for row, history in enumerate(histories):
            cut = model.score_all(torch.from_numpy(pad_left([history], len(history))))
            assert torch.allclose(cut[0, 2:], full[row, 2:], atol=1e-5)
        # A batch padded to its longest history (length-aware evaluation) too.
        batch = model.score_all(torch.from_numpy(pad_left(histories[:4], 60)))
        assert torch.allclose(batch[:, 2:], full[:4, 2:], atol=1e-5)
        # Every position of a cut sequence too (what training reads), not only the newest.
        hidden_full, hidden_cut = model.encode(torch.from_numpy(pad_left(histories[3:4], 200))), model.encode(
            torch.from_numpy(pad_left(histories[3:4], 60)))
        assert torch.allclose(hidden_full[:, -60:], hidden_cut, atol=1e-5)


@pytest.mark.parametrize("blocks", [1, 3])
def test_encoding_the_last_position_only_gives_the_full_computations_scores(blocks):
    torch.manual_seed(blocks)
    model = SASRec(90, SASRecConfig(max_length=30, hidden=32, blocks=blocks, heads=4)).eval()
    rng = np.random.default_rng(blocks)
    seq = torch.from_numpy(pad_left(_histories(rng, 90, [0, 1, 5, 29, 30, 40]), 30))
    seq[2, -2] = 1  # an OOV item is read as padding in either computation
    candidates = torch.from_numpy(rng.integers(0, 90, (6, 25)))
    with torch.no_grad():
        last = model.encode(seq, last_only=True)
        user = model.encode(seq)[:, -1]
        assert last.shape == (6, 1, 32) and torch.allclose(last[:, 0], user, atol=1e-5)
        full_scores = user @ model.item_vectors().T
        assert torch.allclose(model.score_all(seq)[:, 2:], full_scores[:, 2:], atol=1e-5)
        expected = (model.item_embedding(candidates) * user.unsqueeze(1)).sum(-1)
        served = model.score_candidates(seq, candidates)
        real = candidates >= 2
        assert torch.allclose(served[real], expected[real], atol=1e-5) and torch.isinf(served[~real]).all()


def test_length_aware_batches_hold_every_row_once_grouped_by_length_and_cut_to_the_longest():
    rng = np.random.default_rng(0)
    sequences = _histories(rng, 50, rng.integers(2, 120, 3000))
    inputs, labels = next_item_pairs(sequences, 100)
    lengths = (inputs != 0).sum(1)
    batches, n_batches = epoch_batches(inputs, labels, 32, seed=1, length_aware=True)
    uniform, n_uniform = epoch_batches(inputs, labels, 32, seed=1, length_aware=False)
    assert n_batches == n_uniform == 94
    seen, real, padded = [], 0, {"aware": 0, "uniform": 0}
    for x, y in batches(0, 0, 1):
        rows_lengths = (x != 0).sum(1)
        assert x.shape == y.shape and x.shape[1] == int(rows_lengths.max())  # cut to the longest row
        assert ((x == 0) == (y == 0)).all()  # inputs and labels stay aligned
        seen.extend(x[:, -1].tolist())
        real, padded["aware"] = real + int(rows_lengths.sum()), padded["aware"] + x.numel()
    for x, _ in uniform(0, 0, 1):
        assert x.shape[1] == 100
        padded["uniform"] += x.numel()
    assert len(seen) == len(inputs) and sorted(seen) == sorted(inputs[:, -1].tolist())
    assert real == int(lengths.sum())
    # Sorted within pools, a batch is almost all real items; a uniform shuffle pads to the window.
    assert real / padded["aware"] > 0.95 and real / padded["uniform"] < 0.65
    # Seeded per epoch: the same batches again, other batches the next epoch.
    first = [x for x, _ in batches(0, 0, 1)]
    assert all(torch.equal(a, b) for a, b in zip(first, [x for x, _ in batches(0, 0, 1)], strict=True))
    assert not all(a.shape == b.shape and torch.equal(a, b)
                   for a, b in zip(first, [x for x, _ in batches(1, 0, 1)], strict=True))


def test_length_aware_evaluation_gives_the_same_metrics(prepared):
    torch.manual_seed(0)
    cut = SASRec(prepared.n_items, TINY).eval()
    full = SASRec(prepared.n_items, replace(TINY, length_aware=False)).eval()
    full.load_state_dict(cut.state_dict())
    test = prepared.test.subset(np.arange(300))
    a = evaluate(sequence_scorer(cut, torch.device("cpu")), prepared, test.by_history_length())
    b = evaluate(sequence_scorer(full, torch.device("cpu")), prepared, test)
    assert a.keys() == b.keys() and all(a[k] == pytest.approx(b[k], abs=1e-6) for k in a)


@pytest.mark.parametrize("loss", ["full", "sampled"])
def test_a_tiny_model_overfits_a_tiny_dataset(loss):
    torch.manual_seed(0)
    sequences = [np.array([2, 3, 4, 5, 6, 7]), np.array([8, 9, 10, 11, 12, 13])]
    inputs, labels = next_item_pairs(sequences, 8)
    model = SASRec(14, SASRecConfig(max_length=8, hidden=32, blocks=1, heads=1, dropout=0.0, loss=loss,
                                    negatives=8))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    for _ in range(150):
        optimizer.zero_grad()
        model.loss(inputs.long(), labels.long()).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = model.score_all(torch.tensor([[0, 0, 0, 2, 3, 4, 5, 6], [0, 0, 0, 8, 9, 10, 11, 12]])).argmax(1)
    assert predicted.tolist() == [7, 13]


def _train(prepared, folder, epochs, model_config=TINY) -> dict:
    return train_sasrec(prepared, folder, model_config, replace(FAST, epochs=epochs), progress=False).report


@pytest.mark.parametrize("length_aware", [True, False])
def test_training_learns_the_synthetic_sequences_better_than_popularity(prepared, tmp_path, length_aware):
    report = _train(prepared, tmp_path, 4, replace(TINY, length_aware=length_aware))
    popular = evaluate(MostPopular(prepared), prepared, prepared.test)
    assert report.test["ndcg@10"] > 1.5 * popular["ndcg@10"]
    assert report.version.startswith("sasrec-") and report.best_epoch >= 1
    assert [h["epoch"] for h in report.history] == [1, 2, 3, 4]


def test_resumed_training_ends_exactly_where_an_uninterrupted_run_does(prepared, tmp_path):
    straight = _train(prepared, tmp_path / "a", 3)
    _train(prepared, tmp_path / "b", 1)
    resumed = _train(prepared, tmp_path / "b", 3)
    assert resumed.resumed and resumed.epochs == 3
    a = torch.load(tmp_path / "a" / LAST, weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / LAST, weights_only=False)["model"]
    assert all(torch.equal(a[k], b[k]) for k in a)
    assert straight.test == resumed.test


def test_a_checkpoint_of_another_run_is_not_resumed(prepared, tmp_path):
    _train(prepared, tmp_path, 1)
    other = SASRecConfig(max_length=20, hidden=16, blocks=1, heads=2, dropout=0.0)
    with pytest.raises(ValueError, match="belongs to another run"):
        _train(load_prepared(prepared.folder), tmp_path, 1, other)


def test_oov_items_are_read_as_padding_and_never_scored():
    model = SASRec(40, TINY).eval()
    with torch.no_grad():
        assert torch.allclose(model(torch.tensor([[0, 1, 5, 9]])), model(torch.tensor([[0, 0, 5, 9]])), atol=1e-6)
        scores = model.score_candidates(torch.tensor([[5, 9]]), torch.tensor([[0, 1, 7]]))
    assert torch.isinf(scores[0, :2]).all() and torch.isfinite(scores[0, 2])


def test_a_run_that_ran_out_of_time_is_not_continued_on_resume(prepared, tmp_path):
    config = replace(FAST, epochs=5, max_minutes=1e-6)
    first = train_sasrec(prepared, tmp_path, TINY, config, progress=False).report
    again = train_sasrec(prepared, tmp_path, TINY, config, progress=False).report
    assert first.epochs == 1 and again.resumed and again.epochs == 1


def test_the_time_budget_cuts_an_epoch_short(prepared, tmp_path):
    whole = train_sasrec(prepared, tmp_path / "whole", TINY, replace(FAST, epochs=1), progress=False).report
    cut = train_sasrec(prepared, tmp_path / "cut", TINY, replace(FAST, epochs=1, max_minutes=1e-6),
                       progress=False).report
    assert whole.history[0]["batches"] > BUDGET_CHECK_BATCHES
    assert cut.history[0]["batches"] == BUDGET_CHECK_BATCHES
    assert (tmp_path / "cut" / BEST).exists()  # the partial epoch is validated and kept


def test_finishing_epochs_train_on_validation_events_and_give_the_final_model(prepared, tmp_path):
    config = replace(FAST, epochs=2, finish_epochs=2)
    trained = train_sasrec(prepared, tmp_path, TINY, config, progress=False)
    report = trained.report
    assert report.version.endswith("-f2") and report.finish_epochs == 2 and report.finish_seconds > 0
    assert report.test != report.test_best_checkpoint  # the final model is the finished one
    final = torch.load(tmp_path / FINAL, weights_only=False)["model"]
    best = torch.load(tmp_path / BEST, weights_only=False)["model"]
    assert all(torch.equal(final[k], v) for k, v in trained.model.state_dict().items())
    assert not all(torch.equal(final[k], best[k]) for k in best)
    # A finished run is loaded, not finished again.
    again = train_sasrec(prepared, tmp_path, TINY, config, progress=False).report
    assert again.test == report.test and again.finish_seconds == 0


def test_finishing_sequences_add_validation_targets_never_test_targets(prepared):
    sequences = prepared.train_and_valid_sequences()
    position = {int(u): i for i, u in enumerate(prepared.train_user_idx)}
    for user, targets in zip(prepared.valid.user_idx[:50], prepared.valid.targets[:50], strict=True):
        row = position[int(user)]
        train = prepared.train_sequences[row]
        assert np.array_equal(sequences[row], np.concatenate([train, targets]))
    # Leave-one-out: training + validation is the test history (its newest steps), without the test target.
    for user, history in zip(prepared.test.user_idx[:50], prepared.test.histories[:50], strict=True):
        finishing = sequences[position[int(user)]]
        assert np.array_equal(finishing, history[-len(finishing):])


def test_test_users_evaluate_a_fixed_subset_and_keep_the_model_version(prepared, tmp_path):
    config = replace(FAST, epochs=1)
    everyone = train_sasrec(prepared, tmp_path / "all", TINY, config, progress=False).report
    subset = train_sasrec(prepared, tmp_path / "some", TINY, replace(config, test_users=50), progress=False).report
    again = train_sasrec(prepared, tmp_path / "again", TINY, replace(config, test_users=50), progress=False).report
    assert everyone.test_users == len(prepared.test) > 50 and subset.test_users == 50
    assert subset.test["users"] == 50 and subset.test == again.test  # the same users every time
    assert subset.version == everyone.version  # a test-only setting does not make another model


@pytest.mark.parametrize("bad", [{"test_users": 0}, {"epochs": 0}, {"finish_epochs": -1}, {"max_minutes": 0},
                                 {"lr": 0.0}])
def test_impossible_training_settings_are_refused_with_their_names(bad):
    with pytest.raises(ValueError, match=next(iter(bad))):
        replace(FAST, **bad)


def test_the_learning_rate_is_the_models_own_unless_the_training_settings_set_one(prepared, tmp_path):
    own = replace(FAST, epochs=1, lr=None)
    train_sasrec(prepared, tmp_path / "own", replace(TINY, lr=4e-3), own, progress=False)
    train_sasrec(prepared, tmp_path / "set", replace(TINY, lr=4e-3), replace(own, lr=5e-4), progress=False)
    used = {name: torch.load(tmp_path / name / LAST, weights_only=False)["optimizer"]["param_groups"][0]["lr"]
            for name in ("own", "set")}
    assert used == {"own": 4e-3, "set": 5e-4}
    assert SASRecConfig().lr == 2e-3 and TrainConfig().lr is None


def test_a_warm_start_grows_the_catalog_and_trains_on_from_the_checkpoint(prepared, tmp_path):
    first = train_sasrec(prepared, tmp_path / "first", TINY, replace(FAST, epochs=1), progress=False)
    grown = replace(prepared, n_items=prepared.n_items + 3)
    # A learning rate too small to move the weights: the warm-started model is the checkpoint's, grown.
    warm = train_sasrec(grown, tmp_path / "warm", TINY, replace(FAST, epochs=1, lr=1e-12), progress=False,
                        warm_start=tmp_path / "first" / BEST)
    old, new = first.model.state_dict(), warm.model.state_dict()
    assert new["item_embedding.weight"].shape[0] == prepared.n_items + 3
    assert all(torch.allclose(new[k][:len(v)], v, atol=1e-6) for k, v in old.items())
    cold = train_sasrec(grown, tmp_path / "cold", TINY, replace(FAST, epochs=1, lr=1e-12), progress=False)
    assert warm.report.test["ndcg@10"] > 2 * cold.report.test["ndcg@10"]


def test_auto_loss_is_the_full_softmax_up_to_the_configured_catalog_size():
    small = SASRecConfig(max_length=8, hidden=16, blocks=1, heads=1, full_softmax_max_items=14)
    assert SASRec(14, small).loss_kind == "full"
    assert SASRec(15, small).loss_kind == "sampled"
    assert SASRec(15, replace(small, loss="full")).loss_kind == "full"
