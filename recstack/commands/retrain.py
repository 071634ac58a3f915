"""``recstack retrain`` and ``recstack loop``: learn from the event log, judge, publish (:mod:`recstack.retrain`,
:mod:`recstack.loop`)."""

from __future__ import annotations

import argparse
import logging
import signal
import sys
import threading

from recstack.commands.publish import share
from recstack.ensemble.build import BuildError
from recstack.ensemble.server import TritonError
from recstack.ensemble.serving import ServingError
from recstack.loop import parse_interval, run_loop
from recstack.retrain import RetrainError, decide, gate, retrain
from recstack.settings import Settings
from recstack.versions import RoundInProgress, VersionsJournal

FAILURES = (RetrainError, RoundInProgress, BuildError, ServingError, TritonError, FileNotFoundError, ValueError)
CANARY_HELP = ("publish a version that passes the gate as a canary for this share of users (e.g. 0.1), beside the "
               "default, until `recstack promote`; the facade's experiment report compares them")


def retrain_main(argv: list[str], settings: Settings) -> int:
    p = argparse.ArgumentParser(prog="recstack retrain", description="Train a new version from the serving one and "
                                "the event log's new events (build/lake), judge it against the serving version on "
                                "the newest held-out events, then publish it or record why not "
                                "(build/versions/journal.jsonl).")
    p.add_argument("--full", action="store_true", help="train from scratch on the whole log instead of warm-starting "
                   "from the serving weights on the new events (indices of users and items stay as they are)")
    p.add_argument("--reload", metavar="HOST:PORT", help="make the Triton server at this HTTP address load the "
                   "published version (no restart)")
    p.add_argument("--canary", type=share, metavar="SHARE", help=CANARY_HELP)
    p.add_argument("--dry-run", action="store_true", help="judge the candidate, publish nothing and record no "
                   "decision (its folder stays in build/versions for a look; the next round replaces it)")
    args = p.parse_args(argv)
    try:
        with VersionsJournal(settings.versions_dir).round():
            candidate = retrain(settings, full=args.full)
            if candidate is None:
                return 0
            result = gate(settings, candidate)
            print(f"gate: {result.reason}")
            if args.dry_run:
                print(f"dry run: version {candidate.entry['version']} in {candidate.entry['models_dir']} is "
                      "neither published nor recorded")
                return 0 if result.passed else 3
            entry = decide(settings, candidate, args.reload, args.canary)
    except FAILURES as exc:
        print(f"recstack retrain: {exc}", file=sys.stderr)
        return 1
    return 3 if entry["decision"] == "refused" else 0


def loop_main(argv: list[str], settings: Settings) -> int:
    p = argparse.ArgumentParser(prog="recstack loop", description="Ingest the facade's events, retrain, gate and "
                                "publish, every interval until stopped (SIGTERM or Ctrl-C finishes the step in "
                                "progress, then exits). Each step is logged with its duration.")
    p.add_argument("--every", default="15m", help="interval between round starts: 90s, 15m, 2h, 1d [15m]")
    p.add_argument("--once", action="store_true", help="run one round, then exit")
    p.add_argument("--reload", metavar="HOST:PORT", help="the Triton server (HTTP address) that loads each "
                   "published version")
    p.add_argument("--full", action="store_true", help="retrain from scratch every round")
    p.add_argument("--canary", type=share, metavar="SHARE", help=CANARY_HELP)
    args = p.parse_args(argv)
    try:
        every_s = parse_interval(args.every)
    except ValueError as exc:
        p.error(str(exc))
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(message)s")
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    try:
        rounds = run_loop(settings, every_s, args.once, args.reload, args.full, args.canary, stop)
    except FAILURES as exc:
        print(f"recstack loop: {exc}", file=sys.stderr)
        return 1
    return 3 if args.once and rounds and rounds[-1]["outcome"] == "refused" else 0
