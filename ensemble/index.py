"""The retrieval index over item vectors: exact for small catalogs, IVF for large ones, tuned at build time.

One interface, two implementations chosen by the host: faiss-gpu when FAISS sees a GPU, faiss-cpu otherwise
(the same index file; :func:`load_index` moves it to the GPU). Vectors are unit-norm, so inner product is cosine.

From ``PQ_MIN_ITEMS`` items, ``auto`` scans the IVF lists with 4-bit fast-scan product-quantised codes and re-scores
a shortlist of ``REFINE_FACTOR`` × k items (at least ``MIN_SHORTLIST``) exactly (``ivfpq``): faster than plain IVF
at the same recall (benchmarks/README.md, "Measured design decisions").
"""

from __future__ import annotations

import json
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import faiss
import numpy as np
from recstack.ensemble.config import IndexKind

INDEX_FILE = "items.faiss"
INDEX_INFO_FILE = "index.json"
EXACT_MAX_ITEMS = 50_000  # below this, exact search is fast enough (benchmarks/README.md)
PQ_MIN_ITEMS = 500_000
REFINE_FACTOR = 4  # 2 left recall@1000 at 0.82 at 1M items, whatever nprobe
# A shortlist of at least 2,000 lets 200 candidates reach the target recall with a quarter of the nprobe.
MIN_SHORTLIST = 2000


@dataclass
class IndexReport:
    """What was built and how well it matches exact search on sample queries."""

    kind: str
    n_items: int
    dim: int
    params: dict
    recall_k: int  # the depth the funnel searches at (its candidate count)
    recall: float  # mean recall@recall_k against exact search (1.0 for flat)
    recall_at_100: float
    ms_per_query: float  # batch-1 latency of this index on this machine
    exact_ms_per_query: float
    build_seconds: float
    gpu: bool

    def summary(self) -> str:
        gpu = " on GPU" if self.gpu else ""
        return (f"{self.kind} index over {self.n_items:,} items ({self.params}): recall@{self.recall_k} "
                f"{self.recall:.4f}, recall@100 {self.recall_at_100:.4f} vs exact, {self.ms_per_query:.3f} ms/query "
                f"(exact {self.exact_ms_per_query:.3f} ms), built in {self.build_seconds:.1f} s{gpu}")


def gpu_count() -> int:
    get = getattr(faiss, "get_num_gpus", None)
    return get() if get else 0


def _per_query_ms(index: faiss.Index, queries: np.ndarray, k: int) -> float:
    start = time.perf_counter()
    for q in queries:
        index.search(q[None, :], k)
    return (time.perf_counter() - start) * 1000 / len(queries)


def _recall(found: np.ndarray, exact: np.ndarray) -> float:
    hits = [len(np.intersect1d(f[f >= 0], e[e >= 0])) / max((e >= 0).sum(), 1) for f, e in zip(found, exact,
                                                                                               strict=True)]
    return float(np.mean(hits))


