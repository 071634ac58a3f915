"""The tensor specs are the one declaration of the serving graph: consistent with themselves and with the code."""

import re

import pytest
from recstack.ensemble.specs import MODELS, OBJECTIVE_MODELS, RECOMMEND, models, render_config
from recstack.ensemble.triton_models import RerankModel, RetrieveModel, SimilarModel, TrendingModel

RANK_OUTPUTS = MODELS["rank"].output_names
VALUES = {"max_batch_size": 16, "kind": "KIND_GPU", "instances": 2, "queue_delay_us": 50, "onnx_threads": 1,
          "dim": 32, "candidates": 300}


@pytest.mark.parametrize("objectives", [False, True])
def test_every_step_of_the_ensemble_feeds_what_the_model_declares(objectives):
    specs = models(objectives)
    recommend = specs["recommend"]
    produced = set(recommend.input_names)
    for step in recommend.steps:
        model = specs[step.model]
        assert set(step.inputs) == set(model.input_names), step.model
        assert set(step.outputs) <= set(model.output_names), step.model
        assert set(step.inputs.values()) <= produced, f"{step.model} reads a tensor no earlier step produced"
        produced |= set(step.outputs.values())
    assert set(recommend.output_names) <= produced


def test_a_ranker_with_heads_passes_its_probabilities_to_the_rerank_and_the_weights_are_optional():
    assert "objectives" in OBJECTIVE_MODELS["rank"].output_names and "objectives" not in RANK_OUTPUTS
    assert OBJECTIVE_MODELS["recommend"].input_names == RECOMMEND.input_names  # clients send the same request
    weights = RECOMMEND.input("objective_weights")
    assert weights.optional and "optional: true" in weights.pbtxt(VALUES)
    assert not any(t.optional for t in RECOMMEND.inputs if t.name != "objective_weights")
    rerank = render_config(OBJECTIVE_MODELS["rerank"], VALUES)
    assert 'name: "objectives" data_type: TYPE_FP32 dims: [ -1, 3 ] }' in rerank


@pytest.mark.parametrize(("model", "name"), [(RetrieveModel, "retrieve"), (RerankModel, "rerank"),
                                             (SimilarModel, "similar"), (TrendingModel, "trending")])
def test_python_models_read_their_declared_inputs(model, name):
    assert model.inputs == OBJECTIVE_MODELS[name].input_names  # the probabilities' input is absent without heads
    assert set(MODELS[name].input_names) <= set(model.inputs)


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
