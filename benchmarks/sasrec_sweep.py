"""How the sequential ranker's defaults are chosen: variants of its settings side by side, on a split that
never holds a real test target.

Each variant (overrides of ``SASRecConfig`` / ``TrainConfig`` fields) trains with early stopping on the
shifted-back split (``PreparedData.shifted_back``: the validation targets are its test targets, each user's last
training event its validation target) and is then finished with each ``--finish-epochs`` count from its best
checkpoint; its "test" metrics are therefore validation metrics of the real split. ``--splits shifted test``
also trains every variant on the real split: for reference only, never to choose. Variants run in ``--jobs``
processes side by side (on a GPU they share it). Records are appended to ``<stem>.jsonl`` as they finish; run
again, a sweep skips what its journal holds and resumes each variant's run from its folder (named after the
variant), unless ``--no-resume``. A variant that fails is reported and the others go on. ``--report`` redraws
the table and figure from a journal.

    recstack bench sweep --data build/bench/prepared/ml-1m --jobs 9 --max-minutes 5 --device cuda
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import sys
import traceback
from concurrent.futures import ProcessPoolExecutor, as_completed
from dataclasses import fields, replace
from multiprocessing import get_context
from pathlib import Path

from recstack.benchmarks.machine import describe_machine
from recstack.benchmarks.plots import figure
from recstack.preprocessing.layout import PreparedLayout
from recstack.training.config import SASRecConfig, TrainConfig

from recstack.settings import Settings

RESULTS = Path(__file__).parent / "results"
# Relative to the current defaults (SASRecConfig, TrainConfig); "lr 1e-3" was the default before this sweep.
VARIANTS = {"defaults": {}, "lr 1e-3": {"lr": 1e-3}, "lr 4e-3": {"lr": 4e-3}, "dropout 0.1": {"dropout": 0.1},
            "dropout 0.3": {"dropout": 0.3}, "batch 256": {"batch_size": 256}, "heads 4": {"heads": 4},
            "hidden 64": {"hidden": 64}, "weight decay 0.1": {"weight_decay": 0.1}, "blocks 3": {"blocks": 3}}
SPLITS = ("shifted", "test")
METRICS = ("ndcg@10", "hr@10", "ndcg@20", "hr@20")


def run_variant(data_folder: str, name: str, split: str, overrides: dict, finishes: list[int],
                max_minutes: float | None, device: str, threads: int, out_dir: str, journal: str,
                sasrec: SASRecConfig = SASRecConfig(), train: TrainConfig = TrainConfig()) -> list[dict]:
    """Train one variant on one split, finish it with each count, append a record per count to ``journal``.

    ``lr`` overrides go to ``TrainConfig``, which takes precedence over the model's own learning rate."""
    import torch
    from recstack.training.data import load_prepared
    from recstack.training.train_sasrec import train_sasrec

    torch.set_num_threads(threads)
    model_fields = {f.name for f in fields(SASRecConfig)} - {"lr"}
    model_config = replace(sasrec, **{k: v for k, v in overrides.items() if k in model_fields})
    train_config = replace(train, device=device, max_minutes=max_minutes,
                           **{k: v for k, v in overrides.items() if k not in model_fields})
    data = load_prepared(Path(data_folder))
    data = data.shifted_back() if split == "shifted" else data
    records = []
    for finish in finishes:
        # One folder: after the first count the fit is resumed as finished, and each count starts from its best.
        report = train_sasrec(data, Path(out_dir), model_config, replace(train_config, finish_epochs=finish),
                              resume=True, progress=False).report
        best = report.test_best_checkpoint or report.test
        record = {"name": name, "split": split, "overrides": overrides, "finish": finish, "resumed": report.resumed,
                  "epochs": report.epochs, "best_epoch": report.best_epoch, "train_s": report.train_seconds,
                  "finish_s": report.finish_seconds,
                  "best_valid": max(h.get("valid_ndcg@10", 0.0) for h in report.history),
                  "test_best": {m: round(best[m], 4) for m in METRICS},
                  "test": {m: round(report.test[m], 4) for m in METRICS},
                  "device": report.device, "precision": report.precision}
        with open(journal, "a") as f:
            f.write(json.dumps(record) + "\n")
        records.append(record)
    return records


