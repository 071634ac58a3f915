"""Two-tower retrieval: an item tower over ids and content, a query tower over the user's recent items,
trained with a sampled softmax over in-batch positives and uniform "mixed" negatives (Yang et al. 2020),
log-Q corrected (Yi et al. 2019) so popular items are not over-penalised for being sampled often.

Both towers end in L2-normalised vectors, so retrieval is a maximum inner product (= cosine) search
that FAISS serves directly from :meth:`TwoTower.item_embeddings`.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
from recstack.preprocessing.vocabulary import FIRST_INDEX
from recstack.training.config import TwoTowerConfig
from torch import nn
from torch.nn import functional as F

_COLUMNS = ("category", "brand", "price_bucket", "title_tokens", "has_id")  # ItemFeatures' tensors


@dataclass(frozen=True)
class ItemFeatures:
    """Content of every item index (row ``i`` describes item ``i``; 0 = padding/unknown in every column).

    Attributes
    ----------
    category, brand, price_bucket : torch.Tensor
        int64, one value per item.
    title_tokens : torch.Tensor
        int64, items × width, token indices left-aligned and padded with 0.
    has_id : torch.Tensor
        bool per item: its id embedding was trained (it had training interactions). Items without one
        (cold items, padding, OOV) are embedded from their content only.
    cardinalities : tuple of int
        Embedding table sizes of category, brand, price bucket and title token.

    Examples
    --------
    >>> features = ItemFeatures.from_arrays(category=np.array([0, 0, 2, 3]), brand=np.array([0, 0, 2, 2]),
    ...                                     price_bucket=np.array([0, 0, 1, 4]), titles=[[], [], [2, 5], [3]])
    >>> len(features), features.title_tokens.shape, features.cardinalities
    (4, torch.Size([4, 2]), (4, 3, 5, 6))
    """

    category: torch.Tensor
    brand: torch.Tensor
    price_bucket: torch.Tensor
    title_tokens: torch.Tensor
    has_id: torch.Tensor
    cardinalities: tuple[int, int, int, int]

    def __len__(self) -> int:
        return len(self.category)

    @classmethod
    def from_arrays(cls, category: np.ndarray, brand: np.ndarray, price_bucket: np.ndarray,
                    titles: list, has_id: np.ndarray | None = None,
                    cardinalities: tuple[int, int, int, int] | None = None) -> ItemFeatures:
        """Features from one array per column (``titles``: one token sequence per item).

        ``has_id`` defaults to every real item (index >= 2); ``cardinalities`` to the largest index + 1.
        """
        n = len(category)
        if not (len(brand) == len(price_bucket) == len(titles) == n):
            raise ValueError(f"feature columns differ in length: category {n}, brand {len(brand)}, "
                             f"price_bucket {len(price_bucket)}, titles {len(titles)}")
        width = max(1, max((len(t) for t in titles), default=0))
        tokens = np.zeros((n, width), dtype=np.int64)
        for row, title in enumerate(titles):
            tokens[row, :len(title)] = title
        if has_id is None:
            has_id = np.arange(n) >= FIRST_INDEX
        columns = [np.asarray(c, dtype=np.int64) for c in (category, brand, price_bucket)] + [tokens]
        observed = tuple(int(c.max(initial=0)) + 1 for c in columns)
        if cardinalities is None:
            cardinalities = observed
        elif any(size < seen for size, seen in zip(cardinalities, observed, strict=True)):
            raise ValueError(f"feature indices {observed} exceed the table sizes {cardinalities}")
        as_tensor = [torch.from_numpy(c) for c in columns]
        return cls(*as_tensor, torch.from_numpy(np.asarray(has_id, dtype=bool)), tuple(cardinalities))

    @classmethod
    def from_prepared(cls, data) -> ItemFeatures:
        """The item table of a :class:`recstack.training.data.PreparedData`; ids count as trained where the item
        has training events."""
        items = data.items.sort("item_idx")
        idx = items["item_idx"].to_numpy().astype(np.int64)
        if len(idx) != data.n_items or (idx != np.arange(data.n_items)).any():
            raise ValueError(f"items.parquet in {data.folder} must hold every item index 0..{data.n_items - 1} "
                             f"once (it has {len(idx)} rows)")
        offsets = np.concatenate([[0], np.cumsum(items["title_tokens"].list.len().to_numpy().astype(np.int64))])
        flat = items["title_tokens"].explode().drop_nulls().to_numpy().astype(np.int64)
        titles = [flat[offsets[i]:offsets[i + 1]] for i in range(len(idx))]
        sizes = data.manifest.vocabulary_sizes
        buckets = data.manifest.workflow.get("price_buckets", 0) + 1
        columns = (items["category_idx"].to_numpy(), items["brand_idx"].to_numpy(),
                   items["price_bucket"].to_numpy())
        # Vocabulary sizes, not the largest index seen, so a later catalog's items fit the same tables.
        declared = (sizes.get("category", 0), sizes.get("brand", 0), buckets, sizes.get("title_token", 0))
        observed = [int(c.max(initial=0)) + 1 for c in columns] + [int(flat.max(initial=0)) + 1]
        return cls.from_arrays(*columns, titles, has_id=data.item_popularity() > 0,
                               cardinalities=tuple(max(a, b) for a, b in zip(declared, observed, strict=True)))

    def to(self, device: torch.device | str) -> ItemFeatures:
        return ItemFeatures(*(getattr(self, name).to(device) for name in _COLUMNS), self.cardinalities)


def _rows(table: torch.Tensor, index: torch.Tensor) -> torch.Tensor:
    """``table[index]`` for an index of any shape. On a multi-threaded CPU the backward of ``table[index]``
    adds up repeated indices in a varying order, which breaks bit-exact resumes; index_select's does not."""
    return table.index_select(0, index.flatten()).view(*index.shape, table.shape[-1])


