"""Figures of the benchmarks: drawn off-screen, written as PNG beside the JSON."""

from __future__ import annotations

from contextlib import contextmanager
from pathlib import Path


@contextmanager
def figure(path: Path, ncols: int = 2, size: tuple[float, float] = (10, 4)):
    """Yield ``(fig, axes)`` of a one-row figure; on exit lay it out and save it to ``path``."""
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    fig, axes = plt.subplots(1, ncols, figsize=size)
    try:
        yield fig, axes
        fig.tight_layout()
        fig.savefig(path, dpi=110)
    finally:
        plt.close(fig)