def table(records: list[dict]) -> str:
    """One row per variant and split: its fit, then test NDCG@10 of the best checkpoint and of each finish count."""
    finishes = sorted({r["finish"] for r in records})
    rows: dict[tuple[str, str], dict] = {}
    for r in records:
        row = rows.setdefault((r["name"], r["split"]), {**r, "finished": {}})
        row["finished"][r["finish"]] = r["test"]["ndcg@10"]
    head = ["variant", "split", "epochs (best)", "train s", "valid ndcg@10", "test ndcg@10 best checkpoint",
            *[f"+{f} finishing" for f in finishes]]
    lines = ["| " + " | ".join(head) + " |", "|---|---|" + "---:|" * (len(head) - 2)]
    order = sorted(rows.values(), key=lambda r: (SPLITS.index(r["split"]), -max(r["finished"].values())))
    for r in order:
        cells = [r["name"], r["split"], f"{r['epochs']} ({r['best_epoch']})", f"{r['train_s']:.0f}",
                 f"{r['best_valid']:.4f}", f"{r['test_best']['ndcg@10']:.4f}",
                 *[f"{r['finished'][f]:.4f}" if f in r["finished"] else "" for f in finishes]]
        lines.append("| " + " | ".join(cells) + " |")
    return "\n".join(lines)


def plot(records: list[dict], path: Path, title: str) -> None:
    """Test NDCG@10 per variant (best checkpoint and each finish count), one panel per split."""
    splits = [s for s in SPLITS if any(r["split"] == s for r in records)]
    finishes = sorted({r["finish"] for r in records})
    with figure(path, ncols=len(splits), size=(6.5 * len(splits), 4.5)) as (fig, axes):
        axes = axes if len(splits) > 1 else [axes]
        for ax, split in zip(axes, splits, strict=True):
            mine = [r for r in records if r["split"] == split]
            names = sorted({r["name"] for r in mine},
                           key=lambda n: -max(r["test"]["ndcg@10"] for r in mine if r["name"] == n))
            width = 0.8 / (len(finishes) + 1)
            for j, label in enumerate(["best checkpoint", *[f"+{f} finishing" for f in finishes]]):
                values = []
                for n in names:
                    runs = [r for r in mine if r["name"] == n]
                    if j == 0:
                        values.append(runs[0]["test_best"]["ndcg@10"])
                    else:
                        values.append(next((r["test"]["ndcg@10"] for r in runs if r["finish"] == finishes[j - 1]),
                                           float("nan")))
                ax.bar([i + j * width for i in range(len(names))], values, width, label=label)
            ax.set_xticks([i + 0.4 - width / 2 for i in range(len(names))], names, rotation=35, ha="right")
            shown = [v for r in mine for v in (r["test_best"]["ndcg@10"], r["test"]["ndcg@10"])]
            ax.set_ylim(min(shown) * 0.95, max(shown) * 1.02)
            target = "validation targets (shifted-back split)" if split == "shifted" else "real test (reference)"
            ax.set_title(f"NDCG@10 on {target}")
            ax.legend(fontsize=8)
        fig.suptitle(title, fontsize=10)


def report(journal: Path, title: str, summary: dict | None = None) -> str:
    """Write ``<stem>.md`` and ``<stem>.png`` (and ``<stem>.json`` with ``summary``) beside ``journal``."""
    records = [json.loads(line) for line in journal.read_text().splitlines() if line.strip()]
    if not records:
        raise ValueError(f"{journal} holds no finished variant")
    markdown = f"{title}\n\n{table(records)}\n"
    stem = journal.parent / journal.name.removesuffix(".jsonl")
    Path(f"{stem}.md").write_text(markdown)
    plot(records, Path(f"{stem}.png"), title)
    if summary is not None:
        Path(f"{stem}.json").write_text(json.dumps({**summary, "records": records}, indent=2))
    return markdown


