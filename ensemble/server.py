"""Start, probe and stop a real Triton Inference Server.

On machines without the NGC image the server is the ``tritonserver`` 2.51 binary inside the PyPI wheel
``nvidia-pytriton``. That wheel ships only the python backend, so :func:`prepare_backends` lays out a backend
folder with it, the stub built for this interpreter, and the Python-based ``onnxruntime`` backend of
``ensemble/backends``. The stub is started from ``PATH`` and must import this environment's numpy (which must be
<2: with numpy 2 the stub returns empty outputs, silently), hence the environment of :func:`server_environment`.
On a GPU host ``tritonserver`` from the NGC image is found on ``PATH`` with its native backends instead.
"""

from __future__ import annotations

import os
import shutil
import signal
import socket
import subprocess
import sys
import sysconfig
import time
import urllib.error
import urllib.request
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path

BACKENDS_SOURCE = Path(__file__).parent / "backends"
NGC_ROOT = Path("/opt/tritonserver")


class TritonError(RuntimeError):
    """The server could not be found, did not start, or died."""


@dataclass(frozen=True)
class TritonInstall:
    """Where a ``tritonserver`` binary and its backends are."""

    binary: Path
    backends: Path
    library_paths: tuple[Path, ...] = ()
    python_stub: Path | None = None  # the wheel's stub for this Python, copied into the python backend
    native: bool = False  # NGC image: native backends, nothing to prepare

    @classmethod
    def find(cls) -> TritonInstall:
        """The NGC image's server when present, otherwise the one in the ``nvidia-pytriton`` wheel."""
        if (NGC_ROOT / "bin" / "tritonserver").exists():
            return cls(NGC_ROOT / "bin" / "tritonserver", NGC_ROOT / "backends", native=True)
        try:
            import pytriton
        except ImportError as exc:
            raise TritonError("no tritonserver: install the project (nvidia-pytriton) or use the NGC image") from exc
        root = Path(pytriton.__file__).parent / "tritonserver"
        version = f"{sys.version_info.major}.{sys.version_info.minor}"
        stub = root / "python_backend_stubs" / version / "triton_python_backend_stub"
        if not stub.exists():
            raise TritonError(f"nvidia-pytriton has no python backend stub for Python {version}")
        site = root.parents[1]
        libs = (Path(sysconfig.get_config_var("LIBDIR")), site / "nvidia_pytriton.libs")
        return cls(root / "bin" / "tritonserver", root / "backends", libs, stub)


def prepare_backends(install: TritonInstall, dest: Path) -> Path:
    """A backend folder for ``--backend-directory``: the python backend with this interpreter's stub, and
    the Python-based onnxruntime backend. Returns ``dest`` (or the NGC folder, used as it is)."""
    if install.native:
        return install.backends
    python_dir = dest / "python"
    python_dir.mkdir(parents=True, exist_ok=True)
    for item in (install.backends / "python").iterdir():
        if item.is_file():
            _copy_if_changed(item, python_dir / item.name)
    _copy_if_changed(install.python_stub, python_dir / "triton_python_backend_stub")
    for backend in BACKENDS_SOURCE.iterdir():
        if (backend / "model.py").exists():
            (dest / backend.name).mkdir(exist_ok=True)
            _copy_if_changed(backend / "model.py", dest / backend.name / "model.py")
    return dest


def _copy_if_changed(src: Path, dest: Path) -> None:
    """Another server may be running the stub from ``dest`` (overwriting it would fail: text file busy)."""
    if dest.exists() and dest.stat().st_size == src.stat().st_size and dest.stat().st_mtime == src.stat().st_mtime:
        return
    shutil.copy2(src, dest)


# Each python-model stub is a process of its own: with OpenMP (FAISS) and OpenBLAS (numpy) threads per stub, the
# stubs' idle threads spin on the cores the others need. One compute thread per model instance, unless the
# environment says otherwise; parallelism comes from instances and concurrent requests.
THREAD_VARIABLES = ("OMP_NUM_THREADS", "OPENBLAS_NUM_THREADS", "MKL_NUM_THREADS")


def server_environment(install: TritonInstall) -> dict[str, str]:
    """This environment's ``bin`` first on ``PATH`` (the stub runs ``python`` modules from there), the wheel's
    libraries on ``LD_LIBRARY_PATH`` and one compute thread per model instance (:data:`THREAD_VARIABLES`, where
    not already set)."""
    env = dict(os.environ)
    for name in THREAD_VARIABLES:
        env.setdefault(name, "1")
    env["PATH"] = os.pathsep.join([str(Path(sys.executable).parent), env.get("PATH", "")])
    libs = [str(p) for p in install.library_paths] + [p for p in env.get("LD_LIBRARY_PATH", "").split(":") if p]
    env["LD_LIBRARY_PATH"] = os.pathsep.join(libs)
    return env


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket(socket.AF_INET, socket.SOCK_STREAM) as sock:
        sock.bind((host, 0))
        return sock.getsockname()[1]


def _repository_call(http_url: str, path: str) -> None:
    request = urllib.request.Request(f"http://{http_url}{path}", data=b"{}", method="POST")
    try:
        with urllib.request.urlopen(request, timeout=600):
            pass
    except urllib.error.HTTPError as exc:
        raise TritonError(f"{path}: {exc.read().decode(errors='replace')}") from exc
    except urllib.error.URLError as exc:
        raise TritonError(f"no Triton at {http_url}: {exc.reason}") from exc


