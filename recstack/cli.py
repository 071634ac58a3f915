"""The ``recstack`` console script (also ``python -m recstack``): one sub-command per stage.

It builds :class:`recstack.settings.Settings` once and hands it to the command, which passes the parts down to
the stages; each command's module is imported only when it runs, so ``recstack serve api`` never imports torch.
"""

from __future__ import annotations

import importlib
import sys

# name -> (module under recstack, its entry point ``f(argv, settings) -> exit code``, help)
COMMANDS: dict[str, tuple[str, str, str]] = {
    "demo": ("demo", "main", "run every stage end to end on the default synthetic data"),
    "data": ("commands.preprocess", "data_main", "write the synthetic dataset as generic-schema files"),
    "preprocess": ("commands.preprocess", "preprocess_main", "preprocess a dataset into the training layout"),
    "train": ("commands.train", "main", "train, evaluate and export models on a prepared dataset"),
    "build-repo": ("commands.triton", "build_main", "assemble the Triton model repository from trained models"),
    "publish": ("commands.publish", "publish_main", "build a new repository version and serve it (by default, or "
                                                     "as a canary for a share of users)"),
    "promote": ("commands.publish", "promote_main", "make the canary version the default"),
    "rollback": ("commands.publish", "rollback_main", "withdraw the canary, or return to the previous default"),
    "serve": ("commands.serve", "main", "serve triton|api: run Triton over the model repository, or the FastAPI "
                                        "facade"),
    "score": ("commands.score", "main", "batch scoring: top-K with reasons for every user, to parquet and CSV"),
    "report": ("commands.report", "main", "experiment report: CTR and conversion per variant with 95% intervals"),
    "keys": ("commands.keys", "main", "create, list or revoke the facade's API keys"),
    "forget": ("commands.forget", "main", "delete users from every store recstack keeps"),
    "ingest": ("commands.ingest", "main", "move the facade's events from Redis to the event log (build/lake)"),
    "retrain": ("commands.retrain", "retrain_main", "train a new version on the event log, gate it, publish it"),
    "loop": ("commands.retrain", "loop_main", "ingest → retrain → gate → publish, every interval until stopped"),
    "bench": ("commands.bench", "main", "benchmarks (figures as JSON + PNG under benchmarks/results/)"),
}


def usage() -> str:
    lines = ["usage: recstack <command> [options]", "", "commands:"]
    lines += [f"  {name:<11} {help_}" for name, (_, _, help_) in COMMANDS.items()]
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
    from pydantic import ValidationError

    from recstack.settings import Settings

    try:
        settings = Settings()
    except (ValidationError, ValueError) as exc:
        print(f"recstack: the RECSTACK_ environment variables do not make valid settings:\n{exc}", file=sys.stderr)
        return 2
    module, entry, _ = command
    return getattr(importlib.import_module(f"recstack.{module}"), entry)(argv[1:], settings)


if __name__ == "__main__":
    sys.exit(main())
