"""``recstack train`` / ``python -m training``: train, evaluate and export on a prepared dataset.

Under ``torchrun --nproc_per_node N -m training ...`` the neural models train with
DistributedDataParallel (gloo on CPU, nccl on GPU); only the first process evaluates and writes.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from dataclasses import replace
from pathlib import Path

from training.accuracy import accuracy_table
from training.baselines import BASELINES
from training.data import load_prepared
from training.evaluate import evaluate, evaluate_sampled
from training.export import ParityError, export_sasrec, export_two_tower
from training.recipe import user_subset
from training.runtime import Distributed, pick_device
from training.train_sasrec import sequence_scorer, train_sasrec
from training.train_two_tower import train_two_tower, two_tower_scorer

# Neural models: how each trains, scores every item for evaluation, and exports.
RECIPES = {
    "sasrec": (train_sasrec, sequence_scorer, export_sasrec),
    "two_tower": (train_two_tower, lambda model, device: two_tower_scorer(model, model.features, device),
                  export_two_tower),
}
MODELS = (*RECIPES, "baselines")


def parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recstack train", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="prepared dataset folder [build/data/synthetic]")
    p.add_argument("--models", default=",".join(MODELS), help=f"comma-separated subset of {list(MODELS)}")
    p.add_argument("--out", type=Path, help="output folder [build/models/<dataset>]")
    p.add_argument("--epochs", type=int, help="upper bound on epochs (early stopping usually ends sooner)")
    p.add_argument("--max-minutes", type=float, help="training time budget per model")
    p.add_argument("--test-users", type=int,
                   help="test on a fixed random subset of this many users [all]: full ranking of a huge catalog")
    p.add_argument("--finish-epochs", type=int,
                   help="after early stopping, this many epochs on training + validation events with the learning "
                        "rate decaying to 0 (the final model; see training/README.md) [0]")
    p.add_argument("--device", help="auto (default), cpu or cuda")
    p.add_argument("--no-resume", action="store_true", help="start over even if a checkpoint exists")
    p.add_argument("--sampled", action="store_true", help="also report the sampled-100-negatives metrics")
    p.add_argument("--no-export", action="store_true", help="skip the ONNX export and its parity check")
    p.add_argument("--quiet", action="store_true")
    return p


def run(args: argparse.Namespace) -> dict:
    from recstack.settings import Settings

    settings = Settings()
    data = load_prepared(args.data or settings.data_output("synthetic"))
    out = Path(args.out or settings.models_output(data.name))
    train_config = settings.train
    overrides = {"epochs": args.epochs, "max_minutes": args.max_minutes, "device": args.device,
                 "finish_epochs": args.finish_epochs, "test_users": args.test_users}
    train_config = replace(train_config, **{k: v for k, v in overrides.items() if v is not None})
    chosen = [m.strip() for m in args.models.split(",") if m.strip()]
    unknown = sorted(set(chosen) - set(MODELS))
    if unknown:
        raise ValueError(f"unknown model(s) {unknown}; choose from {list(MODELS)}")
    dist = Distributed.from_environment(pick_device(train_config.device))
    test_set = user_subset(data.test, train_config.test_users, train_config.seed)  # the models' test users too
    reports: dict[str, dict] = {}

    def save(reports: dict[str, dict]) -> dict:
        """Write what is known so far, so a later failure loses none of the earlier models' results."""
        out.mkdir(parents=True, exist_ok=True)
        summary = {"dataset": data.name, "fingerprint": data.fingerprint, "world_size": dist.world_size,
                   "reports": reports}
        (out / "metrics.json").write_text(json.dumps(summary, indent=2, default=str))
        table = accuracy_table(data.name, reports)
        (out / "accuracy.md").write_text(table + "\n")
        return summary

    for name, (train_model, scorer, export) in RECIPES.items():
        if name not in chosen:
            continue
        trained = train_model(data, out / name, getattr(settings, name), train_config, resume=not args.no_resume,
                              progress=not args.quiet)
        if not dist.is_main:
            dist.barrier()  # wait while the main process tests and exports, before the next model's DDP
            continue
        if args.sampled:
            device = next(trained.model.parameters()).device
            trained.report["test"].update(evaluate_sampled(scorer(trained.model, device), data, test_set))
        if not args.no_export:
            extra = {"model_version": trained.report["version"], "dataset": data.name,
                     "dataset_fingerprint": data.fingerprint, "test_metrics": trained.report["test"]}
            exported = export(trained.model, out / "onnx" / name, data.test.histories[:512], extra=extra,
                              verbose=not args.quiet)
            trained.report["onnx_parity"] = exported["parity"]
        reports[name] = trained.report
        save(reports)
        dist.barrier()
    if dist.is_main and "baselines" in chosen:
        for name, baseline in BASELINES.items():
            started = time.perf_counter()
            try:
                model = baseline(data)
            except ValueError as exc:  # e.g. EASE on a catalog too large for it
                print(f"skipping baseline {name}: {exc}", file=sys.stderr)
                continue
            fit_seconds = time.perf_counter() - started
            test = evaluate(model, data, test_set, progress=not args.quiet)
            if args.sampled:
                test.update(evaluate_sampled(model, data, test_set))
            reports[name] = {"model": name, "train_seconds": round(fit_seconds, 1), "test": test,
                             "test_users": len(test_set)}
    if not dist.is_main:
        return {}
    summary = save(reports)
    print(accuracy_table(data.name, reports))
    print(f"written to {out}")
    return summary


def main(argv: list[str] | None = None) -> int:
    args = parser().parse_args(argv)
    try:
        run(args)
    except (ValueError, FileNotFoundError, ParityError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
