"""Accuracy of the models beside the baselines on several datasets, with the same default configs.

For each dataset: preprocess (leave-one-out) if needed, then ``recstack train`` with every model, and
collect the full-ranking test metrics into ``results/accuracy.json`` and ``results/accuracy.md``.

    recstack bench accuracy --datasets synthetic ml-1m beauty --max-minutes 60
"""

from __future__ import annotations

import argparse
import json
from dataclasses import replace
from pathlib import Path

from recstack.benchmarks.machine import describe_machine
from recstack.preprocessing.datasets import load_dataset
from recstack.preprocessing.layout import PreparedLayout
from recstack.preprocessing.pipeline import preprocess
from recstack.training.accuracy import accuracy_table
from recstack.training.report import TrainingReport
from recstack.training.train_models import METRICS_FILE, train_models

from recstack.settings import Settings

RESULTS_DIR = Path(__file__).resolve().parent / "results"


def prepared_folder(name: str, settings: Settings, synthetic_events: int) -> Path:
    """The preprocessed (leave-one-out) dataset under the build folder, preprocessed on first use."""
    folder = settings.build_dir / "bench" / "prepared" / name
    if not PreparedLayout(folder).exists():
        options = {"n_events": synthetic_events, "seed": settings.seed} if name == "synthetic" else {}
        preprocess(load_dataset(name, data_dir=settings.data_dir, **options), folder, settings.workflow,
                   progress=False)
    return folder


def run(datasets: list[str], max_minutes: float | None, epochs: int | None, synthetic_events: int,
        results_dir: Path, models: str, settings: Settings) -> dict:
    report = {"benchmark": "accuracy", "machine": describe_machine(), "datasets": {}}
    tables = []
    for name in datasets:
        folder = prepared_folder(name, settings, synthetic_events)
        out = settings.build_dir / "bench" / "models" / name
        budget = {"max_minutes": max_minutes, "epochs": epochs}
        train = replace(settings.train, **{k: v for k, v in budget.items() if v})
        print(f"== {name}: training {models}", flush=True)
        train_models(folder, out, tuple(models.split(",")), train, settings.sasrec, settings.two_tower,
                     progress=False, sampled=True)
        summary = json.loads((out / METRICS_FILE).read_text())
        for r in summary["reports"].values():
            r.pop("history", None)
        report["datasets"][name] = summary
        reports = {model: TrainingReport.from_json(r) for model, r in summary["reports"].items()}
        tables.append(f"### {name}\n\n" + accuracy_table(name, reports))
    report["command"] = "recstack bench accuracy " + " ".join(
        ["--datasets", *datasets] + (["--max-minutes", str(max_minutes)] if max_minutes else [])
        + (["--epochs", str(epochs)] if epochs else []))
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "accuracy.json").write_text(json.dumps(report, indent=2, default=str))
    markdown = f"Machine: {report['machine']['summary']}.\n\n" + "\n\n".join(tables) + "\n"
    (results_dir / "accuracy.md").write_text(markdown)
    print(markdown)
    return report


def main(argv: list[str], settings: Settings) -> int:
    p = argparse.ArgumentParser(prog="recstack bench accuracy", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["synthetic", "ml-1m", "beauty"])
    p.add_argument("--models", default="sasrec,baselines")
    p.add_argument("--max-minutes", type=float, help="training budget per model")
    p.add_argument("--epochs", type=int)
    p.add_argument("--synthetic-events", type=int, default=settings.synthetic_events)
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)
    run(args.datasets, args.max_minutes, args.epochs, args.synthetic_events, args.results_dir, args.models, settings)
    return 0
