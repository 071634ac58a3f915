"""Multi-objective ranking offline: relevance alone against purchase- and revenue-weighted re-ranks, on the
synthetic shop with an item-dependent funnel (``conversion_spread``, ``price_sensitivity``).

SASRec is trained with its objective heads (``SASRecConfig.objectives``). Each test user's next step is then
ranked as the funnel ranks it: the 500 best-scored unseen items are the candidates (the funnel's candidate count;
seen items are never recommended, so a next step back to a seen item is a miss here, while the training report's
test keeps it rankable: its NDCG@10 is higher),
their relevance is the min-max scaled score, and each weighting of :class:`ObjectiveWeights` re-orders them with
:func:`~recstack.ensemble.objectives.objective_scores` (the re-rank's diversity and business rules are left out:
they act alike on every weighting). Reported per weighting:

- ``ndcg@10``: NDCG@10 of the next step's item, every test user;
- ``ndcg@10_purchase``: the same over the users whose next step ended in a purchase;
- ``revenue@10``: realised revenue per test user: the price of the next step's item when that step was a purchase
  and the item is in the top 10, else 0 (what the list would have earned had the user bought from it);
- ``expected_revenue@10``: the model's own estimate, Σ over the top 10 of P(purchase | next step) · price,
  a per-user figure of what the list is worth by the heads (not a measurement);

and the heads' AUC on the test targets (P(click), P(add-to-cart), P(purchase) of the next step's item against
whether that step reached them; 0.5 is a constant).

    recstack bench objectives                         # 60k events, about two minutes on 2 cores
    recstack bench objectives --events 200000 --minutes 5
"""

from __future__ import annotations

import argparse
import json
import time
from pathlib import Path

import numpy as np
import polars as pl
import torch
from recstack.benchmarks.machine import describe_machine
from recstack.benchmarks.plots import figure
from recstack.ensemble.config import ObjectiveWeights
from recstack.ensemble.objectives import min_max, objective_scores, relative_value
from recstack.preprocessing.datasets.synthetic import SyntheticConfig, generate_synthetic
from recstack.preprocessing.layout import PreparedLayout
from recstack.preprocessing.pipeline import preprocess
from recstack.preprocessing.vocabulary import FIRST_INDEX
from recstack.training.config import OBJECTIVES, SASRecConfig, TrainConfig
from recstack.training.data import FUNNEL, UNKNOWN_STAGE, PreparedData, load_prepared, pad_left
from recstack.training.models.sasrec import SASRec
from recstack.training.train_sasrec import train_sasrec

from recstack.settings import Settings

RESULTS_DIR = Path(__file__).resolve().parent / "results"
CANDIDATES = 500  # the funnel's default candidate count (RetrieveConfig.candidates)
K = 10
# The shop: conversion varies by item (hidden appeal) and falls with price within a category.
SHOP = {"conversion_spread": 1.0, "price_sensitivity": 1.0}
# Prices are heavy-tailed (up to ~20x the median), so revenue weights of 1 or more hand the list to the dearest
# items whatever the user wants (first run: NDCG@10 0.003); these span the trade-off.
WEIGHTINGS = {"relevance": ObjectiveWeights(), "purchase 0.3": ObjectiveWeights(purchase=0.3),
              "revenue 0.02": ObjectiveWeights(revenue=0.02), "revenue 0.05": ObjectiveWeights(revenue=0.05),
              "revenue 0.2": ObjectiveWeights(revenue=0.2)}
PURCHASE = 1 + FUNNEL.index("purchase")


