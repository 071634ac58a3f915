"""Training recipe of the two-tower retrieval model on a prepared dataset."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import torch
from recstack.preprocessing.vocabulary import FIRST_INDEX
from recstack.training.config import TrainConfig, TwoTowerConfig
from recstack.training.data import PreparedData, pad_left
from recstack.training.evaluate import Scorer
from recstack.training.models.two_tower import ItemFeatures, TwoTower
from recstack.training.recipe import train_and_test
from recstack.training.runtime import seed_everything
from recstack.training.trainer import Trained, process_batches
from recstack.training.warm_start import grow_into

TEST_KS = (10, 20, 100, 500)  # Recall@100/500 bound what the retrieval stage can hand to the ranker


class NextItemExamples:
    """(history, next item) examples cut from training sequences: up to ``cuts_per_user`` distinct cut
    points per user, drawn afresh every epoch.

    Each user's sequence is a run of next-item examples; drawing a few per epoch keeps epochs short on long
    histories while every position is reached over epochs.

    Examples
    --------
    >>> examples = NextItemExamples([np.array([2, 3, 4, 5]), np.array([6])], history_length=2, cuts_per_user=2)
    >>> len(examples)  # the single-item sequence has no next item
    2
    >>> seq, positives = examples.take(np.array([0, 0]), np.array([1, 3]))
    >>> seq.tolist(), positives.tolist()
    ([[0, 2], [3, 4]], [3, 5])
    """

    def __init__(self, sequences: list[np.ndarray], history_length: int, cuts_per_user: int):
        if cuts_per_user < 1:
            raise ValueError(f"cuts_per_user must be at least 1, not {cuts_per_user}")
        self.history_length, self.cuts_per_user = history_length, cuts_per_user
        lengths = np.array([len(s) for s in sequences], dtype=np.int64)
        self.flat = np.concatenate(sequences).astype(np.int64) if sequences else np.zeros(0, dtype=np.int64)
        self.offsets = np.concatenate([[0], np.cumsum(lengths)])[:-1]
        # Every (user, cut) with a non-empty history: cut t predicts sequence[t] from sequence[:t].
        cuts = np.maximum(lengths - 1, 0)
        self.user = np.repeat(np.arange(len(sequences)), cuts)
        self.cuts, self.user_start = cuts, np.cumsum(cuts) - cuts
        self.per_user = np.minimum(cuts, cuts_per_user)
        self.cut = np.arange(len(self.user)) - np.repeat(self.user_start, cuts) + 1

    def __len__(self) -> int:
        """Examples per epoch."""
        return int(self.per_user.sum())

    def positive_counts(self, n_items: int) -> np.ndarray:
        """Expected times each item is a positive in an epoch: the in-batch sampling distribution."""
        weight = (self.per_user / np.maximum(self.cuts, 1))[self.user]  # each cut's chance to be drawn
        return np.bincount(self.flat[self.offsets[self.user] + self.cut], weights=weight, minlength=n_items)

    def sample(self, rng: np.random.Generator) -> tuple[np.ndarray, np.ndarray]:
        """(user rows, cut points) of one epoch, in random order."""
        order = np.lexsort((rng.random(len(self.user)), self.user))  # shuffled within each user
        rank = np.arange(len(order)) - self.user_start[self.user[order]]
        chosen = order[rank < self.per_user[self.user[order]]]
        chosen = chosen[rng.permutation(len(chosen))]
        return self.user[chosen], self.cut[chosen]

    def take(self, users: np.ndarray, cuts: np.ndarray) -> tuple[torch.Tensor, torch.Tensor]:
        """Left-padded histories (the ``history_length`` items before each cut) and the items at the cuts."""
        h = self.history_length
        start = self.offsets[users] + cuts
        slot = np.arange(h) - h  # -h .. -1: positions before the cut
        index = start[:, None] + slot
        present = slot[None, :] >= -cuts[:, None]
        seq = np.where(present, self.flat[np.clip(index, 0, None)], 0)
        return torch.from_numpy(seq), torch.from_numpy(self.flat[start])


def example_batches(examples: NextItemExamples, batch_size: int, seed: int):
    """``batches(epoch, rank, world_size)``: the epoch's examples (seeded by epoch), split between processes."""
    def batches(epoch: int, rank: int, world_size: int):
        users, cuts = examples.sample(np.random.default_rng([seed, epoch]))
        for i in process_batches(n_batches, rank, world_size):
            rows = slice(i * batch_size, (i + 1) * batch_size)
            yield examples.take(users[rows], cuts[rows])
    n_batches = -(-len(examples) // batch_size)
    return batches, n_batches


def two_tower_scorer(model: TwoTower, features: ItemFeatures, device: torch.device) -> Scorer:
    """Scores of every item of ``features`` for a batch of histories; the item table is embedded once."""
    with torch.no_grad():
        items = model.item_embeddings(features.to(device))

    def score(histories, user_idx):
        seq = torch.from_numpy(pad_left(histories, model.config.history_length)).to(device)
        scores = (model.query(seq, items) @ items.T).float()
        scores[:, :FIRST_INDEX] = float("-inf")
        return scores
    return score


def train_two_tower(data: PreparedData, output_dir: Path, model_config: TwoTowerConfig | None = None,
                    train_config: TrainConfig | None = None, resume: bool = True, progress: bool = True,
                    warm_start: Path | None = None) -> Trained:
    """Train with early stopping on validation NDCG@10 (and ``finish_epochs`` if set); evaluate the final model on
    the test set (``ks`` 10, 20, 100 and 500: the deep cut-offs are what retrieval feeds the ranker).

    Returns the best model (on the main process) and the report: test metrics, best epoch, time,
    history and model version.

    Examples
    --------
    >>> data = load_prepared(Path("build/data/synthetic"))  # doctest: +SKIP
    >>> trained = train_two_tower(data, Path("build/models/tt"))  # doctest: +SKIP
    >>> report = trained.report  # doctest: +SKIP
    >>> report.version, report.test["recall@100"]  # doctest: +SKIP
    ('two_tower-20f3f50d-1c2e8a90-e14', 0.61)
    """
    model_config, train_config = model_config or TwoTowerConfig(), train_config or TrainConfig()
    examples = NextItemExamples(data.train_sequences, model_config.history_length, model_config.cuts_per_user)
    if not len(examples):
        raise ValueError(f"{data.folder} has no training sequence with two or more steps to learn from")
    features = ItemFeatures.from_prepared(data)
    seed_everything(train_config.seed)  # the initial weights too must not depend on what ran before
    model = TwoTower(features, model_config, popularity=examples.positive_counts(data.n_items))
    if warm_start is not None:
        grow_into(model, warm_start)

    def make_batches(sequences):
        cuts = examples if sequences is data.train_sequences else NextItemExamples(
            sequences, model_config.history_length, model_config.cuts_per_user)
        return example_batches(cuts, train_config.batch_size, train_config.seed)

    return train_and_test("two_tower", model, model_config, data, output_dir, train_config, make_batches,
                          lambda m, device: two_tower_scorer(m, features, device), resume, progress, TEST_KS)
