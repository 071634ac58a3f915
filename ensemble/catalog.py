"""What the serving models know about items: ids, titles, categories, freshness, trending scores, vectors and
co-visitation lists, indexed by the item index of the preprocessing vocabularies.

Built once from a prepared dataset and the two-tower export (:meth:`Catalog.build`), written to a folder
(:meth:`Catalog.save`) inside each model version of the repository, read by the Triton python models and by
the in-process funnel alike (:meth:`Catalog.load`).
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import polars as pl
from recstack.ensemble.config import FRESHNESS_DAYS
from recstack.preprocessing.layout import PreparedLayout
from recstack.preprocessing.vocabulary import FIRST_INDEX

COVISITATION_KINDS = ("also_viewed", "bought_together")
CATALOG_FILE = "catalog.parquet"
VECTORS_FILE = "item_embeddings.npy"
COVISITATION_FILE = "covisitation.npz"
RULES_FILE = "rules.json"


@dataclass(frozen=True)
class BusinessRules:
    """Merchandising rules the re-rank stage applies: items that must not be shown (out of stock,
    withdrawn) and items promoted into fixed positions (0-based), by raw item id."""

    unavailable: tuple[str, ...] = ()
    promoted: tuple[tuple[str, int], ...] = ()

    @classmethod
    def load(cls, path: str | Path | None) -> BusinessRules:
        """Rules from a JSON file (none when ``path`` is None); a missing file or a bad entry is an error."""
        if path is None:
            return cls()
        if not Path(path).exists():
            raise FileNotFoundError(f"rules file {path} does not exist")
        raw = json.loads(Path(path).read_text())
        unknown = set(raw) - {"unavailable", "promoted"}
        if unknown:
            raise ValueError(f"{path}: unknown keys {sorted(unknown)}; expected 'unavailable' and 'promoted'")
        if not isinstance(raw.get("unavailable", []), list) or not isinstance(raw.get("promoted", []), list):
            raise ValueError(f"{path}: 'unavailable' is a list of item ids, 'promoted' a list of "
                             "{'item_id': ..., 'position': ...}")
        promoted = tuple((str(p["item_id"]), int(p["position"])) for p in raw.get("promoted", []))
        if any(position < 0 for _, position in promoted):
            raise ValueError(f"{path}: promoted positions are 0-based and must not be negative")
        for what, values in (("items", [i for i, _ in promoted]), ("positions", [p for _, p in promoted])):
            if len(set(values)) != len(values):
                raise ValueError(f"{path}: promoted {what} must be distinct")
        return cls(tuple(str(i) for i in raw.get("unavailable", [])), promoted)

    def save(self, path: str | Path) -> None:
        payload = {"unavailable": list(self.unavailable),
                   "promoted": [{"item_id": i, "position": p} for i, p in self.promoted]}
        Path(path).write_text(json.dumps(payload, indent=2) + "\n")


@dataclass
class Covisitation:
    """Top co-occurring items per item, as CSR arrays: neighbours of ``a`` are
    ``indices[indptr[a]:indptr[a+1]]`` with ``counts`` in the same order (most frequent first)."""

    indptr: np.ndarray
    indices: np.ndarray
    counts: np.ndarray

    @classmethod
    def from_pairs(cls, pairs: pl.DataFrame, n_items: int) -> Covisitation:
        pairs = pairs.sort(["item_a", "count", "item_b"], descending=[False, True, False])
        a = pairs["item_a"].to_numpy().astype(np.int64)
        indptr = np.zeros(n_items + 1, dtype=np.int64)
        np.add.at(indptr, a + 1, 1)
        return cls(np.cumsum(indptr), pairs["item_b"].to_numpy().astype(np.int64),
                   pairs["count"].to_numpy().astype(np.float32))

    def neighbours(self, item: int) -> tuple[np.ndarray, np.ndarray]:
        if item < 0 or item + 1 >= len(self.indptr):
            return self.indices[:0], self.counts[:0]
        start, end = self.indptr[item], self.indptr[item + 1]
        return self.indices[start:end], self.counts[start:end]


@dataclass
class Catalog:
    """Per-item arrays, row ``i`` for item index ``i`` (rows 0 and 1, padding and OOV, are never served).

    Examples
    --------
    >>> catalog = Catalog.load("build/model_repository/retrieve/1")  # doctest: +SKIP
    >>> catalog.item_ids[catalog.trending(3)]  # doctest: +SKIP
    array(['i0000658', 'i0001452', 'i0000071'], dtype=object)
    """

    item_ids: np.ndarray  # object (str); None for padding rows
    titles: np.ndarray  # object (str)
    categories: np.ndarray  # object (str), "" when unknown
    category_idx: np.ndarray  # int64
    is_new: np.ndarray  # bool: created (or first seen) within the freshness window
    available: np.ndarray  # bool: servable (not padding, not withdrawn by the rules)
    popularity: np.ndarray  # float32: recent, event-type-weighted popularity
    vectors: np.ndarray  # float32 (n_items, dim), unit rows: the two-tower item embeddings
    covisitation: dict[str, Covisitation]
    rules: BusinessRules
    # float32: business value (the item's price; 0 when unknown) that the re-rank's revenue objective weighs.
    # Out-of-stock items are withdrawn by the rules (``available``), so they earn nothing and are never shown.
    value: np.ndarray | None = None

    def __post_init__(self):
        if self.value is None:  # a catalog saved before values were kept: no item earns anything
            self.value = np.zeros(len(self.item_ids), dtype=np.float32)

    def __len__(self) -> int:
        return len(self.item_ids)

    @property
    def dim(self) -> int:
        return self.vectors.shape[1]

    def index_of(self, item_ids: list[str]) -> np.ndarray:
        """Item indices of raw ids, -1 for unknown ones."""
        lookup = getattr(self, "_lookup", None)
        if lookup is None:
            lookup = {item: i for i, item in enumerate(self.item_ids) if item is not None}
            self._lookup = lookup
        return np.array([lookup.get(str(i), -1) for i in item_ids], dtype=np.int64)

    def title_of(self, item: int) -> str:
        return self.titles[item] or self.item_ids[item] or f"item {item}"

    def trending(self, limit: int, category: str = "") -> np.ndarray:
        """Indices of the most popular available items right now, optionally within one category."""
        mask = self.available & (self.categories == category) if category else self.available
        candidates = np.flatnonzero(mask)
        order = np.lexsort((candidates, -self.popularity[candidates]))
        return candidates[order[:limit]]

    @classmethod
    def build(cls, data_dir: str | Path, vectors: np.ndarray, rules: BusinessRules = BusinessRules(),
              freshness_days: float = FRESHNESS_DAYS) -> Catalog:
        """From a prepared dataset folder (:mod:`recstack.preprocessing.pipeline` layout) and item vectors."""
        data_dir = Path(data_dir)
        layout = PreparedLayout(data_dir)
        items = pl.read_parquet(layout.items).sort("item_idx")
        n = items.height
        if vectors.shape[0] != n:
            raise ValueError(f"{vectors.shape[0]} item vectors for {n} catalog rows: the two-tower export and the "
                             f"prepared data in {data_dir} do not belong together")
        stats = pl.read_parquet(layout.item_stats)
        names = pl.read_parquet(layout.vocabulary("category"))
        items = (items.join(stats.select("item_idx", "recent_popularity", "first_seen", "last_seen"),
                            on="item_idx", how="left", maintain_order="left")
                 .join(names.select(pl.col("index").alias("category_idx"), pl.col("raw").alias("category")),
                       on="category_idx", how="left", maintain_order="left"))
        reference = stats["last_seen"].max()
        first_seen_age = (reference - items["first_seen"]).dt.total_seconds() / 86400.0 if reference else None
        age = items["age_days"].to_numpy().astype(np.float64) if "age_days" in items.columns else np.full(n, np.nan)
        if first_seen_age is not None:
            age = np.where(np.isnan(age), first_seen_age.fill_null(np.nan).to_numpy(), age)
        real = np.arange(n) >= FIRST_INDEX
        # An item never interacted with and without a creation date is new by definition.
        is_new = real & (np.nan_to_num(age, nan=0.0) <= freshness_days)
        item_ids = np.array(items["item_id"].to_list(), dtype=object)
        titles = items["title"].to_list() if "title" in items.columns else [None] * n
        catalog = cls(
            item_ids=item_ids,
            titles=np.array([t or i for t, i in zip(titles, item_ids, strict=True)], dtype=object),
            categories=np.array([c or "" for c in items["category"].to_list()], dtype=object),
            category_idx=items["category_idx"].to_numpy().astype(np.int64),
            is_new=is_new,
            available=real.copy(),
            popularity=items["recent_popularity"].fill_null(0.0).to_numpy().astype(np.float32),
            vectors=np.ascontiguousarray(vectors, dtype=np.float32),
            covisitation={},
            rules=rules,
            value=_prices(items),
        )
        pairs = pl.read_parquet(PreparedLayout(data_dir).cooccurrence)
        for kind in COVISITATION_KINDS:
            catalog.covisitation[kind] = Covisitation.from_pairs(pairs.filter(pl.col("kind") == kind), n)
        catalog.apply_rules()
        return catalog

    def extend(self, features: pl.DataFrame, vectors: np.ndarray, category_names: dict[int, str],
               freshness_days: float) -> None:
        """Append items added after training (rows from ``Workflow.encode_new_items``, indices continuing
        this catalog's) with their content vectors; they have no co-visitation yet."""
        if not features.height:
            return
        first = int(features["item_idx"][0])
        if first != len(self) or not np.array_equal(features["item_idx"].to_numpy(),
                                                    np.arange(first, first + features.height)):
            raise ValueError(f"new items must take indices {len(self)}.. in order")
        ids = features["item_id"].to_list()
        titles = [t or i for t, i in zip(features["title"].to_list(), ids, strict=True)]
        category_idx = features["category_idx"].to_numpy().astype(np.int64)
        age = features["age_days"].cast(pl.Float64).fill_null(np.nan).to_numpy()
        self.item_ids = np.concatenate([self.item_ids, np.array(ids, dtype=object)])
        self.titles = np.concatenate([self.titles, np.array(titles, dtype=object)])
        self.categories = np.concatenate([self.categories, np.array(
            [category_names.get(int(c), "") for c in category_idx], dtype=object)])
        self.category_idx = np.concatenate([self.category_idx, category_idx])
        self.is_new = np.concatenate([self.is_new, np.nan_to_num(age, nan=0.0) <= freshness_days])
        self.available = np.concatenate([self.available, np.ones(len(ids), dtype=bool)])
        self.popularity = np.concatenate([self.popularity, np.zeros(len(ids), dtype=np.float32)])
        self.value = np.concatenate([self.value, _prices(features)])
        self.vectors = np.ascontiguousarray(np.concatenate([self.vectors, vectors.astype(np.float32)]))
        for co in self.covisitation.values():
            co.indptr = np.concatenate([co.indptr, np.full(len(ids), co.indptr[-1])])
        self._lookup = None  # rebuilt on the next lookup
        self.apply_rules()

    def apply_rules(self) -> None:
        withdrawn = self.index_of(list(self.rules.unavailable))
        self.available[withdrawn[withdrawn >= 0]] = False

    def save(self, folder: str | Path) -> Path:
        folder = Path(folder)
        folder.mkdir(parents=True, exist_ok=True)
        pl.DataFrame({"item_id": self.item_ids.tolist(), "title": self.titles.tolist(),
                      "category": self.categories.tolist(), "category_idx": self.category_idx,
                      "is_new": self.is_new, "available": self.available, "popularity": self.popularity,
                      "value": self.value},
                     schema_overrides={"item_id": pl.String, "title": pl.String}).write_parquet(folder / CATALOG_FILE)
        np.save(folder / VECTORS_FILE, self.vectors)
        arrays = {}
        for kind, co in self.covisitation.items():
            arrays |= {f"{kind}_indptr": co.indptr, f"{kind}_indices": co.indices, f"{kind}_counts": co.counts}
        np.savez(folder / COVISITATION_FILE, **arrays)
        self.rules.save(folder / RULES_FILE)
        return folder

    @classmethod
    def load(cls, folder: str | Path) -> Catalog:
        folder = Path(folder)
        table = pl.read_parquet(folder / CATALOG_FILE)
        with np.load(folder / COVISITATION_FILE) as arrays:
            covisitation = {kind: Covisitation(arrays[f"{kind}_indptr"], arrays[f"{kind}_indices"],
                                               arrays[f"{kind}_counts"])
                            for kind in COVISITATION_KINDS if f"{kind}_indptr" in arrays}
        return cls(item_ids=np.array(table["item_id"].to_list(), dtype=object),
                   titles=np.array(table["title"].to_list(), dtype=object),
                   categories=np.array(table["category"].to_list(), dtype=object),
                   category_idx=table["category_idx"].to_numpy().astype(np.int64),
                   is_new=table["is_new"].to_numpy(), available=table["available"].to_numpy().copy(),
                   popularity=table["popularity"].to_numpy().astype(np.float32),
                   vectors=np.load(folder / VECTORS_FILE), covisitation=covisitation,
                   rules=BusinessRules.load(folder / RULES_FILE),
                   value=table["value"].to_numpy().astype(np.float32) if "value" in table.columns else None)


def _prices(items: pl.DataFrame) -> np.ndarray:
    """The items' business value: their price, 0 where unknown (or not positive)."""
    if "price" not in items.columns:
        return np.zeros(items.height, dtype=np.float32)
    return np.maximum(items["price"].cast(pl.Float64).fill_null(0.0).fill_nan(0.0).to_numpy(), 0.0).astype(np.float32)