def target_stages(data: PreparedData) -> np.ndarray:
    """The funnel stage (``FUNNEL``, 1-based; ``UNKNOWN_STAGE`` without funnel events) of each test user's first
    target item, in ``data.test`` order: its furthest event in the test events."""
    layout = PreparedLayout(data.folder)
    users = pl.read_parquet(layout.eval_test, columns=["user_id", "targets"]).with_columns(
        pl.col("targets").list.first().cast(pl.Int64).alias("item_idx"))
    codes = {name: stage for stage, name in enumerate(FUNNEL, start=1)}
    events = (pl.read_parquet(layout.events("test"), columns=["user_id", "item_idx", "event_type"])
              .with_columns(pl.col("event_type").replace_strict(codes, default=UNKNOWN_STAGE, return_dtype=pl.Int8)
                            .alias("stage"), pl.col("item_idx").cast(pl.Int64))
              .group_by("user_id", "item_idx").agg(pl.col("stage").max()))
    joined = users.join(events, on=["user_id", "item_idx"], how="left", maintain_order="left")
    return joined["stage"].fill_null(UNKNOWN_STAGE).to_numpy()


def auc(scores: np.ndarray, positive: np.ndarray) -> float:
    """Area under the ROC curve (ties count half); NaN without both classes.

    Examples
    --------
    >>> auc(np.array([0.1, 0.4, 0.35, 0.8]), np.array([False, False, True, True]))
    0.75
    """
    n_pos, n_neg = int(positive.sum()), int((~positive).sum())
    if not n_pos or not n_neg:
        return float("nan")
    ranks = pl.Series(scores).rank("average").to_numpy()
    return float((ranks[positive].sum() - n_pos * (n_pos + 1) / 2) / (n_pos * n_neg))


@torch.no_grad()
def rank_candidates(model: SASRec, data: PreparedData, batch_size: int = 256):
    """Per test user: the ``CANDIDATES`` best-scored unseen items, their scores and objective probabilities, and the
    target's probabilities (users in ``data.test`` order)."""
    model.eval()
    window = model.config.max_length
    everything = torch.arange(data.n_items).unsqueeze(0)
    parts = {"candidates": [], "scores": [], "probabilities": [], "target_probabilities": []}
    for start in range(0, len(data.test), batch_size):
        histories = data.test.histories[start:start + batch_size]
        seq = torch.from_numpy(pad_left(histories, window))
        scores, probabilities = model.score_objectives(seq, everything.expand(len(seq), -1))
        for row, history in enumerate(histories):
            scores[row, history[history >= FIRST_INDEX]] = float("-inf")  # seen items are never recommended
        top = torch.topk(scores, CANDIDATES, dim=1).indices
        targets = torch.tensor([int(t[0]) for t in data.test.targets[start:start + batch_size]])
        parts["candidates"].append(top.numpy())
        parts["scores"].append(torch.gather(scores, 1, top).numpy())
        parts["probabilities"].append(torch.gather(probabilities, 1, top.unsqueeze(-1).expand(-1, -1, 3)).numpy())
        parts["target_probabilities"].append(probabilities[torch.arange(len(seq)), targets].numpy())
    return {name: np.concatenate(values) for name, values in parts.items()}


def weighting_metrics(ranked: dict, targets: np.ndarray, stages: np.ndarray, price: np.ndarray,
                      weights: ObjectiveWeights) -> dict:
    """The report's metrics of one weighting (module docstring)."""
    candidates = ranked["candidates"]
    valid = np.isfinite(ranked["scores"])
    value = relative_value(price)[candidates]
    scores = objective_scores(min_max(ranked["scores"], valid), ranked["probabilities"], value, weights)
    order = np.argsort(np.where(valid, -scores, np.inf), axis=1, kind="stable")[:, :K]
    top = np.take_along_axis(candidates, order, 1)
    hit = top == targets[:, None]
    gain = (hit / np.log2(np.arange(2, K + 2))).sum(1)
    bought = stages == PURCHASE
    p_purchase = np.take_along_axis(ranked["probabilities"][..., OBJECTIVES.index("purchase")], order, 1)
    return {"ndcg@10": round(float(gain.mean()), 4),
            "ndcg@10_purchase": round(float(gain[bought].mean()), 4),
            "revenue@10": round(float((hit.any(1) & bought) @ price[targets] / len(targets)), 3),
            "expected_revenue@10": round(float((p_purchase * price[top]).sum(1).mean()), 3)}


