"""Accuracy tables: models and baselines side by side, as markdown."""

from __future__ import annotations

from collections.abc import Mapping

from recstack.training.report import TrainingReport

COLUMNS = ("hr@10", "ndcg@10", "hr@20", "ndcg@20", "mrr", "recall@100", "recall@500", "coverage@10",
           "diversity@10", "novelty@10")


def accuracy_table(dataset: str, reports: Mapping[str, TrainingReport]) -> str:
    """One row per model: full-ranking test metrics (leave-one-out, seen items filtered) and train time."""
    present = [c for c in COLUMNS if any(c in r.test for r in reports.values())]
    sampled = sorted({k for r in reports.values() for k in r.test if k.startswith("sampled")})
    header = ["model", *present, *sampled, "train s"]
    lines = [f"Full ranking over all items, {dataset}, test split; "
             + ("columns `sampled*` rank the target among 100 sampled negatives (older papers' protocol, "
                "not comparable with full ranking)." if sampled else "seen items filtered."),
             "", "| " + " | ".join(header) + " |", "|" + "---|" + "---:|" * (len(header) - 1)]
    for name, report in reports.items():
        cells = [f"{report.test[c]:.4f}" if c in report.test else "" for c in (*present, *sampled)]
        lines.append(f"| {name} | " + " | ".join(cells) + f" | {report.train_seconds} |")
    return "\n".join(lines)
