"""The closed loop replayed on time-stamped data: a frozen model, daily incremental updates and daily full
retrains, each judged on the next day's events.

An initial version is trained (``--train-epochs`` per model, or ``--train-minutes`` as the demo trains) on the
events before the last ``--days`` periods and served from a model repository. The periods are then replayed in
order. Each period's events are first the test of every strategy's serving version (every step the period's active
users take, ranked in full from everything they did before it; targets the version does not know count as misses),
then written to the strategy's event log and learned, by the product's own round (:func:`recstack.retrain.retrain`
→ :func:`~recstack.retrain.gate` → :func:`~recstack.retrain.decide`, which builds a repository version):

- ``frozen``: the initial version, never updated;
- ``incremental``: warm-started from the serving version on the period's users plus a replay sample
  (``RetrainConfig``);
- ``full``: trained from scratch on everything, with the initial training's budget.

Every update is published whatever the quality gate says (the strategies are compared as trained); what the gate
would have decided at its configured tolerance is recorded per update.

Reported per period and strategy: NDCG@10 and HR@10, training seconds, the gate's decision, and the freshness:
seconds from the period's events reaching the event log (as the ingest consumer writes them) to a published
version trained on them. ``recstack loop --every I`` adds up to ``I`` to it (an event waits for the next round).

    recstack bench loop                                   # the synthetic shop (demo size) and ML-100K
    recstack bench loop --datasets synthetic --days 3     # a quicker run
"""

from __future__ import annotations

import argparse
import json
import platform
import shutil
import time
from dataclasses import replace
from datetime import timedelta
from pathlib import Path

import numpy as np
import polars as pl
import torch
from recstack.benchmarks.machine import describe_machine
from recstack.benchmarks.plots import figure
from recstack.ensemble.build import build_repository
from recstack.preprocessing.datasets import load_dataset
from recstack.preprocessing.lake import LAKE_NAME, EventLake
from recstack.preprocessing.layout import PreparedLayout
from recstack.preprocessing.pipeline import preprocess
from recstack.preprocessing.schema import EVENT_TYPES, InputError, RawDataset
from recstack.preprocessing.vocabulary import OOV, Vocabulary
from recstack.training.data import EvalSet, load_prepared
from recstack.training.evaluate import evaluate
from recstack.training.gate import load_ranker, verdict
from recstack.training.train_models import train_models
from recstack.training.train_sasrec import sequence_scorer

from recstack.retrain import decide, gate, retrain, serving_entry
from recstack.settings import Settings
from recstack.versions import VersionsJournal

RESULTS_DIR = Path(__file__).resolve().parent / "results"
STRATEGIES = ("frozen", "incremental", "full")
PERIODS = {"synthetic": timedelta(days=1), "ml-100k": timedelta(days=7)}  # ML-100K's last days hold few events
METRICS = ("ndcg@10", "hr@10")


def period_steps(before: pl.DataFrame, period: pl.DataFrame, collapse_repeats: bool) -> pl.DataFrame:
    """Every step the period's active users take in it (one row each: user, target item, the items before it),
    their events in time order with consecutive events on one item a single step, as preprocessing makes them."""
    users = period["user_id"].unique().implode()
    events = (pl.concat([before.filter(pl.col("user_id").is_in(users)).with_columns(pl.lit(False).alias("new")),
                         period.with_columns(pl.lit(True).alias("new"))], how="diagonal_relaxed")
              .sort("user_id", "timestamp", maintain_order=True))
    if collapse_repeats:
        events = events.filter((pl.col("item_id") != pl.col("item_id").shift(1).over("user_id")).fill_null(True))
    steps = events.with_columns(pl.col("item_id").cum_count().over("user_id").alias("position"))
    histories = steps.group_by("user_id").agg(pl.col("item_id").sort_by("position").alias("items"))
    return (steps.filter(pl.col("new")).join(histories, on="user_id")
            .select("user_id", "item_id", pl.col("items").list.head(pl.col("position") - 1).alias("history"))
            .filter(pl.col("history").list.len() > 0))