def run(events: int, minutes: float, seed: int, out: Path, say=print) -> dict:
    data_dir, model_dir = out / "data", out / "model"
    began = time.perf_counter()
    preprocess(generate_synthetic(SyntheticConfig(n_events=events, seed=seed, **SHOP)), data_dir, progress=False)
    data = load_prepared(data_dir).with_funnel_stages()
    config = SASRecConfig(objectives=True, hidden=64, max_length=50)
    trained = train_sasrec(data, model_dir, config, TrainConfig(max_minutes=minutes, seed=seed, device="cpu"),
                           resume=False, progress=False)
    model = trained.model.cpu()
    say(f"trained in {trained.report.train_seconds:.0f} s (best epoch {trained.report.best_epoch}), "
        f"test NDCG@10 {trained.report.test['ndcg@10']:.4f}")
    ranked = rank_candidates(model, data)
    stages = target_stages(data)
    targets = np.array([int(t[0]) for t in data.test.targets])
    price = np.zeros(data.n_items)
    price[data.items["item_idx"].to_numpy()] = data.items["price"].fill_null(0.0).to_numpy()
    known = stages != UNKNOWN_STAGE
    heads_auc = {name: round(auc(ranked["target_probabilities"][known, i], stages[known] >= 2 + i), 4)
                 for i, name in enumerate(OBJECTIVES)}
    results = {name: weighting_metrics(ranked, targets, stages, price, weights)
               for name, weights in WEIGHTINGS.items()}
    return {"benchmark": "objectives", "machine": describe_machine(), "events": events, "shop": SHOP,
            "test_users": len(targets), "purchase_targets": int((stages == PURCHASE).sum()),
            "candidates": CANDIDATES, "sasrec": {"hidden": config.hidden, "max_length": config.max_length,
                                                 "objective_weight": config.objective_weight,
                                                 "train_seconds": trained.report.train_seconds,
                                                 "best_epoch": trained.report.best_epoch},
            "heads_auc": heads_auc, "weights": {name: vars(w) for name, w in WEIGHTINGS.items()},
            "results": results, "seconds": round(time.perf_counter() - began, 1)}


def table(report: dict) -> str:
    lines = ["| weighting | NDCG@10 | NDCG@10 (purchases) | revenue@10 | expected revenue@10 |",
             "|---|---|---|---|---|"]
    for name, m in report["results"].items():
        lines.append(f"| {name} | {m['ndcg@10']:.4f} | {m['ndcg@10_purchase']:.4f} | {m['revenue@10']:.3f} | "
                     f"{m['expected_revenue@10']:.2f} |")
    return "\n".join(lines)


def plot(report: dict, path: Path) -> None:
    names = list(report["results"])
    with figure(path) as (fig, (left, right)):
        for key, label in (("ndcg@10", "all next items"), ("ndcg@10_purchase", "purchases")):
            left.plot(names, [report["results"][n][key] for n in names], marker="o", label=label)
        left.set_ylabel("NDCG@10")
        left.legend()
        right.plot(names, [report["results"][n]["revenue@10"] for n in names], marker="o", color="C2")
        right.set_ylabel("realised revenue@10 per test user")
        for ax in (left, right):
            ax.tick_params(axis="x", rotation=30)
        fig.suptitle(f"objective weightings, synthetic shop ({report['events']:,} events), "
                     f"{report['machine']['summary']}", fontsize=9)


def main(argv: list[str], settings: Settings) -> int:
    parser = argparse.ArgumentParser(prog="recstack bench objectives", description=__doc__.split("\n\n")[0])
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--minutes", type=float, default=1.5, help="the ranker's training budget")
    parser.add_argument("--results", type=Path, default=RESULTS_DIR)
    args = parser.parse_args(argv)
    report = run(args.events, args.minutes, settings.seed, settings.build_dir / "bench" / "objectives")
    print(f"heads AUC on the test targets: {report['heads_auc']}")
    print(table(report))
    args.results.mkdir(parents=True, exist_ok=True)
    (args.results / "objectives.json").write_text(json.dumps(report, indent=2))
    plot(report, args.results / "objectives.png")
    print(f"wrote {args.results / 'objectives.json'} and objectives.png")
    return 0