class ItemTower(nn.Module):
    """id + category + brand + price bucket + mean title-token embeddings → MLP → unit vector."""

    def __init__(self, n_items: int, cardinalities: tuple[int, int, int, int], dim: int):
        super().__init__()
        self.item_id = nn.Embedding(n_items, dim, padding_idx=0)
        self.category, self.brand, self.price, self.title = (
            nn.Embedding(size, dim, padding_idx=0) for size in cardinalities)
        # No bias at the output: one shared by every item pulls all vectors toward a single direction (items
        # start at a mean cosine of ~0.9 with it, and training stalls before they separate).
        self.mlp = nn.Sequential(nn.Linear(5 * dim, 2 * dim), nn.GELU(), nn.Linear(2 * dim, dim, bias=False))
        for table in (self.item_id, self.category, self.brand, self.price, self.title):
            nn.init.normal_(table.weight, std=dim ** -0.5)
            with torch.no_grad():
                table.weight[0].zero_()

    def forward(self, indices: torch.Tensor, features: ItemFeatures, use_id: torch.Tensor) -> torch.Tensor:
        return self.embed(indices, features.category[indices], features.brand[indices],
                          features.price_bucket[indices], features.title_tokens[indices], use_id)

    def embed(self, item_idx: torch.Tensor, category: torch.Tensor, brand: torch.Tensor, price_bucket: torch.Tensor,
              title_tokens: torch.Tensor, use_id: torch.Tensor) -> torch.Tensor:
        """Unit vectors from one row of features per item (the exported item tower's inputs)."""
        present = (title_tokens != 0).unsqueeze(-1)
        # A masked mean rather than EmbeddingBag: it exports to ONNX and gives 0 for an empty title.
        title = (self.title(title_tokens) * present).sum(1) / present.sum(1).clamp(min=1)
        parts = [self.item_id(item_idx) * use_id.unsqueeze(-1), self.category(category), self.brand(brand),
                 self.price(price_bucket), title]
        return F.normalize(self.mlp(torch.cat(parts, dim=-1)), dim=-1)


