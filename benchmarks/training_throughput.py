"""Training throughput of the sequential ranker, length-aware batches against batches padded to the full window,
and the rank stage's cost with the last block run for every position or for the last one only.

Per dataset and batching mode, the same model (the ``SASRecConfig`` of the settings) trains on ``--max-batches``
batches of an epoch spread over its range of sizes, after ``--warmup`` untimed ones (or fewer, once ``--seconds``
of timed steps are spent), the two modes taking turns batch by batch so that a machine shared with other work slows
both alike. The epoch time is the mean batch time times the batches of an epoch (extrapolated unless every batch
was timed: the report says how many were), and tokens/s the epoch's real (non-padding) input positions over it.
Full-ranking validation of ``--eval-users`` users is timed per mode (the faster of two rounds). The rank stage
(``score_candidates``, ``--candidates`` candidates per user, histories filling the window) is timed per call at
batch 1 and 64.

    recstack bench training                                             # synthetic, ml-1m, beauty (those present)
    recstack bench training --datasets synthetic --max-batches 4        # a quick run
"""

from __future__ import annotations

import argparse
import json
import platform
import statistics
import time
from dataclasses import replace
from pathlib import Path

import numpy as np
import torch
from recstack.benchmarks.accuracy import prepared_folder
from recstack.benchmarks.machine import describe_machine
from recstack.benchmarks.plots import figure
from recstack.preprocessing.datasets import PUBLIC_DATASETS
from recstack.training.config import SASRecConfig
from recstack.training.data import PreparedData, load_prepared
from recstack.training.evaluate import evaluate
from recstack.training.models.sasrec import SASRec
from recstack.training.recipe import user_subset
from recstack.training.runtime import autocast, pick_device, resolve_precision, seed_everything
from recstack.training.train_sasrec import epoch_batches, next_item_pairs, sequence_scorer

from recstack.settings import Settings

RESULTS_DIR = Path(__file__).resolve().parent / "results"
MODES = {"padded": False, "length-aware": True}  # name -> SASRecConfig.length_aware
RANK_BATCHES = (1, 64)
RANK_ITEMS = 3_000  # the rank stage gathers its candidates' vectors: the catalog size barely changes its cost


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def timed_batches(batches, n_batches: int, count: int, seed: int) -> tuple[list[int], int, int]:
    """Which of epoch 0's batches to time: ``count`` spread evenly over the batches ordered by their real tokens
    (length-aware batches range from a few positions to the full window, and a few random ones would miss that),
    in a seeded random order so a time budget that stops early still leaves a spread; and the epoch's real tokens
    and positions.
    """
    shapes = [(int((x != 0).sum()), x.numel()) for x, _ in batches(0, 0, 1)]
    tokens = [t for t, _ in shapes]
    by_tokens = np.argsort(tokens, kind="stable")
    count = min(count, n_batches)
    chosen = by_tokens[((np.arange(count) + 0.5) * n_batches / count).astype(int)]
    return np.random.default_rng(seed).permutation(chosen).tolist(), sum(tokens), sum(p for _, p in shapes)


