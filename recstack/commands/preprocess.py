"""``recstack preprocess`` and ``recstack data``: the preprocessing stage's command lines."""

from __future__ import annotations

import argparse
import sys
from dataclasses import replace
from datetime import datetime
from pathlib import Path

from recstack.preprocessing.config import SplitConfig, WorkflowConfig
from recstack.preprocessing.datasets import DATASETS, generate_synthetic, load_dataset
from recstack.preprocessing.datasets.synthetic import SyntheticConfig
from recstack.preprocessing.layout import Manifest
from recstack.preprocessing.pipeline import format_summary, preprocess
from recstack.preprocessing.schema import InputError
from recstack.preprocessing.streaming import CHUNK_EVENTS, preprocess_streaming
from recstack.preprocessing.tombstones import read_tombstones
from recstack.settings import Settings


def preprocess_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recstack preprocess", description=(
        "Load a dataset, split it, fit the preprocessing workflow and write the training layout "
        "(see preprocessing/README.md)."))
    p.add_argument("--dataset", default="synthetic", choices=DATASETS,
                   help="synthetic (default), a public dataset read from --data-dir, or 'events' for your logs")
    p.add_argument("--data-dir", type=Path, help="folder of the public datasets [RECSTACK_DATA_DIR]")
    p.add_argument("--events", type=Path, help="with --dataset events: events file (.csv/.tsv/.parquet), or the event "
                                              "log's folder (build/lake/events)")
    p.add_argument("--items", type=Path, help="with --dataset events: optional items file")
    p.add_argument("--synthetic-events", type=int, help="size of the synthetic dataset [RECSTACK_SYNTHETIC_EVENTS]")
    p.add_argument("--split", choices=("leave_one_out", "temporal"), help="split strategy [leave_one_out]")
    p.add_argument("--test-start", type=datetime.fromisoformat, help="temporal split: first test timestamp")
    p.add_argument("--min-item-count", type=int, help="items with fewer events go to the OOV bucket")
    p.add_argument("--engine", choices=("auto", "cpu", "gpu", "dask"),
                   help="polars engine [auto: GPU when available], or 'dask': with --dataset events, parquet files "
                        "or folders (the event log) read a partition at a time on a Dask cluster; same outputs")
    cluster = p.add_mutually_exclusive_group()
    cluster.add_argument("--workers", type=int, help="with --engine dask: a local cluster of this many processes "
                                                     "[one per core]")
    cluster.add_argument("--scheduler", help="with --engine dask: a running Dask cluster (tcp://HOST:PORT); workers "
                                             "must see the input and output folders")
    p.add_argument("--device", choices=("auto", "cpu", "gpu"), default="auto",
                   help="with --engine dask: cuDF partitions on dask-cuda workers on a GPU [auto]")
    p.add_argument("--streaming", action="store_true",
                   help="with --dataset events: inputs larger than memory, one chunk of users at a time on polars' "
                        "streaming engine (CPU); same outputs")
    p.add_argument("--chunk-events", type=int, default=CHUNK_EVENTS,
                   help=f"with --streaming or --engine dask: events per chunk of users, which bounds memory "
                        f"[{CHUNK_EVENTS:,}]")
    p.add_argument("--out", type=Path, help="output folder [build/data/<dataset>]")
    p.add_argument("--quiet", action="store_true", help="no progress bar")
    return p


def run_streaming(args: argparse.Namespace, settings: Settings, workflow: WorkflowConfig, split: SplitConfig,
                  out: Path) -> Manifest:
    if args.dataset != "events" or args.events is None:
        raise InputError("--streaming reads your own files: use --dataset events --events PATH")
    if args.engine == "gpu":
        raise InputError("--streaming runs on the CPU; on a GPU, cuDF preprocesses in memory (drop --streaming)")
    return preprocess_streaming(args.events, args.items, out, workflow, split, progress=not args.quiet,
                                tombstones=read_tombstones(settings.tombstones_file), chunk_events=args.chunk_events)


