"""The import contract: the stages' imports point down the layers only, lazy imports inside functions included.

``make lint`` runs this file too, so a change that makes a stage reach up fails before any other test runs.
"""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

from recstack import STAGES

REPO = Path(__file__).resolve().parents[2]
# Top first. A module may import its own layer and any layer below it, never one above.
LAYERS: tuple[tuple[str, ...], ...] = (
    ("recstack.cli", "recstack.__main__", "recstack.commands", "recstack.demo", "recstack.demo_facade",
     "recstack.demo_latency"),
    ("recstack.benchmarks",),
    ("recstack.settings",),
    ("recstack.client",),
    ("recstack.ensemble",),
    ("recstack.training",),
    ("recstack.preprocessing",),
    ("recstack.devices", "recstack.cluster"),  # which accelerators and Dask cluster: every stage may ask
)
STAGE_NAMES = (*STAGES, "benchmarks")  # each in its own top-level folder
FOLDERS = {"recstack": "recstack", "model_repository": "model_repository",
           **{name: f"recstack.{name}" for name in STAGE_NAMES}}


def layer(module: str) -> int | None:
    for depth, prefixes in enumerate(LAYERS):
        if any(module == p or module.startswith(p + ".") for p in prefixes):
            return depth
    return None


def modules(repo: Path, folders: dict[str, str]) -> dict[str, Path]:
    found = {}
    for folder, package in folders.items():
        for path in sorted((repo / folder).rglob("*.py")):
            parts = path.relative_to(repo / folder).with_suffix("").parts
            name = ".".join((package, *parts)).removesuffix(".__init__")
            found[name] = path
    return found


def imports(path: Path, module: str) -> list[tuple[int, str]]:
    """(line, imported module) of every import statement in the file, wherever it stands."""
    out = []
    for node in ast.walk(ast.parse(path.read_text(), str(path))):
        if isinstance(node, ast.Import):
            out += [(node.lineno, alias.name) for alias in node.names]
        elif isinstance(node, ast.ImportFrom):
            base = node.module or ""
            if node.level:  # relative: resolve against this module's package
                keep = len(module.split(".")) - node.level + (path.name == "__init__.py")
                base = ".".join([*module.split(".")[:keep], *([base] if base else [])])
            out.append((node.lineno, base))
    return out


def violations(repo: Path = REPO, folders: dict[str, str] = FOLDERS) -> list[str]:
    found = []
    for module, path in modules(repo, folders).items():
        own = layer(module)
        for line, target in imports(path, module):
            where = f"{path.relative_to(repo)}:{line}"
            if target.split(".")[0] in STAGE_NAMES:
                found.append(f"{where} imports {target}: the stages are recstack.<stage> (one installed package)")
                continue
            theirs = layer(target)
            if own is not None and theirs is not None and theirs < own:
                found.append(f"{where}: {module} (layer {LAYERS[own][0]}) imports {target}, a layer above it")
    return found


def test_every_stage_imports_only_down_the_layers():
    assert violations() == []


def test_the_checker_sees_an_upward_import(tmp_path):
    """The contract can fail: an import of the settings from the ranker is reported, a lazy one too."""
    fake = tmp_path / "training"
    fake.mkdir()
    (fake / "sneaky.py").write_text("def f():\n    from recstack.settings import Settings\n    return Settings\n")
    (fake / "old.py").write_text("import ensemble.funnel\n")
    old, sneaky = violations(tmp_path, {"training": "recstack.training"})
    assert "sneaky.py:2: recstack.training.sneaky" in sneaky and "recstack.settings, a layer above" in sneaky
    assert "old.py:1 imports ensemble.funnel" in old


@pytest.mark.parametrize("module", ["recstack.settings", "recstack.training.config", "recstack.client.api.main",
                                    "recstack.commands.serve"])
def test_layer_of_known_modules(module):
    assert layer(module) is not None
