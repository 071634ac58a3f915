"""One device helper for every stage: the same question, the same names, the same errors."""

import pytest
from recstack.ensemble.build import instance_kind
from recstack.preprocessing.engine import resolve_engine
from recstack.training.runtime import pick_device

from recstack import devices


def test_auto_follows_what_the_machine_has():
    has_gpu = devices.gpu_count() > 0
    assert devices.resolve("auto") == ("gpu" if has_gpu else "cpu")
    assert instance_kind("auto") == ("KIND_GPU" if has_gpu else "KIND_CPU")
    assert pick_device("auto").type == ("cuda" if has_gpu else "cpu")


def test_every_stage_names_the_gpu_alike_and_refuses_a_missing_one(monkeypatch):
    monkeypatch.setattr(devices, "gpu_count", lambda: 0)
    assert instance_kind("gpu") == "KIND_GPU"  # a repository for a GPU host may be built anywhere
    with pytest.raises(RuntimeError, match="no usable GPU"):
        devices.resolve("gpu")
    with pytest.raises(ValueError, match="unknown device"):
        devices.resolve("tpu")
    assert resolve_engine("cpu") == "cpu" and instance_kind("cpu") == "KIND_CPU"


@pytest.mark.skipif(devices.gpu_count() > 0, reason="checks the refusal on a machine without a GPU")
def test_asking_for_a_gpu_without_one_says_so_in_each_stage():
    for ask in (lambda: pick_device("gpu"), lambda: pick_device("cuda"), lambda: resolve_engine("gpu")):
        with pytest.raises(RuntimeError, match="no usable GPU"):
            ask()


def test_the_driver_list_answers_without_torch(monkeypatch, tmp_path):
    """The torch-free roles count the NVIDIA driver's devices, within CUDA_VISIBLE_DEVICES."""
    for gpu in ("0000:01:00.0", "0000:02:00.0"):
        (tmp_path / gpu).mkdir()
    monkeypatch.setattr(devices, "NVIDIA_DRIVER_GPUS", tmp_path)
    monkeypatch.setattr(devices.importlib.util, "find_spec", lambda name: None)
    devices.gpu_count.cache_clear()
    try:
        monkeypatch.delenv("CUDA_VISIBLE_DEVICES", raising=False)
        assert devices.gpu_count() == 2
        devices.gpu_count.cache_clear()
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "1")
        assert devices.gpu_count() == 1
        devices.gpu_count.cache_clear()
        monkeypatch.setenv("CUDA_VISIBLE_DEVICES", "")
        assert devices.gpu_count() == 0
    finally:
        devices.gpu_count.cache_clear()


def test_usable_cores_follow_the_affinity_mask_not_the_machine():
    import os

    assert 1 <= devices.usable_cores() == len(os.sched_getaffinity(0)) <= os.cpu_count()
