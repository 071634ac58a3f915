"""Accuracy of the models beside the baselines on several datasets, with the same default configs, and the time
each neural model took to get there.

For each dataset: preprocess (leave-one-out) if needed, then ``recstack train`` with every model, and collect the
full-ranking test metrics into ``results/<name>.json`` and ``results/<name>.md``. Time to quality: per neural model,
the best test NDCG@10 / HR@10, the training minutes until its validation NDCG@10 first reached 95 % of its best,
and the curve of validation NDCG@10 against minutes (``results/<name>_curves.png``).

``--variants`` trains the ranker once per variant (settings of ``SASRecConfig`` or ``TrainConfig``, e.g.
``loss=sampled`` or ``loss=full,precision=fp32``), side by side in one run, to show what a cheaper setting costs in
quality and saves in time.

    recstack bench accuracy --datasets synthetic ml-1m beauty --max-minutes 60
    recstack bench accuracy --datasets beauty --models sasrec --variants loss=full loss=sampled --max-minutes 20 \
        --name loss_choice
"""

from __future__ import annotations

import argparse
import json
from dataclasses import asdict, fields, replace
from pathlib import Path

import numpy as np
from pydantic import TypeAdapter
from recstack.benchmarks.machine import describe_machine
from recstack.benchmarks.plots import figure
from recstack.preprocessing.datasets import load_dataset
from recstack.preprocessing.layout import PreparedLayout
from recstack.preprocessing.pipeline import preprocess
from recstack.training.accuracy import accuracy_table
from recstack.training.config import SASRecConfig, TrainConfig
from recstack.training.report import TrainingReport
from recstack.training.train_models import train_models

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


def apply_variant(variant: str, sasrec: SASRecConfig, train: TrainConfig) -> tuple[SASRecConfig, TrainConfig]:
    """The ranker's and training settings with ``variant`` (``field=value[,field=value...]``) applied, validated as
    the settings are.

    Examples
    --------
    >>> sasrec, train = apply_variant("loss=sampled,negatives=256,precision=fp32", SASRecConfig(), TrainConfig())
    >>> sasrec.loss, sasrec.negatives, train.precision
    ('sampled', 256, 'fp32')
    >>> apply_variant("lose=full", SASRecConfig(), TrainConfig())
    Traceback (most recent call last):
    ...
    ValueError: variant 'lose=full': no setting 'lose' in SASRecConfig or TrainConfig
    """
    configs = [sasrec, train]
    for pair in variant.split(","):
        key, sep, value = pair.partition("=")
        owner = next((i for i, c in enumerate(configs) if key in {f.name for f in fields(c)}), None)
        if not sep or owner is None:
            raise ValueError(f"variant {variant!r}: no setting {key!r} in SASRecConfig or TrainConfig"
                             if sep else f"variant {variant!r}: expected field=value pairs")
        cls = type(configs[owner])
        configs[owner] = TypeAdapter(cls).validate_python({**asdict(configs[owner]), key: value})
    return configs[0], configs[1]


def time_to_quality(reports: dict[str, TrainingReport]) -> dict[str, dict]:
    """Per neural model (those with a validation history): test NDCG@10 / HR@10, best validation NDCG@10, the
    minutes to reach 95 % of it, the minutes and epochs trained, and the loss and precision it trained with."""
    return {name: {"test_ndcg@10": r.test.get("ndcg@10"), "test_hr@10": r.test.get("hr@10"),
                   "best_valid_ndcg@10": max(v for _, v in r.quality_curve()),
                   "minutes_to_95": r.minutes_to_quality(0.95), "train_minutes": round(r.train_seconds / 60, 1),
                   "epochs": r.epochs, "loss": r.loss, "precision": r.precision}
            for name, r in reports.items() if r.quality_curve()}


def quality_table(dataset: str, rows: dict[str, dict]) -> str:
    lines = [f"Time to quality, {dataset}: minutes of training until validation NDCG@10 first reached 95 % of its "
             "best.", "", "| model | loss | precision | test NDCG@10 | test HR@10 | best valid NDCG@10 | "
             "minutes to 95 % | minutes trained | epochs |", "|---|---|---|---:|---:|---:|---:|---:|---:|"]
    for name, r in rows.items():
        lines.append(f"| {name} | {r['loss']} | {r['precision']} | {r['test_ndcg@10']:.4f} | {r['test_hr@10']:.4f} | "
                     f"{r['best_valid_ndcg@10']:.4f} | {r['minutes_to_95']} | {r['train_minutes']} | {r['epochs']} |")
    return "\n".join(lines)