def next_period_metrics(entry: dict, before: pl.DataFrame, period: pl.DataFrame, settings: Settings) -> dict:
    """The serving version of ``entry`` on the period: every step its active users take in it, ranked in full from
    everything they did before that step."""
    steps = period_steps(before, period, settings.workflow.collapse_repeats)
    vocabulary = Vocabulary.load(PreparedLayout(entry["data_dir"]).workflow, "item_id")
    targets = vocabulary.encode(steps["item_id"]).to_numpy()
    flat = vocabulary.encode(steps["history"].explode()).to_numpy().astype(np.int64)
    ends = np.cumsum(steps["history"].list.len().to_numpy())
    known = np.flatnonzero(targets > OOV)
    histories = np.split(flat, ends[:-1])
    eval_set = EvalSet(np.zeros(len(known), dtype=np.int64), [histories[i] for i in known],
                       [np.array([targets[i]]) for i in known])
    data = load_prepared(entry["data_dir"])
    ranker = load_ranker(Path(entry["models_dir"]), data.n_items, settings.sasrec)
    metrics = evaluate(sequence_scorer(ranker, torch.device("cpu")), data, eval_set.by_history_length())
    share = len(known) / max(1, steps.height)  # a target the version does not know is a miss
    return {**{m: round(metrics[m] * share, 4) for m in METRICS}, "steps": steps.height,
            "users": steps["user_id"].n_unique(), "known_targets": round(share, 4)}


def log_period(lake: EventLake, period: pl.DataFrame, index: int) -> None:
    """The period's events in the log, as the ingest consumer writes them: a part named after a stream id of now."""
    rows = period.with_row_index("n").with_columns(
        pl.col("timestamp").dt.replace_time_zone("UTC").dt.to_string("%Y-%m-%dT%H:%M:%S%.f%:z"),
        pl.format("p{}-{}", pl.lit(index), pl.col("n")).alias("event_id")).drop("n").to_dicts()
    lake.write(rows, batch_name=f"{int(time.time() * 1000)}-{index}")