class TwoTower(nn.Module):
    """Item tower and query tower sharing one item representation.

    The query tower reads the user's recent items through the item tower's output rather than an id table
    of its own: one set of item parameters learns from both sides (data-efficient on sparse logs), cold items
    in a history are represented by their content, and at serving time the history lookup uses the very
    table the FAISS index is built from. Pooling is a one-layer attention whose logits get a learned bias per
    recency slot, and the newest item is also fed to the MLP directly (next-item signal).

    Parameters
    ----------
    features : ItemFeatures
        The training catalog; kept on the model (not in checkpoints) for :meth:`score_all` and :meth:`loss`.
    popularity : np.ndarray, optional
        How often each item index is a training positive (any scale); the in-batch sampling distribution
        of the log-Q correction. ``None``: uniform over real items.

    Examples
    --------
    >>> features = ItemFeatures.from_arrays(np.arange(8) % 3, np.arange(8) % 2, np.arange(8) % 4,
    ...                                     [[t] for t in range(8)])
    >>> model = TwoTower(features, TwoTowerConfig(dim=16, history_length=4, negatives=8)).eval()
    >>> seq = torch.tensor([[0, 0, 3, 5], [2, 7, 6, 4]])
    >>> model.query(seq).shape, model.score_all(seq).shape, model.item_embeddings().shape
    (torch.Size([2, 16]), torch.Size([2, 8]), torch.Size([8, 16]))
    >>> loss = model.train().loss(seq, torch.tensor([6, 3]), generator=torch.Generator().manual_seed(0))
    """

    def __init__(self, features: ItemFeatures, config: TwoTowerConfig = TwoTowerConfig(),
                 popularity: np.ndarray | None = None):
        super().__init__()
        if len(features) <= FIRST_INDEX:
            raise ValueError(f"the catalog has no real items ({len(features)} rows, real items start at "
                             f"{FIRST_INDEX})")
        self.n_items, self.config = len(features), config
        self.items = ItemTower(self.n_items, features.cardinalities, config.dim)
        self.attention = nn.Linear(config.dim, 1, bias=False)  # a bias would shift every logit alike
        self.recency_bias = nn.Parameter(torch.zeros(config.history_length))
        self.mlp = nn.Sequential(nn.Linear(2 * config.dim, 2 * config.dim), nn.GELU(),
                                 nn.Linear(2 * config.dim, config.dim, bias=False))  # bias: see ItemTower
        self._cardinalities = features.cardinalities
        for name in _COLUMNS:
            self.register_buffer(f"feature_{name}", getattr(features, name), persistent=False)
        if popularity is None:
            popularity = (np.arange(self.n_items) >= FIRST_INDEX).astype(np.float64)
        popularity = np.asarray(popularity, dtype=np.float64)
        if popularity.shape != (self.n_items,) or (popularity < 0).any() or popularity.sum() <= 0:
            raise ValueError(f"popularity must be {self.n_items} non-negative counts, not all zero")
        self.register_buffer("positive_probability", torch.from_numpy(popularity / popularity.sum()).float(),
                             persistent=False)

    @property
    def features(self) -> ItemFeatures:
        """The training catalog, on the model's device."""
        return ItemFeatures(*(getattr(self, f"feature_{name}") for name in _COLUMNS), self._cardinalities)

    def _encode(self, indices: torch.Tensor, features: ItemFeatures, generator: torch.Generator | None = None
                ) -> torch.Tensor:
        # An id never trained (cold items) is left out in training as at serving, so both see the same vector.
        use_id = features.has_id[indices]
        if self.training and self.config.id_dropout > 0:
            keep = torch.rand(indices.shape, device=indices.device, generator=generator) >= self.config.id_dropout
            use_id = use_id & keep
        return self.items(indices, features, use_id.to(self.items.item_id.weight.dtype))

    def item_embeddings(self, features: ItemFeatures | None = None, indices: torch.Tensor | None = None
                        ) -> torch.Tensor:
        """Unit vectors of items (``indices``; default every row of ``features``, PAD and OOV included).

        ``features`` defaults to the training catalog; pass another (e.g. with new, cold items appended) to
        embed items the model never saw, from their content.
        """
        features = self.features if features is None else features
        if indices is None:
            indices = torch.arange(len(features), device=features.category.device)
        return self._encode(indices, features)

    def _pool(self, seq: torch.Tensor, history: torch.Tensor) -> torch.Tensor:
        present = seq != 0
        recency = torch.arange(seq.shape[1] - 1, -1, -1, device=seq.device)
        logits = self.attention(history).squeeze(-1) + self.recency_bias[recency]
        # -inf everywhere would give NaN for an empty history; a finite floor plus the mask gives zeros.
        weights = torch.softmax(logits.float().masked_fill(~present, -1e4), dim=-1) * present
        pooled = (weights.unsqueeze(-1).to(history.dtype) * history).sum(1)
        newest = history[:, -1] * present[:, -1:].to(history.dtype)
        return F.normalize(self.mlp(torch.cat([pooled, newest], dim=-1)), dim=-1)

    def query(self, seq: torch.Tensor, item_vectors: torch.Tensor | None = None) -> torch.Tensor:
        """User vectors (batch × dim) from left-padded item sequences (0 = padding, newest last).

        ``item_vectors`` (from :meth:`item_embeddings`) skips re-running the item tower, as a server does.
        """
        seq = seq[:, -self.config.history_length:]
        if item_vectors is not None:
            return self._pool(seq, _rows(item_vectors, seq))
        unique, inverse = torch.unique(seq, return_inverse=True)
        return self._pool(seq, _rows(self._encode(unique, self.features), inverse))

    def score_all(self, seq: torch.Tensor) -> torch.Tensor:
        """Scores of every item index (batch × n_items); padding and OOV get -inf."""
        items = self.item_embeddings()
        scores = self.query(seq, items) @ items.T
        scores[:, :FIRST_INDEX] = float("-inf")
        return scores

    def sampled_logits(self, seq: torch.Tensor, positives: torch.Tensor, generator: torch.Generator | None = None
                       ) -> tuple[torch.Tensor, torch.Tensor]:
        """Logits of each row against every candidate and the candidates' item indices.

        Candidates are the batch's positives (row ``i``'s own positive is column ``i``) followed by
        ``config.negatives`` uniform items. Accidental hits (another column holding the row's positive) are -inf.
        """
        seq = seq[:, -self.config.history_length:]
        b = len(positives)
        negatives = torch.randint(FIRST_INDEX, self.n_items, (self.config.negatives,), device=positives.device,
                                  generator=generator)
        candidates = torch.cat([positives, negatives])
        # Histories and candidates repeat items heavily: run the item tower once per distinct item.
        unique, inverse = torch.unique(torch.cat([seq.flatten(), candidates]), return_inverse=True)
        vectors = _rows(self._encode(unique, self.features, generator), inverse)
        query = self._pool(seq, vectors[:seq.numel()].view(*seq.shape, -1))
        logits = (query @ vectors[seq.numel():].T).float() / self.config.temperature
        if self.config.logq_correction:
            # Expected times an item enters the candidate set: b draws ∝ positive frequency plus the uniform
            # draws. One value per item, whichever way it was drawn, so duplicates are corrected alike.
            expected = (b * self.positive_probability[candidates]
                        + self.config.negatives / (self.n_items - FIRST_INDEX))
            logits = logits - torch.log(expected.clamp(min=1e-12))
        accidental = candidates.unsqueeze(0) == positives.unsqueeze(1)
        rows = torch.arange(b, device=positives.device)
        accidental[rows, rows] = False
        return logits.masked_fill(accidental, float("-inf")), candidates

    @property
    def loss_kind(self) -> str:
        """In-batch and uniform negatives (:meth:`sampled_logits`), with or without the log-Q correction."""
        return "sampled+logq" if self.config.logq_correction else "sampled"

    def loss(self, seq: torch.Tensor, positives: torch.Tensor, generator: torch.Generator | None = None
             ) -> torch.Tensor:
        """Sampled softmax cross-entropy of each row's next item (``positives``) given its history ``seq``."""
        logits, _ = self.sampled_logits(seq, positives, generator)
        return F.cross_entropy(logits, torch.arange(len(positives), device=positives.device))