def model_control(http_url: str) -> dict[str, Callable[[str], None]]:
    """``load`` and ``unload`` of one model on a running server (explicit model control): a load picks up a
    changed config or new versions, requests in flight finishing on the old ones."""
    return {"load": lambda model: _repository_call(http_url, f"/v2/repository/models/{model}/load"),
            "unload": lambda model: _repository_call(http_url, f"/v2/repository/models/{model}/unload")}


def reload_models(http_url: str) -> None:
    """Make a running server (explicit model control) load the newest version of every model of the funnel,
    composing models before the ensemble; requests in flight finish on the old version."""
    from recstack.ensemble.build import ENSEMBLES, MODELS

    for model in [m for m in MODELS if m not in ENSEMBLES] + list(ENSEMBLES):
        _repository_call(http_url, f"/v2/repository/models/{model}/load")


class TritonServer:
    """A ``tritonserver`` process over a model repository, on loopback ports (free ones when 0).

    Models load explicitly (``--model-control-mode=explicit``): all of them at start, and later ones, or new
    versions, through :meth:`load` without a restart.

    Examples
    --------
    >>> with TritonServer("build/model_repository") as server:  # doctest: +SKIP
    ...     print(server.http_url, server.grpc_url)
    127.0.0.1:41233 127.0.0.1:39411
    """

    def __init__(self, repository: str | Path, work_dir: str | Path | None = None, host: str = "127.0.0.1",
                 http_port: int = 0, grpc_port: int = 0, metrics_port: int = 0, log_verbose: int = 0,
                 extra_args: tuple[str, ...] = ()):
        self.repository = Path(repository).resolve()
        if not self.repository.is_dir():
            raise TritonError(f"no model repository at {self.repository}: run `recstack build-repo` first")
        self.work_dir = Path(work_dir) if work_dir else self.repository.parent / "triton"
        self.host = host
        self.http_port = http_port or free_port(host)
        self.grpc_port = grpc_port or free_port(host)
        self.metrics_port = metrics_port or free_port(host)
        self.log_verbose = log_verbose
        self.extra_args = tuple(extra_args)
        self.process: subprocess.Popen | None = None
        self.log_path = self.work_dir / f"tritonserver-{self.http_port}.log"

    @property
    def http_url(self) -> str:
        return f"{self.host}:{self.http_port}"

    @property
    def grpc_url(self) -> str:
        return f"{self.host}:{self.grpc_port}"

    @property
    def pid(self) -> int | None:
        return self.process.pid if self.process else None

    def command(self, install: TritonInstall, backends: Path) -> list[str]:
        return [str(install.binary), f"--model-repository={self.repository}",
                f"--backend-directory={backends}", "--model-control-mode=explicit", "--load-model=*",
                f"--http-address={self.host}", f"--http-port={self.http_port}",
                f"--grpc-address={self.host}", f"--grpc-port={self.grpc_port}",
                f"--metrics-address={self.host}", f"--metrics-port={self.metrics_port}",
                "--allow-metrics=true", f"--log-verbose={self.log_verbose}",
                # Idle keep-alive connections would otherwise hold a stopping server for 30 s.
                "--exit-timeout-secs=5", *self.extra_args]

    def start(self, timeout: float = 120.0) -> TritonServer:
        """Start the server and wait until it reports ready; raises :class:`TritonError` with the log's
        tail if it exits or is not ready within ``timeout`` seconds."""
        install = TritonInstall.find()
        self.work_dir.mkdir(parents=True, exist_ok=True)
        backends = prepare_backends(install, self.work_dir / "backends")
        log = self.log_path.open("wb")
        # A new session, so stopping the server also stops its python-backend stub processes.
        self.process = subprocess.Popen(self.command(install, backends), stdout=log, stderr=subprocess.STDOUT,
                                        env=server_environment(install), start_new_session=True)
        log.close()
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise TritonError(f"tritonserver exited with code {self.process.returncode}:\n{self.log_tail()}")
            if self.ready():
                return self
            time.sleep(0.2)
        self.stop()
        raise TritonError(f"tritonserver not ready after {timeout:.0f} s:\n{self.log_tail()}")

    def ready(self) -> bool:
        """Whether the server answers ``/v2/health/ready`` (every loaded model ready)."""
        try:
            with urllib.request.urlopen(f"http://{self.http_url}/v2/health/ready", timeout=2) as response:
                return response.status == 200
        except (urllib.error.URLError, OSError):
            return False

    def load(self, model: str) -> None:
        """Load a model, or reload it to pick up a new version; in-flight requests finish on the old one."""
        _repository_call(self.http_url, f"/v2/repository/models/{model}/load")

    def reload_all(self) -> None:
        """Load the newest version of every model of the repository, composing models before ensembles."""
        reload_models(self.http_url)

    def unload(self, model: str) -> None:
        _repository_call(self.http_url, f"/v2/repository/models/{model}/unload")

    def stop(self, timeout: float = 30.0) -> None:
        """Stop the server by its PID (SIGTERM, then SIGKILL to its whole process group)."""
        if self.process is None:
            return
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(timeout)
            except subprocess.TimeoutExpired:
                os.killpg(self.process.pid, signal.SIGKILL)
                self.process.wait()
        try:
            os.killpg(self.process.pid, signal.SIGKILL)  # stub processes left behind
        except ProcessLookupError:
            pass

    def log_tail(self, lines: int = 40) -> str:
        if not self.log_path.exists():
            return ""
        return "\n".join(self.log_path.read_text(errors="replace").splitlines()[-lines:])

    def __enter__(self) -> TritonServer:
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()
