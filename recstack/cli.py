"""The ``recstack`` console script: one sub-command per stage, each also ``python -m <stage>``."""

from __future__ import annotations

import sys
from collections.abc import Callable


def _preprocess(argv: list[str]) -> int:
    from preprocessing.cli import preprocess_main

    return preprocess_main(argv)


def _data(argv: list[str]) -> int:
    from preprocessing.cli import data_main

    return data_main(argv)


def _train(argv: list[str]) -> int:
    from training.cli import main

    return main(argv)


def _build_repo(argv: list[str]) -> int:
    from ensemble.cli import build_main

    return build_main(argv)


def _serve(argv: list[str]) -> int:
    from client.api.main import serve_main as serve_api
    from ensemble.cli import serve_main

    servers = {"triton": serve_main, "api": serve_api}
    if not argv or argv[0] not in servers:
        print(f"usage: recstack serve {{{'|'.join(servers)}}} [options]", file=sys.stderr)
        return 0 if argv and argv[0] in ("-h", "--help") else 2
    return servers[argv[0]](argv[1:])


def _score(argv: list[str]) -> int:
    from client.scoring import main

    return main(argv)


def _report(argv: list[str]) -> int:
    from client.core.report import main

    return main(argv)


def _bench(argv: list[str]) -> int:
    from benchmarks.cli import main

    return main(argv)


def _demo(argv: list[str]) -> int:
    from recstack.demo import main

    return main(argv)


COMMANDS: dict[str, tuple[Callable[[list[str]], int], str]] = {
    "demo": (_demo, "run every stage end to end on the default synthetic data"),
    "data": (_data, "write the synthetic dataset as generic-schema files"),
    "preprocess": (_preprocess, "preprocess a dataset into the training layout (python -m preprocessing)"),
    "train": (_train, "train, evaluate and export models on a prepared dataset (python -m training)"),
    "build-repo": (_build_repo, "assemble the Triton model repository from trained models (python -m ensemble build)"),
    "serve": (_serve, "serve triton|api: run Triton over the model repository, or the FastAPI facade"),
    "score": (_score, "batch scoring: top-K with reasons for every user, to parquet and CSV"),
    "report": (_report, "experiment report: CTR and conversion per variant with 95% intervals"),
    "bench": (_bench, "benchmarks (python -m benchmarks)"),
}


def usage() -> str:
    lines = ["usage: recstack <command> [options]", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, help_) in COMMANDS.items()]
    lines += ["", "`recstack <command> --help` describes each command's options."]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = sys.argv[1:] if argv is None else argv
    if not argv or argv[0] in ("-h", "--help"):
        print(usage())
        return 0
    command = COMMANDS.get(argv[0])
    if command is None:
        print(f"recstack: unknown command {argv[0]!r}\n\n{usage()}", file=sys.stderr)
        return 2
    return command[0](argv[1:])


if __name__ == "__main__":
    sys.exit(main())
