"""A Python-based Triton backend named ``onnxruntime`` that runs ONNX models with onnxruntime.

The ``tritonserver`` in the nvidia-pytriton wheel (the CPU server of development and CI machines) ships only the
python backend. Triton resolves ``platform: "onnxruntime_onnx"`` to the backend ``onnxruntime``, and when
``<backend-dir>/onnxruntime/`` holds a ``model.py`` instead of ``libtriton_onnxruntime.so`` it runs that file in
the python backend's stub, so the unchanged model configuration loads. On a GPU host the NGC image's native
onnxruntime backend is used instead and this file is not installed.

Understands the native backend's ``intra_op_thread_count`` / ``inter_op_thread_count`` parameters and runs on
CUDA for ``KIND_GPU`` instances when onnxruntime has the CUDA provider.
"""

import json
import os

import numpy as np
import onnxruntime as ort
import triton_python_backend_utils as pb_utils


def _parameter(config: dict, key: str, default: int) -> int:
    value = config.get("parameters", {}).get(key, {}).get("string_value")
    return int(value) if value else default


class TritonPythonModel:
    def initialize(self, args):
        config = json.loads(args["model_config"])
        path = os.path.join(args["model_repository"], args["model_version"],
                            config.get("default_model_filename") or "model.onnx")
        options = ort.SessionOptions()
        options.intra_op_num_threads = _parameter(config, "intra_op_thread_count", 1)
        options.inter_op_num_threads = _parameter(config, "inter_op_thread_count", 1)
        providers = ["CPUExecutionProvider"]
        if args.get("model_instance_kind") == "GPU" and "CUDAExecutionProvider" in ort.get_available_providers():
            device = int(args.get("model_instance_device_id", 0))
            providers = [("CUDAExecutionProvider", {"device_id": device}), "CPUExecutionProvider"]
        self.session = ort.InferenceSession(path, options, providers=providers)
        self.inputs = [i["name"] for i in config["input"]]
        self.outputs = [o["name"] for o in config["output"]]
        self.batched = config.get("max_batch_size", 0) > 0

    def execute(self, requests):
        arrays = [[pb_utils.get_input_tensor_by_name(r, name).as_numpy() for name in self.inputs] for r in requests]
        # Requests the dynamic batcher gathered run as one call when their non-batch shapes agree.
        shapes = {tuple(a.shape[1:] for a in request) for request in arrays}
        if self.batched and len(requests) > 1 and len(shapes) == 1:
            sizes = [request[0].shape[0] for request in arrays]
            feed = {name: np.concatenate([request[i] for request in arrays]) for i, name in enumerate(self.inputs)}
            results = self.session.run(self.outputs, feed)
            bounds = np.cumsum(sizes)[:-1]
            per_request = zip(*(np.split(result, bounds) for result in results), strict=True)
        else:
            per_request = (self.session.run(self.outputs, dict(zip(self.inputs, request, strict=True)))
                           for request in arrays)
        return [pb_utils.InferenceResponse(output_tensors=[pb_utils.Tensor(name, np.ascontiguousarray(value))
                                                           for name, value in zip(self.outputs, result,
                                                                                  strict=True)])
                for result in per_request]
