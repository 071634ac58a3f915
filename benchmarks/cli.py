"""``recstack bench <name>`` / ``python -m benchmarks <name>``."""

from __future__ import annotations

import sys


def _preprocessing(argv: list[str]) -> int:
    from benchmarks.preprocessing_throughput import main

    return main(argv)


def _accuracy(argv: list[str]) -> int:
    from benchmarks.accuracy import main

    return main(argv)


def _sweep(argv: list[str]) -> int:
    from benchmarks.sasrec_sweep import main

    return main(argv)


def _serving(argv: list[str]) -> int:
    from benchmarks.serving_latency import main

    return main(argv)


def _perf_analyzer(argv: list[str]) -> int:
    from benchmarks.perf_analyzer import main

    return main(argv)


def _scoring(argv: list[str]) -> int:
    from benchmarks.batch_scoring import main

    return main(argv)


BENCHMARKS = {"preprocessing": (_preprocessing, "preprocessing throughput, polars vs plain pandas"),
              "accuracy": (_accuracy, "models beside baselines, full-ranking metrics per dataset"),
              "sweep": (_sweep, "how the ranker's defaults were chosen: its settings side by side on a split "
                                "that never holds a test target"),
              "serving": (_serving, "funnel latency and throughput under load: Triton (HTTP, gRPC), the facade on "
                                    "Triton and in-process, per catalog size and candidate count"),
              "perf-analyzer": (_perf_analyzer, "the recommend ensemble driven by NVIDIA's perf_analyzer"),
              "scoring": (_scoring, "batch scoring throughput (users/s), in-process and through Triton")}


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] not in BENCHMARKS:
        listing = "\n".join(f"  {name:<15} {help_}" for name, (_, help_) in BENCHMARKS.items())
        print(f"usage: recstack bench <benchmark> [options]\n\nbenchmarks:\n{listing}",
              file=sys.stderr if argv and argv[0] not in ("-h", "--help") else sys.stdout)
        return 0 if not argv or argv[0] in ("-h", "--help") else 2
    return BENCHMARKS[argv[0]][0](argv[1:])