def plot_curves(curves: dict[str, dict[str, TrainingReport]], path: Path) -> None:
    """Validation NDCG@10 against training minutes, one panel per dataset, one line per neural model."""
    with figure(path, ncols=len(curves), size=(5 * len(curves), 4)) as (_, axes):
        for ax, (dataset, reports) in zip(np.atleast_1d(axes), curves.items(), strict=True):
            for name, report in reports.items():
                minutes, values = zip(*report.quality_curve(), strict=True)
                line, = ax.plot(minutes, values, marker=".", label=name)
                reached = report.minutes_to_quality(0.95)
                ax.axvline(reached, color=line.get_color(), linestyle=":", linewidth=1)
            ax.set_title(f"{dataset}: validation NDCG@10 (dotted: 95 % of best)")
            ax.set_xlabel("training minutes")
            ax.legend(fontsize="small")


def run(datasets: list[str], max_minutes: float | None, epochs: int | None, synthetic_events: int,
        results_dir: Path, models: str, settings: Settings, variants: list[str] | None = None,
        name: str = "accuracy") -> dict:
    report = {"benchmark": "accuracy", "machine": describe_machine(), "datasets": {}}
    budget = {"max_minutes": max_minutes, "epochs": epochs}
    train = replace(settings.train, **{k: v for k, v in budget.items() if v})
    wanted = tuple(models.split(","))
    # Each variant of the ranker is checked before any training starts: a typo must not fail a run hours in.
    runs = {f"sasrec[{v}]": apply_variant(v, settings.sasrec, train) for v in variants or []}
    tables, curves = [], {}
    for dataset in datasets:
        folder = prepared_folder(dataset, settings, synthetic_events)
        out = settings.build_dir / "bench" / "models" / dataset
        summaries = {}
        print(f"== {dataset}: training {models}" + (f", the ranker as {list(runs)}" if runs else ""), flush=True)
        if runs and "sasrec" in wanted:
            for label, (sasrec, variant_train) in runs.items():
                summaries[label] = train_models(folder, out / label, ("sasrec",), variant_train, sasrec,
                                                settings.two_tower, resume=False, progress=False, sampled=True)
            wanted = tuple(m for m in wanted if m != "sasrec")
        if wanted:
            summaries[""] = train_models(folder, out, wanted, train, settings.sasrec, settings.two_tower,
                                         progress=False, sampled=True)
        reports = {(label or model): TrainingReport.from_json(r)
                   for label, summary in summaries.items() for model, r in summary["reports"].items()}
        quality = time_to_quality(reports)
        report["datasets"][dataset] = {"fingerprint": next(iter(summaries.values()))["fingerprint"],
                                       "reports": {k: r.to_json() for k, r in reports.items()},
                                       "time_to_quality": quality}
        tables.append(f"### {dataset}\n\n" + accuracy_table(dataset, reports)
                      + (f"\n\n{quality_table(dataset, quality)}" if quality else ""))
        curves[dataset] = {k: reports[k] for k in quality}
    report["command"] = "recstack bench accuracy " + " ".join(
        ["--datasets", *datasets, "--models", models] + (["--variants", *variants] if variants else [])
        + (["--max-minutes", str(max_minutes)] if max_minutes else []) + (["--epochs", str(epochs)] if epochs else [])
        + (["--name", name] if name != "accuracy" else []))
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / f"{name}.json").write_text(json.dumps(report, indent=2, default=str))
    markdown = f"Machine: {report['machine']['summary']}.\n\n" + "\n\n".join(tables) + "\n"
    (results_dir / f"{name}.md").write_text(markdown)
    if any(curves.values()):
        plot_curves({d: c for d, c in curves.items() if c}, results_dir / f"{name}_curves.png")
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
    p.add_argument("--variants", nargs="+", metavar="FIELD=VALUE[,...]",
                   help="train the ranker once per variant of its settings (SASRecConfig or TrainConfig fields)")
    p.add_argument("--name", default="accuracy", help="results file names: <name>.json, <name>.md, <name>_curves.png")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)
    try:
        run(args.datasets, args.max_minutes, args.epochs, args.synthetic_events, args.results_dir, args.models,
            settings, args.variants, args.name)
    except ValueError as exc:
        p.error(str(exc))
    return 0