def replay(name: str, days: int, settings: Settings, out: Path, say=print) -> dict:
    options = {"n_events": settings.synthetic_events, "seed": settings.seed} if name == "synthetic" else {}
    data = load_dataset(name, data_dir=settings.data_dir, **options)
    events = data.events.filter(pl.col("event_type").is_in(EVENT_TYPES)).sort("timestamp")
    period = PERIODS[name]
    end = events["timestamp"].max()
    start = (end - days * period).replace(hour=0, minute=0, second=0, microsecond=0) + timedelta(days=1)
    bounds = [start + i * period for i in range(days + 1)]
    if out.exists():
        shutil.rmtree(out)
    base_data, base_models = out / "initial" / "data", out / "initial" / "models"
    initial = events.filter(pl.col("timestamp") < start)
    say(f"{name}: initial version on {initial.height:,} events before {start:%Y-%m-%d}, then {days} periods of "
        f"{period.days} day(s)")
    began = time.perf_counter()
    preprocess(RawDataset(data.name, initial, data.items, data.has_timestamps), base_data, progress=False)
    train_models(base_data, base_models, ("sasrec", "two_tower"), settings.train, settings.sasrec,
                 settings.two_tower, resume=False, progress=False)
    initial_seconds = time.perf_counter() - began
    shops = {}
    for strategy in STRATEGIES:
        # Every candidate is published, so each strategy is what it says; what the gate would have decided at its
        # configured tolerance is recorded beside it.
        shop = settings.model_copy(update={"build_dir": out / strategy,
                                           "gate": replace(settings.gate, tolerance=1.0)})
        build_repository(base_data, base_models, shop.model_repository, shop.serving, verbose=False)
        serving_entry(shop, VersionsJournal(shop.versions_dir))  # the journal starts from the initial version
        shops[strategy] = shop
    rows = []
    for index, (lo, hi) in enumerate(zip(bounds, bounds[1:], strict=False)):
        today = events.filter((pl.col("timestamp") >= lo) & (pl.col("timestamp") < hi))
        before = events.filter(pl.col("timestamp") < lo)
        for strategy, shop in shops.items():
            entry = serving_entry(shop, VersionsJournal(shop.versions_dir))
            row = {"period": index, "start": lo.isoformat(), "events": today.height, "strategy": strategy,
                   "serving_version": entry["version"],
                   **next_period_metrics(entry, before, today, shop)}
            rows.append(row)
            say(f"  period {index} ({lo:%Y-%m-%d}, {today.height:,} events) {strategy:<11} "
                f"ndcg@10 {row['ndcg@10']:.4f} hr@10 {row['hr@10']:.4f} (version {entry['version']})")
            if strategy == "frozen" or index == days - 1:
                continue
            log_period(EventLake(shop.build_dir / LAKE_NAME), today, index)
            candidate = retrain(shop, full=strategy == "full", progress=False, say=lambda *_: None)
            if candidate is None:  # nothing this strategy can learn from the period
                continue
            judged = gate(shop, candidate)
            decided = decide(shop, candidate, say=lambda *_: None)
            row.update(update_fit_seconds=round(sum(decided["fit_seconds"].values()), 1),
                       update_train_seconds=decided["train_seconds"], decision=decided["decision"],
                       freshness_s=(decided.get("freshness_s") or {}).get("last_event"),
                       gate_would_refuse=not verdict(judged.candidate, judged.serving, judged.users, "",
                                                     settings.gate).passed,
                       gate={"candidate": judged.candidate[judged.metric], "serving": judged.serving[judged.metric],
                             "metric": judged.metric, "users": judged.users})
            say(f"    {strategy} update: {row['update_fit_seconds']:.0f} s fitting the models ("
                f"{decided['train_seconds']:.0f} s with their tests and exports), the gate would "
                f"{'refuse' if row['gate_would_refuse'] else 'pass'} it, "
                f"freshness {row['freshness_s']} s")
    return {"dataset": name, "period_days": period.days, "initial_events": initial.height,
            "initial_train_seconds": round(initial_seconds, 1), "rows": rows, "summary": summarize(rows)}


def summarize(rows: list[dict]) -> dict:
    """Per strategy: mean metrics over the periods after the first update, mean update seconds and freshness;
    and incremental's ratios to full."""
    out = {}
    for strategy in STRATEGIES:
        judged = [r for r in rows if r["strategy"] == strategy and r["period"] > 0]
        updates = [r for r in rows if r["strategy"] == strategy and "update_train_seconds" in r]
        out[strategy] = {**{m: round(float(np.mean([r[m] for r in judged])), 4) for m in METRICS},
                         **{key: round(float(np.mean([r[key] for r in updates])), 1) if updates else None
                            for key in ("update_fit_seconds", "update_train_seconds")},
                         "freshness_s": max((r["freshness_s"] for r in updates if r.get("freshness_s")), default=None),
                         "gate_would_refuse": sum(r.get("gate_would_refuse", False) for r in updates),
                         "updates": len(updates)}
    incremental, full = out["incremental"], out["full"]
    out["incremental_vs_full"] = {
        "ndcg@10": round(incremental["ndcg@10"] / full["ndcg@10"], 3) if full["ndcg@10"] else None,
        "fit_seconds": round(incremental["update_fit_seconds"] / full["update_fit_seconds"], 3),
        "train_seconds": round(incremental["update_train_seconds"] / full["update_train_seconds"], 3)}
    return out