def main(argv: list[str], settings: Settings) -> int:
    p = argparse.ArgumentParser(prog="recstack bench sweep", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--data", type=Path, help="prepared dataset folder (leave-one-out)")
    p.add_argument("--variants", type=json.loads, default=VARIANTS,
                   help='JSON object: name -> overrides, e.g. \'{"defaults": {}, "lr 4e-3": {"lr": 0.004}}\'')
    p.add_argument("--splits", nargs="+", choices=SPLITS, default=["shifted"])
    p.add_argument("--finish-epochs", type=int, nargs="+", default=[10, 20])
    p.add_argument("--max-minutes", type=float, help="training budget of each variant")
    p.add_argument("--jobs", type=int, default=1, help="variants trained side by side")
    p.add_argument("--device", default="auto")
    p.add_argument("--stem", default="sasrec_sweep", help="file name stem of the results")
    p.add_argument("--results-dir", type=Path, default=RESULTS)
    p.add_argument("--no-resume", action="store_true", help="start over: clear the journal and the variants' runs")
    p.add_argument("--report", type=Path, help="only redraw the table and figure from this .jsonl")
    p.add_argument("--title", help="title of the table and figure [the machine]")
    args = p.parse_args(argv)
    if args.report:
        if not args.report.is_file() or not args.report.read_text().strip():
            p.error(f"--report needs a journal of finished variants; {args.report} is missing or empty")
        print(report(args.report, args.title or args.report.stem))
        return 0
    if args.data is None or not PreparedLayout(args.data).exists():
        p.error(f"--data must be a prepared dataset folder (got {args.data}); run `recstack preprocess` first")
    if args.jobs < 1 or any(f < 0 for f in args.finish_epochs):
        p.error("--jobs must be at least 1 and --finish-epochs counts not negative")
    machine = describe_machine()
    args.results_dir.mkdir(parents=True, exist_ok=True)
    journal = args.results_dir / f"{args.stem}.jsonl"
    work = settings.build_dir / "bench" / "sweep" / args.data.name / args.stem
    if args.no_resume:
        journal.unlink(missing_ok=True)
        shutil.rmtree(work, ignore_errors=True)
    done = {(r["name"], r["split"], r["finish"]) for r in
            (json.loads(line) for line in (journal.read_text().splitlines() if journal.exists() else []) if line)}
    threads = max(1, (os.cpu_count() or 1) // args.jobs)
    tasks = []
    for split in args.splits:
        for name, overrides in args.variants.items():
            finishes = sorted(f for f in set(args.finish_epochs) if (name, split, f) not in done)
            if finishes:
                folder = work / f"{split}-{re.sub(r'[^A-Za-z0-9.-]+', '_', name)}"
                tasks.append((str(args.data), name, split, overrides, finishes, args.max_minutes, args.device,
                              threads, str(folder), str(journal), settings.sasrec, settings.train))
    failed = []
    with ProcessPoolExecutor(max_workers=args.jobs, mp_context=get_context("spawn")) as pool:
        futures = {pool.submit(run_variant, *task): task[1:3] for task in tasks}
        for n, future in enumerate(as_completed(futures), 1):
            label = " on ".join(futures[future])
            try:
                records = future.result()
            except Exception:  # one broken variant must not cost the others' results
                failed.append(label)
                print(f"[{n}/{len(tasks)}] {label} FAILED:\n{traceback.format_exc()}", file=sys.stderr, flush=True)
                continue
            print(f"[{n}/{len(tasks)}] {label}: test ndcg@10 "
                  + ", ".join(f"+{r['finish']} {r['test']['ndcg@10']:.4f}" for r in records), flush=True)
    budget = f"budget {args.max_minutes} min each" if args.max_minutes else "no time budget"
    title = f"SASRec settings sweep on {args.data.name}, {machine['summary']}, {args.jobs} side by side, {budget}"
    command = "recstack bench sweep " + " ".join(argv if argv is not None else sys.argv[1:])
    if journal.exists() and journal.read_text().strip():
        print(report(journal, title, {"benchmark": "sasrec_sweep", "machine": machine, "command": command,
                                      "failed": failed}))
    if failed:
        print(f"failed: {', '.join(failed)}", file=sys.stderr)
    return 1 if failed else 0
