import numpy as np
import pytest
import torch
from recstack.training import factorisation
from recstack.training.baselines import MostPopular
from recstack.training.evaluate import evaluate
from recstack.training.factorisation import ALS, BPR, implicit_device

from recstack import devices


def test_als_scores_a_history_it_never_saw_in_training(prepared):
    model = ALS(prepared, device="cpu")
    seq = prepared.train_sequences[0]
    short, longer = model([seq[:2]], np.array([0]))[0], model([seq], np.array([0]))[0]
    assert not torch.allclose(short, longer)  # the factors follow the history given, not the training row


def test_implicit_threads_follow_the_cores_this_process_may_use(prepared, monkeypatch):
    monkeypatch.setattr(devices, "usable_cores", lambda: 1)
    assert ALS(prepared, iterations=1, device="cpu").model.num_threads == 1


def test_the_gpu_is_used_only_where_implicit_can_and_asked_for_without_one_is_refused(monkeypatch):
    monkeypatch.setattr(devices, "gpu_count", lambda: 0)
    assert implicit_device("auto") == "cpu"
    with pytest.raises(RuntimeError, match="no usable GPU"):
        implicit_device("gpu")


@pytest.mark.gpu
@pytest.mark.parametrize("kind", [ALS, BPR])
def test_on_a_gpu_implicits_cuda_models_fit_and_beat_popularity(prepared, kind):
    try:
        factorisation.implicit_device("gpu")
    except RuntimeError as exc:
        pytest.skip(f"implicit's CUDA build cannot run here: {exc}")
    model = kind(prepared)
    assert model.device == "gpu"
    popular = evaluate(MostPopular(prepared), prepared, prepared.valid)["ndcg@10"]
    assert evaluate(model, prepared, prepared.valid)["ndcg@10"] > popular * 1.5