def train_rates(data: PreparedData, base: SASRecConfig, batch_size: int, seed: int, device: torch.device,
                dtype: torch.dtype, warmup: int, max_batches: int, seconds: float) -> dict[str, dict]:
    """Time training steps (forward, loss, backward, AdamW step) on batches of epoch 0 (:func:`timed_batches`),
    one step of each mode in turn, so that a busy machine slows both alike. The epoch time is the mean batch time
    times the batches of an epoch; tokens/s the epoch's real tokens over it."""
    runs = {}
    for mode, length_aware in MODES.items():
        config = replace(base, length_aware=length_aware)
        inputs, labels = next_item_pairs(data.train_sequences, config.max_length)
        batches, n_batches = epoch_batches(inputs, labels, batch_size, seed, config.length_aware)
        chosen, epoch_tokens, epoch_positions = timed_batches(batches, n_batches, max_batches, seed)
        wanted = set(chosen) | set(range(warmup))
        steps = [(i, b) for i, b in enumerate(batches(0, 0, 1)) if i in wanted]
        steps = [s for s in steps if s[0] < warmup] + sorted((s for s in steps if s[0] in chosen),
                                                              key=lambda s: chosen.index(s[0]))
        seed_everything(seed)  # the same initial weights in both modes
        model = SASRec(data.n_items, config).to(device).train()
        runs[mode] = {"steps": steps, "warmup": min(warmup, n_batches), "n_batches": n_batches,
                      "epoch_tokens": epoch_tokens, "epoch_positions": epoch_positions, "model": model,
                      "optimizer": torch.optim.AdamW(model.parameters(), lr=config.lr), "times": []}
    for step in range(max(len(run["steps"]) for run in runs.values())):
        for run in runs.values():
            if step >= len(run["steps"]):
                continue
            x, y = (t.to(device) for t in run["steps"][step][1])
            _sync(device)
            tick = time.perf_counter()
            with autocast(device, dtype):
                loss = run["model"].loss(x, y)
            run["optimizer"].zero_grad(set_to_none=True)
            loss.backward()
            run["optimizer"].step()
            _sync(device)
            if step >= run["warmup"]:
                run["times"].append(time.perf_counter() - tick)
        if max(sum(run["times"]) for run in runs.values()) > seconds:
            break
    rates = {}
    for mode, run in runs.items():
        times, n_batches = run["times"], run["n_batches"]
        if not times:
            raise ValueError(f"{data.name}: no batch timed (an epoch has {n_batches})")
        epoch_seconds = statistics.fmean(times) * n_batches
        rates[mode] = {"batches_per_epoch": n_batches, "batches_timed": len(times),
                       "seconds_timed": round(sum(times), 3),
                       "tokens_per_second": round(run["epoch_tokens"] / epoch_seconds),
                       "padding_share": round(1 - run["epoch_tokens"] / run["epoch_positions"], 4),
                       "epoch_seconds": round(epoch_seconds, 2), "epoch_extrapolated": len(times) < n_batches}
    return rates


def eval_seconds(data: PreparedData, base: SASRecConfig, users: int, seed: int, device: torch.device,
                 rounds: int = 2) -> dict[str, dict]:
    """Full-ranking validation of ``users`` users per mode (sorted by history length when length-aware); the
    fastest of ``rounds`` rounds, the modes taking turns."""
    valid = user_subset(data.valid, users, seed)
    seconds = {mode: [] for mode in MODES}
    for _ in range(rounds):
        for mode, length_aware in MODES.items():
            config = replace(base, length_aware=length_aware)
            seed_everything(seed)
            model = SASRec(data.n_items, config).to(device).eval()
            _sync(device)
            tick = time.perf_counter()
            evaluate(sequence_scorer(model, device), data, valid.by_history_length() if length_aware else valid)
            _sync(device)
            seconds[mode].append(time.perf_counter() - tick)
    return {mode: {"users": len(valid), "seconds": round(min(s), 3), "users_per_second": round(len(valid) / min(s))}
            for mode, s in seconds.items()}


def rank_cost(n_items: int, config: SASRecConfig, candidates: int, repeats: int, seed: int,
              device: torch.device) -> list[dict]:
    """ms per ``score_candidates`` call, the last block run for every position against the last one only."""
    seed_everything(seed)
    model = SASRec(n_items, config).to(device).eval()
    rng = np.random.default_rng(seed)

    def every_position(seq, cand):  # the computation before ``last_only``: the newest hidden state of a full pass
        user = model.encode(seq)[:, -1]
        return (model.item_embedding(cand) * user.unsqueeze(1)).sum(-1)

    rows = []
    for batch in RANK_BATCHES:
        seq = torch.from_numpy(rng.integers(2, n_items, (batch, config.max_length))).to(device)
        cand = torch.from_numpy(rng.integers(2, n_items, (batch, candidates))).to(device)
        with torch.no_grad():
            difference = float((every_position(seq, cand) - model.score_candidates(seq, cand)).abs().max())
            calls = {"every position": every_position, "last only": model.score_candidates}
            timings = {name: [] for name in calls}
            for _ in range(repeats + 3):  # the first calls warm caches and allocators; the two take turns
                for name, call in calls.items():
                    _sync(device)
                    tick = time.perf_counter()
                    call(seq, cand)
                    _sync(device)
                    timings[name].append((time.perf_counter() - tick) * 1e3)
            rows += [{"batch": batch, "seq_len": config.max_length, "candidates": candidates, "last_block": name,
                      "ms_per_call": round(statistics.median(timings[name][3:]), 3), "max_abs_diff": difference}
                     for name in calls]
    return rows