def run_dask(args: argparse.Namespace, settings: Settings, workflow: WorkflowConfig, split: SplitConfig,
             out: Path) -> Manifest:
    if args.dataset != "events" or args.events is None:
        raise InputError("--engine dask reads your own parquet files: use --dataset events --events PATH")
    if args.streaming:
        raise InputError("--engine dask already reads a partition at a time: drop --streaming")
    from recstack.preprocessing.dask_engine import preprocess_dask

    return preprocess_dask(args.events, args.items, out, workflow, split, workers=args.workers,
                           scheduler=args.scheduler, device=args.device, progress=not args.quiet,
                           tombstones=read_tombstones(settings.tombstones_file), chunk_events=args.chunk_events)


def run_preprocess(args: argparse.Namespace, settings: Settings) -> dict:
    name = args.dataset
    workflow = settings.workflow
    if args.min_item_count is not None:
        workflow = replace(workflow, min_item_count=args.min_item_count)
    split = replace(settings.split, **{name: value for name, value in (("strategy", args.split),
                                                                        ("test_start", args.test_start)) if value})
    if args.engine != "dask" and (args.workers or args.scheduler):
        raise InputError("--workers and --scheduler are for --engine dask")
    if args.engine == "dask":
        out = args.out or settings.data_output(Path(args.events or "").stem)
        manifest = run_dask(args, settings, workflow, split, out)
    elif args.streaming:
        out = args.out or settings.data_output(Path(args.events or "").stem)
        manifest = run_streaming(args, settings, workflow, split, out)
    else:
        data = load_dataset(
            name, data_dir=args.data_dir or settings.data_dir, events_path=args.events, items_path=args.items,
            n_events=args.synthetic_events or settings.synthetic_events, seed=settings.seed,
        ) if name == "synthetic" else load_dataset(
            name, data_dir=args.data_dir or settings.data_dir, events_path=args.events, items_path=args.items)
        out = args.out or settings.data_output(data.name)
        manifest = preprocess(data, out, workflow, split, engine=args.engine or settings.engine,
                              progress=not args.quiet, tombstones=read_tombstones(settings.tombstones_file))
    print(format_summary(manifest))
    print(f"  written to {out}")
    return manifest


def preprocess_main(argv: list[str], settings: Settings) -> int:
    args = preprocess_parser().parse_args(argv)
    try:
        run_preprocess(args, settings)
    except (InputError, ValueError, FileNotFoundError, RuntimeError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    return 0


def data_main(argv: list[str], settings: Settings) -> int:
    """``recstack data``: write the synthetic dataset as files in the generic events schema."""
    p = argparse.ArgumentParser(prog="recstack data", description=(
        "Generate the synthetic dataset as events.parquet + items.parquet in the generic schema, "
        "e.g. as a template for your own logs."))
    p.add_argument("--events", type=int, default=None, help="approximate number of events")
    p.add_argument("--items", type=int, default=None, help="number of catalog items")
    p.add_argument("--seed", type=int, default=None)
    p.add_argument("--format", choices=("parquet", "csv"), default="parquet")
    p.add_argument("--out", type=Path, help="output folder [build/raw/synthetic]")
    args = p.parse_args(argv)
    try:
        config = SyntheticConfig(n_events=args.events or settings.synthetic_events, n_items=args.items,
                                 seed=settings.seed if args.seed is None else args.seed)
    except ValueError as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    data = generate_synthetic(config)
    out = args.out or settings.raw_output("synthetic")
    out.mkdir(parents=True, exist_ok=True)
    for name, frame in (("events", data.events), ("items", data.items)):
        path = out / f"{name}.{args.format}"
        frame.write_parquet(path) if args.format == "parquet" else frame.write_csv(path)
    summary = data.summary()
    print(f"synthetic: {summary['events']:,} events, {summary['users']:,} users, "
          f"{summary['catalog_items']:,} items -> {out}")
    return 0
