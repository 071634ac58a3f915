"""``recstack bench <name>``: the benchmarks, each writing JSON + PNG under ``benchmarks/results/``."""

from __future__ import annotations

import importlib
import sys

from recstack.settings import Settings

# name -> (module of recstack.benchmarks, what it measures); each module has ``main(argv, settings)``.
BENCHMARKS = {"preprocessing": ("preprocessing_throughput", "preprocessing throughput, polars vs plain pandas"),
              "accuracy": ("accuracy", "models beside baselines, full-ranking metrics per dataset"),
              "training": ("training_throughput", "the ranker's training tokens/s and epoch time, length-aware "
                                                  "batches vs full-window padding, and the rank stage's cost"),
              "sweep": ("sasrec_sweep", "how the ranker's defaults were chosen: its settings side by side on a "
                                        "split that never holds a test target"),
              "serving": ("serving_latency", "funnel latency and throughput under load: Triton (HTTP, gRPC), the "
                                             "facade on Triton and in-process, per catalog size and candidate count"),
              "perf-analyzer": ("perf_analyzer", "the recommend ensemble driven by NVIDIA's perf_analyzer"),
              "loop": ("loop_replay", "the closed loop replayed day by day: frozen vs incremental vs full retrain, "
                                      "next-day NDCG@10/HR@10, training seconds, freshness"),
              "scoring": ("batch_scoring", "batch scoring throughput (users/s), in-process and through Triton"),
              "security": ("security_overhead", "what API keys and rate limits add to a request's latency"),
              "events": ("events_durability", "what an acknowledged event costs with Redis fsync always vs "
                                              "everysec, and what survives a killed Redis"),
              "objectives": ("objectives", "multi-objective ranking offline: relevance vs purchase- and revenue-"
                                           "weighted re-ranks, NDCG@10 (all, purchases) and revenue@10"),
              "chaos": ("chaos", "open-loop load while Triton and Redis are killed and restarted and slow clients "
                                 "crowd the facade: statuses, degradation, recovery, lost events, RSS")}


def main(argv: list[str], settings: Settings) -> int:
    if not argv or argv[0] not in BENCHMARKS:
        listing = "\n".join(f"  {name:<15} {help_}" for name, (_, help_) in BENCHMARKS.items())
        print(f"usage: recstack bench <benchmark> [options]\n\nbenchmarks:\n{listing}",
              file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    module = importlib.import_module(f"recstack.benchmarks.{BENCHMARKS[argv[0]][0]}")
    return module.main(argv[1:], settings)
