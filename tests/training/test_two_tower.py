import numpy as np
import pytest
import torch
from recstack.training.baselines import MostPopular
from recstack.training.config import TrainConfig, TwoTowerConfig
from recstack.training.data import pad_left
from recstack.training.evaluate import evaluate
from recstack.training.models.two_tower import ItemFeatures, TwoTower
from recstack.training.train_two_tower import TEST_KS, NextItemExamples, train_two_tower, two_tower_scorer
from recstack.training.trainer import LAST

SMALL = TwoTowerConfig(dim=32, history_length=20, negatives=128)
FAST = TrainConfig(epochs=6, batch_size=64, lr=3e-3, validate_every=1, precision="fp32", device="cpu")


@pytest.fixture(scope="module", autouse=True)
def one_thread():
    """These models are tiny: a second intra-op thread only fights other work for the 2-core CI machine."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    yield
    torch.set_num_threads(threads)


def toy_features(n_items: int) -> ItemFeatures:
    """Item i >= 2 in category i % 3 + 2, brand i % 2 + 2, with a one-token title of its own."""
    real = np.arange(n_items) >= 2
    return ItemFeatures.from_arrays(np.where(real, np.arange(n_items) % 3 + 2, 0),
                                    np.where(real, np.arange(n_items) % 2 + 2, 0),
                                    np.where(real, 1, 0), [[i] if i >= 2 else [] for i in range(n_items)])


@pytest.fixture(scope="module")
def trained(prepared, tmp_path_factory):
    """A small two-tower model trained a few epochs on the synthetic shop, and its report."""
    out = tmp_path_factory.mktemp("two_tower")
    report = train_two_tower(prepared, out, SMALL, FAST, progress=False).report
    features = ItemFeatures.from_prepared(prepared)
    model = TwoTower(features, SMALL)
    model.load_state_dict(torch.load(out / "checkpoint_best.pt", weights_only=False)["model"])
    return model.eval(), features, report


def test_item_features_hold_every_item_index_of_the_prepared_data(prepared):
    features = ItemFeatures.from_prepared(prepared)
    items = prepared.items.sort("item_idx")
    assert len(features) == prepared.n_items
    assert features.category.tolist() == items["category_idx"].to_list()
    row = 5
    title = items["title_tokens"][row].to_list()
    assert features.title_tokens[row, :len(title)].tolist() == title
    assert not features.title_tokens[row, len(title):].any()
    assert features.has_id.numpy().tolist() == (prepared.item_popularity() > 0).tolist()
    assert not features.has_id[:2].any()


def test_item_embeddings_are_unit_vectors_one_per_item_index(prepared):
    torch.manual_seed(0)
    model = TwoTower(ItemFeatures.from_prepared(prepared), SMALL).eval()
    with torch.no_grad():
        items = model.item_embeddings()
        some = model.item_embeddings(indices=torch.tensor([7, 2, 7]))
    assert items.shape == (prepared.n_items, SMALL.dim)
    assert torch.allclose(items.norm(dim=1), torch.ones(prepared.n_items), atol=1e-5)
    assert torch.allclose(some, items[[7, 2, 7]], atol=1e-6)
    assert not torch.allclose(items[2], items[3])


def test_queries_are_unit_vectors_that_ignore_padding_and_score_pad_and_oov_at_minus_infinity():
    torch.manual_seed(0)
    model = TwoTower(toy_features(30), TwoTowerConfig(dim=16, history_length=10)).eval()
    with torch.no_grad():
        long = model.query(torch.tensor([[0] * 7 + [5, 9, 12], [3] * 10]))
        short = model.query(torch.tensor([[0, 5, 9, 12]]))  # the same items in a narrower padded window
        scores = model.score_all(torch.tensor([[0, 5, 9, 12]]))
        empty = model.query(torch.zeros(1, 10, dtype=torch.long))
    assert torch.allclose(long.norm(dim=1), torch.ones(2), atol=1e-5)
    assert torch.allclose(long[0], short[0], atol=1e-5)
    assert torch.isinf(scores[0, :2]).all() and torch.isfinite(scores[0, 2:]).all()
    assert torch.isfinite(empty).all()


def test_a_tiny_model_overfits_a_tiny_dataset():
    torch.manual_seed(0)
    sequences = [np.array([2, 3, 4, 5, 6, 7]), np.array([8, 9, 10, 11, 12, 13])]
    examples = NextItemExamples(sequences, history_length=8, cuts_per_user=5)
    seq, positives = examples.take(examples.user, examples.cut)
    model = TwoTower(toy_features(14), TwoTowerConfig(dim=32, history_length=8, id_dropout=0.0, negatives=8))
    optimizer = torch.optim.Adam(model.parameters(), lr=1e-2)
    generator = torch.Generator().manual_seed(0)
    for _ in range(150):
        optimizer.zero_grad()
        model.loss(seq, positives, generator=generator).backward()
        optimizer.step()
    model.eval()
    with torch.no_grad():
        predicted = model.score_all(torch.from_numpy(pad_left([s[:-1] for s in sequences], 8))).argmax(1)
    assert predicted.tolist() == [7, 13]


def test_log_q_correction_penalises_often_sampled_candidates_and_accidental_hits_are_masked():
    features = toy_features(6)
    popularity = np.array([0, 0, 50, 1, 1, 1], dtype=float)
    models = {}
    for on in (True, False):
        torch.manual_seed(0)
        models[on] = TwoTower(features, TwoTowerConfig(dim=8, history_length=4, negatives=16, logq_correction=on),
                              popularity).eval()
    seq = torch.tensor([[0, 0, 3, 4], [0, 0, 0, 4], [0, 5, 3, 2]])
    positives = torch.tensor([5, 5, 2])
    logits = {on: m.sampled_logits(seq, positives, torch.Generator().manual_seed(1)) for on, m in models.items()}
    (with_q, candidates), (without_q, same_candidates) = logits[True], logits[False]
    assert torch.equal(candidates, same_candidates)
    assert not torch.allclose(models[True].loss(seq, positives, torch.Generator().manual_seed(1)),
                              models[False].loss(seq, positives, torch.Generator().manual_seed(1)))

    hit = candidates.unsqueeze(0) == positives.unsqueeze(1)
    hit[torch.arange(3), torch.arange(3)] = False
    assert hit[:, 3:].any(1).all()  # every row drew its own positive among the 16 uniform negatives
    for matrix in (with_q, without_q):
        assert torch.isinf(matrix[hit]).all() and (matrix[hit] < 0).all()
        assert torch.isfinite(matrix[~hit]).all()
    assert torch.isfinite(torch.diagonal(with_q[:, :3])).all()
    # Item 2 is most of the positives: expected 3 * 50/53 times in-batch, the others 3 * 1/53 times, and every
    # item 16 / 4 times among the uniform negatives. The correction subtracts the log of those expectations.
    drop = (without_q - with_q)[~hit]
    on_popular = (candidates == 2).expand_as(hit)[~hit]
    assert torch.allclose(drop[on_popular], torch.tensor(np.log(3 * 50 / 53 + 4)).float(), atol=1e-4)
    assert torch.allclose(drop[~on_popular], torch.tensor(np.log(3 / 53 + 4)).float(), atol=1e-4)


def test_training_beats_popularity_on_the_synthetic_shop(prepared, trained):
    _, _, report = trained
    popular = evaluate(MostPopular(prepared), prepared, prepared.test, ks=TEST_KS)
    assert report.test["ndcg@10"] > 2 * popular["ndcg@10"]
    assert report.test["recall@20"] > popular["recall@20"] + 0.2
    assert {f"recall@{k}" for k in TEST_KS} <= report.test.keys()
    assert report.version.startswith(f"two_tower-{prepared.fingerprint[:8]}-")
    assert report.version.endswith(f"-e{report.best_epoch}")
    assert [h["epoch"] for h in report.history] == list(range(1, FAST.epochs + 1))


def test_the_scorer_ranks_like_the_models_own_score_all(prepared, trained):
    model, features, _ = trained
    histories = prepared.test.histories[:5]
    with torch.no_grad():
        expected = model.score_all(torch.from_numpy(pad_left(histories, SMALL.history_length)))
        scores = two_tower_scorer(model, features, torch.device("cpu"))(histories, prepared.test.user_idx[:5])
    assert torch.allclose(scores, expected, atol=1e-5)


def test_cold_items_are_placed_among_their_category_by_content(prepared, trained):
    model, features, _ = trained
    popularity = prepared.item_popularity()
    cold = np.flatnonzero(popularity[2:] == 0) + 2
    warm = np.flatnonzero(popularity > 0)
    category = features.category.numpy()
    cold = cold[[(category[warm] == category[c]).sum() >= 3 for c in cold]]
    assert len(cold) >= 3, "the synthetic shop should list items nobody interacted with"
    with torch.no_grad():
        items = model.item_embeddings()
    gaps, precision = [], []
    for c in cold:
        cosine = (items[warm] @ items[c]).numpy()
        same = category[warm] == category[c]
        gaps.append(cosine[same].mean() - cosine[~same].mean())
        precision.append(same[np.argsort(-cosine)[:10]].mean())
    # Shared category embeddings alone make an untrained tower's gaps positive (~0.3), but its ten nearest warm
    # items are only ~60% of the cold item's category (trained: ~100%).
    assert min(gaps) > 0
    assert np.mean(precision) >= 0.8

    # Users browsing a cold item's category get it near the top although nobody ever interacted with it.
    score = two_tower_scorer(model, features, torch.device("cpu"))
    ranks = []
    for c in cold:
        fans = [h for h in prepared.test.histories if (category[h[-5:]] == category[c]).mean() >= 0.8]
        if fans:
            scores = score(fans, np.zeros(len(fans)))
            ranks.append(float((scores > scores[:, [c]]).sum(1).float().median()))
    # Untrained, the median rank is 18-54% of the catalog (seeds 0-3); trained, about 5%.
    assert ranks and np.median(ranks) < 0.1 * (prepared.n_items - 2)


def test_resumed_training_ends_exactly_where_an_uninterrupted_run_does(prepared, tmp_path):
    two = TrainConfig(**{**FAST.__dict__, "epochs": 2})
    straight = train_two_tower(prepared, tmp_path / "a", SMALL, two, progress=False).report
    train_two_tower(prepared, tmp_path / "b", SMALL, TrainConfig(**{**FAST.__dict__, "epochs": 1}), progress=False)
    resumed = train_two_tower(prepared, tmp_path / "b", SMALL, two, progress=False).report
    assert resumed.resumed and resumed.epochs == 2
    a = torch.load(tmp_path / "a" / LAST, weights_only=False)["model"]
    b = torch.load(tmp_path / "b" / LAST, weights_only=False)["model"]
    assert a.keys() == b.keys() and all(torch.equal(a[k], b[k]) for k in a)
    assert straight.test == resumed.test


def test_a_checkpoint_of_another_run_is_not_resumed(prepared, tmp_path):
    one = TrainConfig(**{**FAST.__dict__, "epochs": 1})
    train_two_tower(prepared, tmp_path, SMALL, one, progress=False)
    with pytest.raises(ValueError, match="belongs to another run"):
        train_two_tower(prepared, tmp_path, TwoTowerConfig(dim=16, history_length=20), one, progress=False)


def test_epochs_draw_fresh_examples_reproducibly_and_never_cut_before_the_first_item():
    sequences = [np.arange(2, 12), np.array([2, 3]), np.array([4])]
    examples = NextItemExamples(sequences, history_length=4, cuts_per_user=3)
    assert len(examples) == 3 + 1
    first, again = examples.sample(np.random.default_rng([0, 1])), examples.sample(np.random.default_rng([0, 1]))
    later = examples.sample(np.random.default_rng([0, 2]))
    assert all(np.array_equal(x, y) for x, y in zip(first, again, strict=True))
    assert not np.array_equal(np.sort(first[1][first[0] == 0]), np.sort(later[1][later[0] == 0]))
    users, cuts = first
    assert np.bincount(users, minlength=3).tolist() == [3, 1, 0] and (cuts >= 1).all()
    seq, positives = examples.take(users, cuts)
    for row, (u, t) in enumerate(zip(users, cuts, strict=True)):
        assert positives[row] == sequences[u][t]
        assert seq[row].tolist() == pad_left([sequences[u][:t]], 4)[0].tolist()