def markdown(report: dict) -> str:
    lines = ["| dataset | strategy | next-period NDCG@10 | HR@10 | fitting s per update | with tests + export s | "
             "freshness s (worst) | gate would refuse |", "|---|---|---:|---:|---:|---:|---:|---:|"]
    for result in report["datasets"]:
        for strategy in STRATEGIES:
            s = result["summary"][strategy]
            seconds = " | ".join(str(s[key] or "–") for key in ("update_fit_seconds", "update_train_seconds",
                                                                  "freshness_s"))
            lines.append(f"| {result['dataset']} | {strategy} | {s['ndcg@10']:.4f} | {s['hr@10']:.4f} | {seconds} | "
                         f"{s['gate_would_refuse']}/{s['updates']} |")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    with figure(path, ncols=len(report["datasets"])) as (_, axes):
        for ax, result in zip(np.atleast_1d(axes), report["datasets"], strict=False):
            for strategy in STRATEGIES:
                rows = [r for r in result["rows"] if r["strategy"] == strategy]
                ax.plot([r["period"] for r in rows], [r["ndcg@10"] for r in rows], marker="o", label=strategy)
            ax.set_xticks(sorted({r["period"] for r in result["rows"]}))
            ax.set_title(f"{result['dataset']}: next-period NDCG@10")
            ax.set_xlabel(f"period ({result['period_days']} day(s) each)")
            ax.legend()


def main(argv: list[str], settings: Settings) -> int:
    p = argparse.ArgumentParser(prog="recstack bench loop", description=__doc__,
                                formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--datasets", nargs="+", default=list(PERIODS), choices=list(PERIODS))
    p.add_argument("--days", type=int, default=5, help="periods replayed (the last one is only judged)")
    budget = p.add_mutually_exclusive_group()
    budget.add_argument("--train-epochs", type=int, default=20, help="epochs per model of the initial version and "
                        "of each full retrain: a fixed budget, so a busy machine changes the seconds, not the models")
    budget.add_argument("--train-minutes", type=float, help="a time budget per model instead, as the demo trains")
    p.add_argument("--work-dir", type=Path, help="where the strategies' shops are built [build/bench_loop]")
    p.add_argument("--results-dir", type=Path, default=RESULTS_DIR)
    args = p.parse_args(argv)
    if args.days < 2:
        p.error("--days must be at least 2: one period to learn, the next to judge")
    budget = {"max_minutes": args.train_minutes} if args.train_minutes else {"epochs": args.train_epochs}
    settings = settings.model_copy(update={"train": replace(settings.train, **budget)})
    work = args.work_dir or settings.build_dir / "bench_loop"
    results = []
    report = {"machine": describe_machine(), "python": platform.python_version(), "days": args.days,
              "train_budget": budget, "retrain": {"epochs": settings.retrain.epochs,
                                                               "replay": settings.retrain.replay},
              "gate": {"metric": settings.gate.metric, "tolerance": settings.gate.tolerance}, "datasets": results,
              "skipped": {}}
    args.results_dir.mkdir(parents=True, exist_ok=True)
    for name in args.datasets:
        try:
            results.append(replay(name, args.days, settings, work / name))
        except InputError as exc:  # a public dataset absent from the shared data folder
            print(f"{name} skipped: {exc}")
            report["skipped"][name] = str(exc)
        # written after each dataset, so a long run interrupted later keeps the finished ones
        (args.results_dir / "loop_replay.json").write_text(json.dumps(report, indent=2, default=str) + "\n")
        if results:
            plot(report, args.results_dir / "loop_replay.png")
    print(markdown(report))
    for result in results:
        ratio = result["summary"]["incremental_vs_full"]
        print(f"{result['dataset']}: incremental NDCG@10 {ratio['ndcg@10']}× full's at {ratio['fit_seconds']}× "
              f"its fitting seconds ({ratio['train_seconds']}× with tests and exports)")
    print(f"written to {args.results_dir / 'loop_replay.json'} and .png")
    return 0
