import numpy as np
import pytest
from recstack.ensemble.index import build_index, load_index, save_index


def clustered(n, dim=32, clusters=50, seed=0):
    rng = np.random.default_rng(seed)
    centres = rng.normal(size=(clusters, dim))
    x = centres[rng.integers(0, clusters, n)] + 0.3 * rng.normal(size=(n, dim))
    return (x / np.linalg.norm(x, axis=1, keepdims=True)).astype(np.float32)


def test_auto_is_exact_for_a_small_catalog():
    vectors = clustered(2000)
    index, report = build_index(vectors, vectors[:50])
    assert report.kind == "flat" and report.recall == 1.0
    _, found = index.search(vectors[:3], 1)
    assert found[:, 0].tolist() == [0, 1, 2]


@pytest.mark.parametrize("kind", ["ivf", "ivfpq", "hnsw"])
def test_approximate_index_reaches_the_target_recall(kind, tmp_path):
    vectors = clustered(6000)
    queries = clustered(200, seed=1)
    index, report = build_index(vectors, queries, kind=kind, recall_k=50, target_recall=0.95)
    assert report.kind == kind and report.recall >= 0.95
    assert report.ms_per_query > 0 and report.exact_ms_per_query > 0
    save_index(index, report, tmp_path)
    loaded = load_index(tmp_path, use_gpu=False)
    assert np.array_equal(loaded.search(queries, 50)[1], index.search(queries, 50)[1])


def test_bad_queries_and_kinds_are_refused():
    vectors = clustered(100)
    with pytest.raises(ValueError, match="queries must be"):
        build_index(vectors, vectors[:, :5])
    with pytest.raises(ValueError, match="unknown index kind"):
        build_index(vectors, vectors, kind="lsh")
