"""The tensor specs are the one declaration of the serving graph: consistent with themselves and with the code."""

import re

import pytest
from recstack.ensemble.specs import MODELS, RECOMMEND, render_config
from recstack.ensemble.triton_models import RerankModel, RetrieveModel, SimilarModel, TrendingModel

VALUES = {"max_batch_size": 16, "kind": "KIND_GPU", "instances": 2, "queue_delay_us": 50, "onnx_threads": 1,
          "dim": 32, "candidates": 300}


def test_every_step_of_the_ensemble_feeds_what_the_model_declares():
    produced = set(RECOMMEND.input_names)
    for step in RECOMMEND.steps:
        model = MODELS[step.model]
        assert set(step.inputs) == set(model.input_names), step.model
        assert set(step.outputs) <= set(model.output_names), step.model
        assert set(step.inputs.values()) <= produced, f"{step.model} reads a tensor no earlier step produced"
        produced |= set(step.outputs.values())
    assert set(RECOMMEND.output_names) <= produced


@pytest.mark.parametrize(("model", "name"), [(RetrieveModel, "retrieve"), (RerankModel, "rerank"),
                                             (SimilarModel, "similar"), (TrendingModel, "trending")])
def test_python_models_read_their_declared_inputs(model, name):
    assert model.inputs == MODELS[name].input_names


@pytest.mark.parametrize("name", sorted(MODELS))
def test_rendered_configs_carry_every_tensor_and_setting(name):
    text = render_config(MODELS[name], VALUES)
    spec = MODELS[name]
    assert f'name: "{name}"' in text and "max_batch_size: 16" in text
    for tensor in (*spec.inputs, *spec.outputs):
        assert re.search(rf'name: "{tensor.name}" data_type: TYPE_{tensor.dtype} dims', text), tensor.name
    if spec.platform != "ensemble":
        assert "kind: KIND_GPU count: 2" in text and "max_queue_delay_microseconds: 50" in text
    assert "${" not in text
