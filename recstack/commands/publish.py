"""``recstack publish``, ``promote`` and ``rollback``: which repository version serves, switched without a restart
(:mod:`recstack.ensemble.publish`)."""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

from recstack.ensemble.build import BuildError
from recstack.ensemble.publish import promote, publish, rollback
from recstack.ensemble.server import TritonError
from recstack.ensemble.serving import ServingError
from recstack.retrain import now
from recstack.settings import Settings
from recstack.versions import VersionsJournal

RELOAD_HELP = "the Triton server (HTTP address) that switches without a restart; without it only the repository " \
              "changes (a server started later serves it)"


def share(text: str) -> float:
    value = float(text)
    if not 0 < value < 1:
        raise argparse.ArgumentTypeError(f"a share of users within (0, 1); got {text}")
    return value


def publish_parser() -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog="recstack publish", description="Build a new repository version from prepared "
                                "data and trained models and make it serve: by default, or with --canary for a "
                                "share of users beside the default (the facade's experiments compare them).")
    p.add_argument("--data", type=Path, help="prepared dataset folder [build/data/synthetic]")
    p.add_argument("--models", type=Path, help="trained models folder [build/models/<dataset>]")
    p.add_argument("--repository", type=Path, help="model repository [build/model_repository]")
    p.add_argument("--rules", type=Path, help="business rules JSON (as for build-repo)")
    p.add_argument("--new-items", type=Path, help="items added since training (as for build-repo)")
    p.add_argument("--canary", type=share, metavar="SHARE", help="serve the new version to this share of users "
                   "(e.g. 0.1) until `recstack promote`")
    p.add_argument("--reload", metavar="HOST:PORT", help=RELOAD_HELP)
    return p


DECISIONS = {"promote": "promoted", "rollback": "rolled back"}  # their lines in the versions journal


def move_parser(command: str, description: str) -> argparse.ArgumentParser:
    p = argparse.ArgumentParser(prog=f"recstack {command}", description=description)
    p.add_argument("--repository", type=Path, help="model repository [build/model_repository]")
    p.add_argument("--reload", metavar="HOST:PORT", help=RELOAD_HELP)
    return p


def describe(state: dict) -> str:
    canary = (f"; version {state['canary']} for {state['canary_share']:.0%} of users (canary)"
              if state["canary"] is not None else "")
    back = f"; rollback returns to version {state['previous'][-1]}" if state["previous"] else ""
    return f"version {state['default']} serves by default{canary}{back}"


def publish_main(argv: list[str], settings: Settings) -> int:
    args = publish_parser().parse_args(argv)
    data = args.data or settings.data_output("synthetic")
    models = args.models or settings.models_output(Path(data).name)
    try:
        report = publish(data, models, args.repository or settings.model_repository, settings.serving,
                         triton_url=args.reload, new_items=args.new_items, rules=args.rules, canary=args.canary)
    except (BuildError, ValueError, FileNotFoundError, TritonError) as exc:
        print(f"recstack publish: {exc}", file=sys.stderr)
        return 1
    print(describe(report["serving"]) + (f" (Triton at {args.reload})" if args.reload else ""))
    return 0


def _move(command: str, move, description: str, argv: list[str], settings: Settings) -> int:
    args = move_parser(command, description).parse_args(argv)
    try:
        state = move(args.repository or settings.model_repository, args.reload)
    except (ServingError, FileNotFoundError, TritonError) as exc:
        print(f"recstack {command}: {exc}", file=sys.stderr)
        return 1
    print(f"{describe(state)} (switched in {state['seconds']:.2f} s)")
    journal = VersionsJournal(settings.versions_dir)
    served = journal.served_by(state["default"])
    journal.append({"version": served["version"] if served else None, "at": now(), "decision": DECISIONS[command],
                    "repository_version": state["default"], "canary": state["canary"], "reason": describe(state)})
    if not args.reload:
        print("no --reload: only the repository changed (a server started now serves it)")
    return 0


def promote_main(argv: list[str], settings: Settings) -> int:
    return _move("promote", promote, "Make the canary the default version (the old default stays loaded for a "
                 "rollback).", argv, settings)


def rollback_main(argv: list[str], settings: Settings) -> int:
    return _move("rollback", rollback, "Withdraw the canary or, without one, make the previous default version serve "
                 "again.", argv, settings)