def build_index(vectors: np.ndarray, queries: np.ndarray, kind: IndexKind = "auto", recall_k: int = 100,
                target_recall: float = 0.95, max_timed_queries: int = 200, seed: int = 0
                ) -> tuple[faiss.Index, IndexReport]:
    """Build an inner-product index and measure its recall@``recall_k`` against exact search.

    Parameters
    ----------
    vectors : np.ndarray
        (n_items, dim) float32 item vectors; row i is item index i.
    queries : np.ndarray
        Sample query vectors (e.g. query-tower outputs for real users) to tune and measure with.
    kind : {"auto", "flat", "ivf", "ivfpq", "hnsw"}
        ``auto``: exact up to 50,000 items, IVF up to 500,000, IVF with fast-scan PQ and exact re-scoring above.
    recall_k, target_recall : int, float
        For IVF, ``nprobe`` grows by steps of √2 until recall@``recall_k`` reaches ``target_recall`` (or all
        lists); for HNSW, ``efSearch`` doubles.

    Examples
    --------
    >>> index, report = build_index(vectors, queries)  # doctest: +SKIP
    >>> print(report.summary())  # doctest: +SKIP
    flat index over 5,002 items ({}): recall@100 1.0000 vs exact, 0.207 ms/query (exact 0.207 ms), built in 0.0 s
    """
    vectors = np.ascontiguousarray(vectors, dtype=np.float32)
    queries = np.ascontiguousarray(queries, dtype=np.float32)
    n, dim = vectors.shape
    if queries.ndim != 2 or queries.shape[1] != dim:
        raise ValueError(f"queries must be (n, {dim}); got {queries.shape}")
    k = min(recall_k, n)
    start = time.perf_counter()
    exact = faiss.IndexFlatIP(dim)
    exact.add(vectors)
    if kind == "auto":
        kind = "flat" if n <= EXACT_MAX_ITEMS else "ivf" if n < PQ_MIN_ITEMS else "ivfpq"
    params: dict = {}
    if kind == "flat":
        index = exact
    elif kind in ("ivf", "ivfpq"):
        nlist = _nlist(n)
        codes = "Flat" if kind == "ivf" else f"PQ{dim}x4fs,RFlat"
        index = faiss.index_factory(dim, f"IVF{nlist},{codes}", faiss.METRIC_INNER_PRODUCT)
        rng = np.random.default_rng(seed)
        train = vectors[rng.choice(n, min(n, nlist * 64), replace=False)]
        index.train(train)
        index.add(vectors)
        params["nlist"] = nlist
        if kind == "ivfpq":
            params["k_factor"] = max(REFINE_FACTOR, -(-MIN_SHORTLIST // k))
            _apply(index, kind, None, params)
    elif kind == "hnsw":
        index = faiss.IndexHNSWFlat(dim, 32, faiss.METRIC_INNER_PRODUCT)
        index.hnsw.efConstruction = 80
        index.add(vectors)
        params["M"] = 32
    else:
        raise ValueError(f"unknown index kind {kind!r}; expected auto, flat, ivf, ivfpq or hnsw")
    _, truth = exact.search(queries, k)
    recall = recall_100 = 1.0
    if kind != "flat":
        for setting in _search_settings(kind, n, k):
            _apply(index, kind, setting)
            _, found = index.search(queries, k)
            recall = _recall(found, truth)
            if recall >= target_recall:
                break
        params |= {"efSearch": setting} if kind == "hnsw" else {"nprobe": setting}
        depth = min(100, n)
        recall_100 = _recall(index.search(queries, depth)[1], exact.search(queries, depth)[1])
    build_seconds = time.perf_counter() - start
    timed = queries[:max_timed_queries]
    report = IndexReport(kind=kind, n_items=n, dim=dim, params=params, recall_k=k, recall=recall,
                         recall_at_100=recall_100,
                         ms_per_query=_per_query_ms(index, timed, k),
                         exact_ms_per_query=_per_query_ms(exact, timed[: max(1, min(len(timed), 50))], k),
                         build_seconds=build_seconds, gpu=False)
    return index, report


def _nlist(n: int) -> int:
    return int(min(max(16, 4 * np.sqrt(n)), n // 39))


def _search_settings(kind: str, n: int, k: int) -> list[int]:
    if kind in ("ivf", "ivfpq"):
        # Steps of √2, not 2: a doubling overshoots the target recall by up to twice the search cost.
        nlist = _nlist(n)
        steps = sorted({int(round(2 ** (i / 2))) for i in range(int(2 * np.log2(nlist)) + 1)})
        return [p for p in steps if p < nlist] + [nlist]
    return [ef for ef in (64, 128, 256, 512, 1024, 2048) if ef >= k] or [k]


def _apply(index: faiss.Index, kind: str, setting: int | None, params: dict | None = None) -> None:
    """Set the search depth (``setting``) and, for ``ivfpq``, the re-scoring factor of ``params``."""
    if kind in ("ivf", "ivfpq") and setting is not None:
        faiss.extract_index_ivf(index).nprobe = setting
    elif kind == "hnsw" and setting is not None:
        index.hnsw.efSearch = setting
    if kind == "ivfpq" and params and "k_factor" in params:
        index.k_factor = float(params["k_factor"])


def save_index(index: faiss.Index, report: IndexReport, folder: str | Path) -> None:
    folder = Path(folder)
    faiss.write_index(index, str(folder / INDEX_FILE))
    (folder / INDEX_INFO_FILE).write_text(json.dumps(asdict(report), indent=2) + "\n")


def load_index(folder: str | Path, use_gpu: bool = False, threads: int | None = None) -> faiss.Index:
    """Read the index and its search setting; with ``use_gpu`` (a ``KIND_GPU`` instance) and a GPU that FAISS
    sees, move a flat or IVF index there (FAISS has no GPU HNSW nor fast-scan PQ: those stay on the CPU)."""
    folder = Path(folder)
    info = json.loads((folder / INDEX_INFO_FILE).read_text())
    index = faiss.read_index(str(folder / INDEX_FILE))
    params = info["params"]
    depth = params.get("nprobe", params.get("efSearch"))
    _apply(index, info["kind"], None if depth is None else int(depth), params)
    if threads:
        faiss.omp_set_num_threads(threads)
    if use_gpu and info["kind"] in ("flat", "ivf") and gpu_count() > 0:
        index = faiss.index_cpu_to_all_gpus(index)
    return index
