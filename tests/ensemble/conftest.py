import faiss
import numpy as np
import pytest
from recstack.ensemble.catalog import BusinessRules, Catalog, Covisitation


def make_catalog(categories: list[str], vectors: np.ndarray | None = None, is_new: list[int] = (),
                 popularity: list[float] | None = None, covisited: dict[int, list[int]] | None = None,
                 rules: BusinessRules | None = None, dim: int = 8, seed: int = 0) -> Catalog:
    """Items 2.. with the given categories (rows 0 and 1 are padding/OOV), unit vectors, ids ``i<idx>`` and
    titles ``Title <idx>``."""
    n = len(categories) + 2
    if vectors is None:
        vectors = np.random.default_rng(seed).normal(size=(n, dim))
    vectors = (vectors / np.linalg.norm(vectors, axis=1, keepdims=True)).astype(np.float32)
    new = np.zeros(n, dtype=bool)
    new[list(is_new)] = True
    covisited = covisited or {}
    pairs = sorted((a, b) for a, bs in covisited.items() for b in bs)
    counts = {a: len(bs) for a, bs in covisited.items()}
    indptr = np.zeros(n + 1, dtype=np.int64)
    for a, _ in pairs:
        indptr[a + 1] += 1
    co = Covisitation(np.cumsum(indptr), np.array([b for a in sorted(covisited) for b in covisited[a]], np.int64),
                      np.array([counts[a] - j for a in sorted(covisited) for j in range(len(covisited[a]))],
                               np.float32))
    names = ["", ""] + list(categories)
    catalog = Catalog(
        item_ids=np.array([None, None] + [f"i{i}" for i in range(2, n)], dtype=object),
        titles=np.array([None, None] + [f"Title {i}" for i in range(2, n)], dtype=object),
        categories=np.array(names, dtype=object),
        category_idx=np.array([sorted(set(names)).index(c) for c in names], dtype=np.int64),
        is_new=new, available=np.arange(n) >= 2,
        popularity=np.array(popularity if popularity is not None else [0, 0] + list(range(n - 2, 0, -1)),
                            dtype=np.float32),
        vectors=vectors, covisitation={"also_viewed": co, "bought_together": Covisitation(
            np.zeros(n + 1, np.int64), np.zeros(0, np.int64), np.zeros(0, np.float32))},
        rules=rules or BusinessRules())
    catalog.apply_rules()
    return catalog


def flat_index(catalog: Catalog) -> faiss.Index:
    index = faiss.IndexFlatIP(catalog.dim)
    index.add(catalog.vectors)
    return index


@pytest.fixture
def small_catalog() -> Catalog:
    return make_catalog(["a", "a", "a", "b", "b", "c", "c", "d", "d", "d"])


class ClientLoad:
    """Three clients (one HTTP, two gRPC) asking a Triton server for ``histories`` in a loop, as a shop's traffic
    would while versions switch: every answer with the time its request started, every failure counted."""

    def __init__(self, server, histories: list):
        import threading

        self.histories, self.stop = histories, threading.Event()
        self.answers: list = []  # (request start, first list)
        self.errors: list[str] = []
        self.threads = [threading.Thread(target=self._ask, args=args) for args in
                        (("http", server.http_url), ("grpc", server.grpc_url), ("grpc", server.grpc_url))]

    def _ask(self, protocol: str, url: str) -> None:
        import time

        from recstack.client.triton import TritonRecommender

        with TritonRecommender(url, protocol) as client:
            while not self.stop.is_set():
                try:
                    started = time.monotonic()
                    self.answers.append((started, client.recommend(self.histories, limit=10)[0]))
                except Exception as exc:  # noqa: BLE001 - every failure is counted
                    self.errors.append(repr(exc))

    def __enter__(self) -> "ClientLoad":
        for thread in self.threads:
            thread.start()
        return self

    def __exit__(self, *_) -> None:
        self.stop.set()
        for thread in self.threads:
            thread.join()
