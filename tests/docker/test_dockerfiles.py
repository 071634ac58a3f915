"""The Dockerfiles cannot be built here (no Docker engine): they are linted, and checked against what the
tests run."""

import json
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

REPO = Path(__file__).resolve().parents[2]
DOCKER = REPO / "docker"


def test_hadolint_is_clean():
    hadolint = shutil.which("hadolint") or str(Path(sys.executable).parent / "hadolint")
    files = sorted(str(p) for p in DOCKER.glob("*.Dockerfile"))
    assert files
    result = subprocess.run([hadolint, *files], capture_output=True, text=True)
    assert result.returncode == 0, result.stdout + result.stderr


def _imported(module: str) -> set[str]:
    code = (f"import json, sys; import {module}; "
            "print(json.dumps(sorted(m.__file__ for n, m in sys.modules.items() "
            "if n.split('.')[0] == 'recstack' and getattr(m, '__file__', None))))")
    files = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                      cwd=REPO).stdout)
    return {str(Path(f).relative_to(REPO)) for f in files}


@pytest.mark.parametrize(("dockerfile", "module"), [("triton.Dockerfile", "recstack.ensemble.triton_models"),
                                                    ("facade.Dockerfile", "recstack.client.api.main")])
def test_images_hold_every_module_they_import(dockerfile, module):
    imported = _imported(module)
    if dockerfile == "triton.Dockerfile":
        # training's typed settings are torch-free (test_server_side_modules_need_no_torch); nothing else of it
        outside = [f for f in imported if f.startswith("client/")
                   or (f.startswith("training/") and f not in ("training/__init__.py", "training/config.py"))
                   or (f.startswith("recstack/") and f not in ("recstack/__init__.py", "recstack/devices.py"))]
        assert not outside, outside
    copied = [source for line in re.findall(r"^COPY (.+)$", (DOCKER / dockerfile).read_text(), re.M)
              for source in line.split()[:-1]]
    for path in imported:
        assert any(path == c or (c.endswith("/") and path.startswith(c)) for c in copied), path


def test_server_side_modules_need_no_torch():
    code = "import sys, recstack.ensemble.triton_models; print('torch' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True, cwd=REPO)
    assert out.stdout.strip() == "False"


@pytest.mark.parametrize("pattern", [r"from datetime import UTC", r"\bStrEnum\b", r"import tomllib"])
def test_server_side_modules_keep_to_python_3_10(pattern):
    """The NGC image's python-backend stub runs Python 3.10."""
    code = ("import json, sys; import recstack.ensemble.triton_models; print(json.dumps([m.__file__ for n, m in "
            "sys.modules.items() if n.startswith(('recstack.ensemble', 'recstack.preprocessing'))]))")
    files = json.loads(subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True,
                                      cwd=REPO).stdout)
    assert not [f for f in files if re.search(pattern, Path(f).read_text())]
