import os
import signal
import subprocess
import sys
import time

import psutil
import pytest
from recstack.ensemble.server import (
    TritonError,
    TritonInstall,
    TritonServer,
    free_port,
    prepare_backends,
    server_environment,
)


def test_wheel_install_is_complete(tmp_path):
    install = TritonInstall.find()
    assert install.binary.exists()
    backends = prepare_backends(install, tmp_path / "backends")
    if not install.native:
        assert (backends / "python" / "libtriton_python.so").exists()
        assert os.access(backends / "python" / "triton_python_backend_stub", os.X_OK)
        assert (backends / "onnxruntime" / "model.py").exists()
    env = server_environment(install)
    assert env["PATH"].split(os.pathsep)[0] == os.path.dirname(sys.executable)


def test_missing_repository_is_explained(tmp_path):
    with pytest.raises(TritonError, match="recstack build-repo"):
        TritonServer(tmp_path / "absent")


@pytest.mark.triton
def test_a_broken_model_stops_startup_with_the_log(tmp_path):
    model = tmp_path / "repo" / "broken"
    (model / "1").mkdir(parents=True)
    (model / "config.pbtxt").write_text('name: "broken"\nbackend: "python"\nmax_batch_size: 0\n'
                                        'input [ { name: "x" data_type: TYPE_FP32 dims: [ 1 ] } ]\n'
                                        'output [ { name: "y" data_type: TYPE_FP32 dims: [ 1 ] } ]\n')
    (model / "1" / "model.py").write_text("raise RuntimeError('this model cannot load')\n")
    with pytest.raises(TritonError, match="this model cannot load|failed to load"):
        TritonServer(tmp_path / "repo", work_dir=tmp_path / "triton").start(timeout=60)


@pytest.mark.triton
def test_serve_command_runs_until_interrupted(model_repository, tmp_path):
    ports = [str(free_port()) for _ in range(3)]
    process = subprocess.Popen(
        [sys.executable, "-m", "recstack", "serve", "triton", "--repository", str(model_repository),
         "--http-port", ports[0], "--grpc-port", ports[1], "--metrics-port", ports[2]],
        stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = process.stdout.readline()
        assert "Triton ready" in line and f"HTTP 127.0.0.1:{ports[0]}" in line
        process.send_signal(signal.SIGINT)
        out, _ = process.communicate(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
    assert process.returncode == 0 and "Triton stopped" in out
    time.sleep(0.5)
    left = [p for p in psutil.process_iter(["cmdline"]) if f"--http-port={ports[0]}" in (p.info["cmdline"] or [])]
    assert left == []
