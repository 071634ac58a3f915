import polars as pl
import pytest
from recstack.preprocessing.engine import collect, gpu_available, resolve_engine
from recstack.preprocessing.pipeline import preprocess
from recstack.preprocessing.schema import RawDataset

from tests.preprocessing.helpers import CATALOG, SHOP


def test_auto_resolves_to_the_cpu_without_a_working_gpu():
    assert resolve_engine("auto") == ("gpu" if gpu_available() else "cpu")
    assert resolve_engine("cpu") == "cpu"


@pytest.mark.skipif(gpu_available(), reason="this machine has a GPU")
def test_asking_for_the_gpu_without_one_is_a_clear_error():
    with pytest.raises(RuntimeError, match="cudf-polars"):
        resolve_engine("gpu")


def test_unknown_engine_is_rejected():
    with pytest.raises(ValueError, match="unknown engine"):
        resolve_engine("tpu")


@pytest.mark.gpu
def test_gpu_engine_gives_the_same_tables_as_the_cpu(tmp_path):
    if not gpu_available():
        pytest.skip("cudf-polars cannot run a plan on this GPU (install the [gpu] extra)")
    data = RawDataset("shop", SHOP, CATALOG)
    cpu = preprocess(data, tmp_path / "cpu", engine="cpu", progress=False)
    gpu = preprocess(data, tmp_path / "gpu", engine="gpu", progress=False)
    assert gpu.engine == "gpu" and cpu.counts == gpu.counts
    for name in cpu.files:
        assert pl.read_parquet(tmp_path / "cpu" / name).equals(pl.read_parquet(tmp_path / "gpu" / name)), name
    plan = pl.LazyFrame({"a": [3, 1, 2]}).sort("a")
    assert collect(plan, "gpu").equals(collect(plan, "cpu"))
