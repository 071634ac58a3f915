"""Train, evaluate and export the chosen models of one prepared dataset: what ``recstack train`` runs.

Under ``torchrun --nproc_per_node N -m recstack train ...`` the neural models train with
DistributedDataParallel (gloo on CPU, nccl on GPU); only the first process evaluates and writes.
"""

from __future__ import annotations

import json
import sys
import time
from collections.abc import Mapping
from pathlib import Path

import numpy as np
from recstack.training.accuracy import accuracy_table
from recstack.training.baselines import BASELINES, make_baseline
from recstack.training.config import SASRecConfig, TrainConfig, TwoTowerConfig
from recstack.training.data import load_prepared
from recstack.training.evaluate import evaluate, evaluate_sampled
from recstack.training.export_sasrec import export_sasrec
from recstack.training.export_two_tower import export_two_tower
from recstack.training.recipe import user_subset
from recstack.training.report import TrainingReport
from recstack.training.runtime import Distributed, pick_device
from recstack.training.train_sasrec import sequence_scorer, train_sasrec
from recstack.training.train_two_tower import train_two_tower, two_tower_scorer
from recstack.training.warm_start import focus

# Neural models: how each trains, scores every item for evaluation, and exports.
RECIPES = {
    "sasrec": (train_sasrec, sequence_scorer, export_sasrec),
    "two_tower": (train_two_tower, lambda model, device: two_tower_scorer(model, model.features, device),
                  export_two_tower),
}
MODELS = (*RECIPES, "baselines")
METRICS_FILE = "metrics.json"


def train_models(data_dir: str | Path, out: str | Path, models: tuple[str, ...] = MODELS,
                 train: TrainConfig = TrainConfig(), sasrec: SASRecConfig = SASRecConfig(),
                 two_tower: TwoTowerConfig = TwoTowerConfig(), resume: bool = True, progress: bool = True,
                 sampled: bool = False, export: bool = True, warm_start: Mapping[str, Path] | None = None,
                 recent_users: np.ndarray | None = None, replay: float = 1.0) -> dict:
    """Train ``models`` (a subset of :data:`MODELS`) on ``data_dir``, writing checkpoints, ``metrics.json``,
    ``accuracy.md`` and the ONNX exports under ``out``; returns the summary written to ``metrics.json`` (its
    ``reports`` as :meth:`TrainingReport.to_json` writes them).

    Incremental retraining passes ``warm_start`` (model name → the serving model's checkpoint, grown to this
    catalog by :func:`~recstack.training.warm_start.grow_into`) and ``recent_users`` (user indices with new
    events): the neural models then train on those users plus ``replay`` times as many others
    (:func:`~recstack.training.warm_start.focus`); validation and test stay whole.

    Examples
    --------
    >>> summary = train_models("build/data/synthetic", "build/models/synthetic",
    ...                        train=TrainConfig(epochs=2))  # doctest: +SKIP
    >>> sorted(summary["reports"])  # doctest: +SKIP
    ['als', 'bpr', 'ease', 'item_knn', 'most_popular', 'sasrec', 'two_tower']
    """
    unknown = sorted(set(models) - set(MODELS))
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    data = load_prepared(data_dir)
    if "sasrec" in models and sasrec.objectives:
        data = data.with_funnel_stages()  # before the focus, which keeps them aligned
    training_data = data if recent_users is None else focus(data, recent_users, replay, train.seed)
    out = Path(out)
    model_configs = {"sasrec": sasrec, "two_tower": two_tower}
    dist = Distributed.from_environment(pick_device(train.device))
    test_set = user_subset(data.test, train.test_users, train.seed)  # the models' test users too
    reports: dict[str, TrainingReport] = {}

    def save(reports: dict[str, TrainingReport]) -> dict:
        """Write what is known so far, so a later failure loses none of the earlier models' results."""
        out.mkdir(parents=True, exist_ok=True)
        summary = {"dataset": data.name, "fingerprint": data.fingerprint, "world_size": dist.world_size,
                   "reports": {name: report.to_json() for name, report in reports.items()}}
        (out / METRICS_FILE).write_text(json.dumps(summary, indent=2, default=str))
        table = accuracy_table(data.name, reports)
        (out / "accuracy.md").write_text(table + "\n")
        return summary

    for name, (train_model, scorer, export_model) in RECIPES.items():
        if name not in models:
            continue
        trained = train_model(training_data, out / name, model_configs[name], train, resume=resume, progress=progress,
                              warm_start=(warm_start or {}).get(name))
        if not dist.is_main:
            dist.barrier()  # wait while the main process tests and exports, before the next model's DDP
            continue
        if sampled:
            device = next(trained.model.parameters()).device
            trained.report.test.update(evaluate_sampled(scorer(trained.model, device), data, test_set))
        if export:
            extra = {"model_version": trained.report.version, "dataset": data.name,
                     "dataset_fingerprint": data.fingerprint, "test_metrics": trained.report.test}
            exported = export_model(trained.model, out / "onnx" / name, data.test.histories[:512], extra=extra,
                                    verbose=progress)
            trained.report.onnx_parity = exported["parity"]
        reports[name] = trained.report
        save(reports)
        dist.barrier()
    if dist.is_main and "baselines" in models:
        # A GPU asked for the neural models is used by the baselines only where implicit's CUDA build can (the
        # report's device says where each ran): a missing one must not fail a run after hours of training.
        baseline_device = "cpu" if train.device == "cpu" else "auto"
        for name in BASELINES:
            started = time.perf_counter()
            try:
                model = make_baseline(name, data, baseline_device)
            except ValueError as exc:  # e.g. EASE on a catalog too large for it
                print(f"skipping baseline {name}: {exc}", file=sys.stderr)
                continue
            fit_seconds = time.perf_counter() - started
            test = evaluate(model, data, test_set, progress=progress)
            if sampled:
                test.update(evaluate_sampled(model, data, test_set))
            reports[name] = TrainingReport(name, test=test, test_users=len(test_set),
                                           train_seconds=round(fit_seconds, 1), device=model.device)
    if not dist.is_main:
        return {}
    summary = save(reports)
    print(accuracy_table(data.name, reports))
    print(f"written to {out}")
    return summary
