"""``recstack train``: train, evaluate and export on a prepared dataset.

Under ``torchrun --nproc_per_node N -m recstack train ...`` the neural models train with
DistributedDataParallel (gloo on CPU, nccl on GPU); only the first process evaluates and writes.
"""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from pathlib import Path

from recstack.preprocessing.layout import PreparedLayout
from recstack.settings import Settings
from recstack.training.onnx_tools import ParityError
from recstack.training.train_models import MODELS, train_models


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


def run(args: argparse.Namespace, settings: Settings) -> dict:
    """Train what ``args`` ask for with the settings' hyper-parameters; returns the metrics summary."""
    data = Path(args.data or settings.data_output("synthetic"))
    out = Path(args.out or settings.models_output(PreparedLayout(data).read_manifest().dataset))
    overrides = {"epochs": args.epochs, "max_minutes": args.max_minutes, "device": args.device,
                 "finish_epochs": args.finish_epochs, "test_users": args.test_users}
    train = replace(settings.train, **{k: v for k, v in overrides.items() if v is not None})
    models = tuple(m.strip() for m in args.models.split(",") if m.strip())
    return train_models(data, out, models, train, settings.sasrec, settings.two_tower, resume=not args.no_resume,
                        progress=not args.quiet, sampled=args.sampled, export=not args.no_export)


def main(argv: list[str], settings: Settings) -> int:
    args = parser().parse_args(argv)
    try:
        run(args, settings)
    except (ValueError, FileNotFoundError, ParityError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0
