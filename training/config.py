"""Typed settings of the training stage (parts of :class:`recstack.settings.Settings`); torch-free, so the
settings and the serving roles import them without installing torch."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from recstack.preprocessing.config import DEFAULT_MAX_SEQUENCE_LENGTH

Precision = Literal["auto", "fp32", "bf16"]
SASRecLoss = Literal["auto", "full", "sampled"]
# The ranker's objective heads, in the order of its ``objectives`` output: how far down the funnel a step goes.
OBJECTIVES: tuple[str, ...] = ("click", "add_to_cart", "purchase")
OBJECTIVES_OUTPUT = "objectives"  # the exported ranker's output of their probabilities (batch × candidates × 3)


@dataclass(frozen=True)
class TrainConfig:
    """Optimisation settings shared by the models; defaults need no per-dataset tuning.

    Examples
    --------
    >>> from dataclasses import replace
    >>> replace(TrainConfig(), epochs=3).epochs
    3
    >>> TrainConfig(batch_size=0)
    Traceback (most recent call last):
    ...
    ValueError: these training settings must be at least 1: {'batch_size': 0}
    """

    epochs: int = 200
    batch_size: int = 128
    lr: float | None = None  # None: the model's own default (``lr`` of its config)
    weight_decay: float = 0.0
    patience: int = 10  # validations without improvement before stopping
    validate_every: int = 2  # epochs
    validation_users: int = 4096  # a fixed random subset keeps validation cheap on large datasets
    # None: every test user. Full ranking costs users × items (benchmarks/README.md, "Measured design decisions"),
    # so a fixed random subset can stand in; the report says how many users the test metrics cover.
    test_users: int | None = None
    max_minutes: float | None = None  # stop (keeping the best checkpoint) after this much training time
    # After early stopping: this many more epochs from the best checkpoint on training + validation events, the
    # learning rate decaying linearly to 0. Validation can no longer pick among them, so the count is chosen
    # beforehand (see training/README.md); 0 leaves the best checkpoint as the final model.
    finish_epochs: int = 0
    seed: int = 42
    device: str = "auto"
    precision: Precision = "auto"

    def __post_init__(self):
        counts = {"epochs": self.epochs, "batch_size": self.batch_size, "patience": self.patience,
                  "validate_every": self.validate_every, "validation_users": self.validation_users}
        if self.test_users is not None:
            counts["test_users"] = self.test_users
        bad = {name: value for name, value in counts.items() if value < 1}
        if bad:
            raise ValueError(f"these training settings must be at least 1: {bad}")
        if self.finish_epochs < 0:
            raise ValueError(f"finish_epochs must not be negative; got {self.finish_epochs}")
        if self.max_minutes is not None and self.max_minutes <= 0:
            raise ValueError(f"max_minutes must be positive; got {self.max_minutes}")
        if self.lr is not None and self.lr <= 0:
            raise ValueError(f"lr must be positive; got {self.lr}")


@dataclass(frozen=True)
class SASRecConfig:
    """The sequential ranker; defaults that work on every bundled dataset without per-dataset tuning."""

    max_length: int = DEFAULT_MAX_SEQUENCE_LENGTH
    hidden: int = 128
    blocks: int = 2
    heads: int = 2
    dropout: float = 0.2
    loss: SASRecLoss = "auto"
    negatives: int = 1024  # per batch, shared by every position (sampled loss)
    full_softmax_max_items: int = 100_000  # "auto" uses the full softmax up to this catalog size
    # Learning rate unless TrainConfig.lr sets one. 2e-3 rather than 1e-3: chosen on the shifted-back split, which
    # never holds a test target (training/README.md, "Choosing the defaults").
    lr: float = 2e-3
    # Length-aware batching: training batches group users of similar history length (sorted within large
    # shuffled pools) and are cut to their longest sequence, evaluation batches too. Left-padded to ``max_length``,
    # short-history data is mostly padding (ML-1M, Beauty: benchmarks/README.md, "Training throughput"); the
    # positions count back from the newest item, so the model is the same either way. False: every batch is a
    # uniform shuffle padded to ``max_length``, as before.
    length_aware: bool = True
    # Multi-objective ranking: heads that give each candidate P(click), P(add-to-cart) and P(purchase) if it is the
    # user's next step (``OBJECTIVES``), trained by binary cross-entropy on the furthest funnel event of each step,
    # added to the next-item loss with the weight ``objective_weight``. Off by default: without heads the model, its
    # version and its exports are those of earlier releases.
    objectives: bool = False
    objective_weight: float = 0.5

    def __post_init__(self):
        if self.objective_weight < 0:
            raise ValueError(f"objective_weight must not be negative; got {self.objective_weight}")


@dataclass(frozen=True)
class TwoTowerConfig:
    """The retrieval model; defaults that work on every bundled dataset without per-dataset tuning."""

    dim: int = 64
    history_length: int = 50  # most recent items the query tower reads
    temperature: float = 0.05  # fixed: cosine logits need a sharp softmax, and learning it destabilises log-Q
    id_dropout: float = 0.25  # share of items trained without their id embedding, so content alone ranks them
    negatives: int = 256  # uniform mixed negatives per batch, shared by every row
    logq_correction: bool = True
    cuts_per_user: int = 8  # (history, next item) examples drawn per user and epoch by the training recipe
    lr: float = 1e-3  # unless TrainConfig.lr sets one


@dataclass(frozen=True)
class RetrainConfig:
    """Incremental retraining (``recstack retrain``, ``recstack loop``): how much to train and what to replay."""

    # Warm-started epochs on the users with new events and the replay sample, validated once, after the last: the
    # serving weights are a good start, and a validation pass over every user costs more than such an epoch.
    epochs: int = 2
    replay: float = 1.0  # older users replayed per user with new events, so the model does not forget them

    def __post_init__(self):
        if self.epochs < 1 or self.replay < 0:
            raise ValueError(f"retrain needs epochs >= 1 and replay >= 0; got {self.epochs}, {self.replay}")


@dataclass(frozen=True)
class GateConfig:
    """The quality gate between a retrained candidate and the serving version (:mod:`recstack.training.gate`)."""

    metric: str = "ndcg@10"
    # The candidate may fall this share below the serving version and still be published: the held-out window of
    # one round is small, and its noise must not block every update.
    tolerance: float = 0.05
    min_users: int = 20  # with fewer held-out users of new events, every test user is the window

    def __post_init__(self):
        if not 0 <= self.tolerance <= 1 or self.min_users < 1:
            raise ValueError(f"gate tolerance must be within [0, 1] and min_users >= 1; got {self.tolerance}, "
                             f"{self.min_users}")