def run(datasets: list[str], settings: Settings, warmup: int, max_batches: int, seconds: float, eval_users: int,
        candidates: int, repeats: int, synthetic_events: int, results_dir: Path, command: str) -> dict:
    device = pick_device(settings.train.device)
    dtype = resolve_precision(settings.train.precision, device)
    report = {"benchmark": "training_throughput", "machine": describe_machine(), "device": str(device),
              "precision": str(dtype).replace("torch.", ""), "command": command,
              "versions": {"torch": torch.__version__, "python": platform.python_version()},
              "model": {"max_length": settings.sasrec.max_length, "hidden": settings.sasrec.hidden,
                        "blocks": settings.sasrec.blocks, "batch_size": settings.train.batch_size},
              "training": [], "skipped": {}, "rank": []}
    for name in datasets:
        if name in PUBLIC_DATASETS and not (settings.data_dir / PUBLIC_DATASETS[name]).exists():
            report["skipped"][name] = f"{settings.data_dir / PUBLIC_DATASETS[name]} not found"
            print(f"== {name}: skipped ({report['skipped'][name]})", flush=True)
            continue
        data = load_prepared(prepared_folder(name, settings, synthetic_events))
        lengths = np.array([min(len(s) - 1, settings.sasrec.max_length) for s in data.train_sequences if len(s) >= 2])
        print(f"== {name}: training, {' and '.join(MODES)} batches in turn ...", flush=True)
        rates = train_rates(data, settings.sasrec, settings.train.batch_size, settings.seed, device, dtype, warmup,
                            max_batches, seconds)
        print(f"== {name}: validation ...", flush=True)
        evals = eval_seconds(data, settings.sasrec, eval_users, settings.seed, device)
        by_mode = {mode: {"dataset": name, "mode": mode, "users": len(lengths), "items": data.n_items,
                          "mean_length": round(float(lengths.mean()), 1), **rates[mode], "eval": evals[mode]}
                   for mode in MODES}
        report["training"] += by_mode.values()
        new, old = by_mode["length-aware"], by_mode["padded"]
        report["training"].append({"dataset": name, "mode": "length-aware / padded",
                                   "tokens_per_second_ratio": round(new["tokens_per_second"]
                                                                    / old["tokens_per_second"], 2),
                                   "epoch_speedup": round(old["epoch_seconds"] / new["epoch_seconds"], 2),
                                   "eval_speedup": round(old["eval"]["seconds"] / new["eval"]["seconds"], 2)})
    print("== rank stage ...", flush=True)
    report["rank"] = rank_cost(RANK_ITEMS, settings.sasrec, candidates, repeats, settings.seed, device)
    results_dir.mkdir(parents=True, exist_ok=True)
    (results_dir / "training_throughput.json").write_text(json.dumps(report, indent=2))
    plot(report, results_dir / "training_throughput.png")
    print(markdown_tables(report))
    return report


