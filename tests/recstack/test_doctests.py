"""The examples in the docstrings of every recstack module run, and show what they say.

Examples that need built artifacts or a running server carry ``# doctest: +SKIP``; everything else runs here.
"""

import doctest
import importlib
import pkgutil

import pytest

import recstack


def public_modules() -> list[str]:
    """Every module of the package; the stages live in folders of their own, so each is walked from its path."""
    packages = [recstack, *(importlib.import_module(f"recstack.{name}") for name in (*recstack.STAGES, "benchmarks"))]
    names = {package.__name__ for package in packages}
    for package in packages:
        for info in pkgutil.walk_packages(package.__path__, prefix=f"{package.__name__}."):
            if not info.name.endswith("__main__"):
                names.add(info.name)
    return sorted(names)


def test_every_stage_is_walked():
    found = set(public_modules())
    assert {"recstack.preprocessing.workflow", "recstack.training.config", "recstack.ensemble.funnel",
            "recstack.client.api.main", "recstack.benchmarks.load", "recstack.commands.train"} <= found


@pytest.mark.parametrize("name", public_modules())
def test_docstring_examples_run(name, monkeypatch, tmp_path):
    monkeypatch.chdir(tmp_path)  # an example that writes files writes them here
    module = importlib.import_module(name)
    result = doctest.testmod(module, optionflags=doctest.ELLIPSIS | doctest.NORMALIZE_WHITESPACE, verbose=False)
    assert result.failed == 0, f"{result.failed} of {result.attempted} examples in {name} failed (output above)"