def markdown_tables(report: dict) -> str:
    lines = ["| dataset | batches | mean length | padding | tokens/s | epoch s | validation users/s |",
             "|---|---|---:|---:|---:|---:|---:|"]
    for r in report["training"]:
        if "tokens_per_second_ratio" in r:
            lines.append(f"| {r['dataset']} | **length-aware / padded** | | | **{r['tokens_per_second_ratio']}×** | "
                         f"**{r['epoch_speedup']}× faster** | **{r['eval_speedup']}× faster** |")
        else:
            timed = (f"{r['epoch_seconds']:,.1f} ({r['batches_timed']} of {r['batches_per_epoch']} batches timed)"
                     if r["epoch_extrapolated"] else f"{r['epoch_seconds']:,.1f}")
            lines.append(f"| {r['dataset']} | {r['mode']} | {r['mean_length']} | {r['padding_share']:.0%} | "
                         f"{r['tokens_per_second']:,} | {timed} | {r['eval']['users_per_second']:,} |")
    lines += ["", "| rank stage (batch × window, candidates) | last block | ms per call |", "|---|---|---:|"]
    for r in report["rank"]:
        lines.append(f"| {r['batch']} × {r['seq_len']}, {r['candidates']} | {r['last_block']} | "
                     f"{r['ms_per_call']:.2f} |")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    rows = [r for r in report["training"] if "tokens_per_second" in r]
    names = list(dict.fromkeys(r["dataset"] for r in rows))
    width = 0.38
    with figure(path, ncols=3, size=(15, 4)) as (fig, axes):
        for i, mode in enumerate(MODES):
            mine = {r["dataset"]: r for r in rows if r["mode"] == mode}
            xs = [j + (i - 0.5) * width for j in range(len(names))]
            axes[0].bar(xs, [mine[n]["tokens_per_second"] / 1e3 for n in names], width, label=mode)
            axes[1].bar(xs, [mine[n]["epoch_seconds"] for n in names], width, label=mode)
        for i, name in enumerate(("every position", "last only")):
            mine = {r["batch"]: r for r in report["rank"] if r["last_block"] == name}
            xs = [j + (i - 0.5) * width for j in range(len(RANK_BATCHES))]
            axes[2].bar(xs, [mine[b]["ms_per_call"] for b in RANK_BATCHES], width, label=f"last block: {name}")
        axes[1].set_yscale("log")
        for ax, labels, title in ((axes[0], names, "real tokens/s (thousands, higher is better)"),
                                  (axes[1], names, "epoch seconds (log; lower is better)"),
                                  (axes[2], [f"{b} × {report['rank'][0]['seq_len']}" for b in RANK_BATCHES],
                                   "rank stage, ms per call (lower is better)")):
            ax.set_xticks(range(len(labels)), labels)
            ax.set_title(title, fontsize=10)
            ax.legend(fontsize=8)
        fig.suptitle(f"SASRec training and ranking ({report['device']}, {report['precision']}) — "
                     f"{report['machine']['summary']}", fontsize=10)


def main(argv: list[str], settings: Settings) -> int:
    p = argparse.ArgumentParser(prog="recstack bench training", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=["synthetic", "ml-1m", "beauty"],
                   choices=["synthetic", *PUBLIC_DATASETS],
                   help="public datasets absent from the data folder are skipped")
    p.add_argument("--warmup", type=int, default=2, help="untimed batches before the timed ones")
    p.add_argument("--max-batches", type=int, default=12, help="timed batches per dataset and mode, at most")
    p.add_argument("--seconds", type=float, default=90.0, help="stop timing batches after this many seconds")
    p.add_argument("--eval-users", type=int, default=1024, help="validation users scored per dataset and mode")
    p.add_argument("--candidates", type=int, default=100, help="candidates per user in the rank stage")
    p.add_argument("--repeats", type=int, default=20, help="timed rank-stage calls per shape")
    p.add_argument("--synthetic-events", type=int, default=settings.synthetic_events)
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)
    if min(args.max_batches, args.eval_users, args.candidates, args.repeats) < 1 or args.warmup < 0:
        p.error("--max-batches, --eval-users, --candidates and --repeats must be at least 1, --warmup at least 0")
    command = "recstack bench training " + " ".join(argv)
    run(args.datasets, settings, args.warmup, args.max_batches, args.seconds, args.eval_users, args.candidates,
        args.repeats, args.synthetic_events, args.results_dir, command.strip())
    return 0
