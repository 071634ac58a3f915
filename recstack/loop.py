"""``recstack loop``: ingest → retrain → gate → publish, one round every interval until stopped.

Each step is logged with its duration. A stop request (SIGTERM, Ctrl-C) lets the step in progress finish (an
ingest batch, a training run, a publication), then the loop exits before the next step: nothing is left half
done, and the next start resumes from the journal.
"""

from __future__ import annotations

import logging
import re
import threading
import time
from collections.abc import Callable
from contextlib import contextmanager

from recstack.client.core.ingest import Ingest
from recstack.preprocessing.lake import LAKE_NAME, EventLake
from recstack.retrain import decide, gate, retrain
from recstack.settings import Settings
from recstack.versions import VersionsJournal

log = logging.getLogger("recstack.loop")
UNITS_S = {"s": 1, "m": 60, "h": 3600, "d": 86400}


def parse_interval(text: str) -> float:
    """Seconds in ``90s``, ``15m``, ``2h``, ``1d`` or a plain number of seconds.

    Examples
    --------
    >>> parse_interval("15m"), parse_interval("90"), parse_interval("1.5h")
    (900.0, 90.0, 5400.0)
    """
    match = re.fullmatch(r"\s*(\d+(?:\.\d+)?)\s*([smhd]?)\s*", text)
    if match is None or float(match[1]) <= 0:
        raise ValueError(f"{text!r} is not an interval: a positive number with s, m, h or d (e.g. 15m)")
    return float(match[1]) * UNITS_S[match[2] or "s"]


@contextmanager
def step(name: str, times: dict[str, float]):
    log.info("%s ...", name)
    start = time.perf_counter()
    yield
    times[name] = round(time.perf_counter() - start, 2)
    log.info("%s done in %.1f s", name, times[name])


def run_round(settings: Settings, triton_url: str | None, full: bool, canary: float | None,
              stopping: Callable[[], bool]) -> dict:
    """One round; returns the step durations and the outcome (``outcome``: what happened, ``version`` if a
    candidate was built)."""
    times: dict[str, float] = {}
    result: dict = {"seconds": times}
    redis_url = settings.facade_config().redis_url
    if redis_url:
        with step("ingest", times):
            ingest = Ingest(redis_url, EventLake(settings.build_dir / LAKE_NAME))
            try:
                stats = ingest.run(stopping, idle_exit=True)
            finally:
                ingest.close()
            log.info("ingest: %s events to the event log", f"{stats.events:,}")
    else:
        log.info("ingest skipped: no facade Redis (RECSTACK_FACADE__REDIS_URL); the event log is read as it is")
    if stopping():
        return {**result, "outcome": "stopped"}
    with VersionsJournal(settings.versions_dir).round():
        return {**result, **_learn(settings, triton_url, full, canary, stopping, times)}


def _learn(settings: Settings, triton_url: str | None, full: bool, canary: float | None,
           stopping: Callable[[], bool], times: dict[str, float]) -> dict:
    """Retrain, gate and publish, while the round holds the journal."""
    result: dict = {}
    with step("retrain", times):
        candidate = retrain(settings, full=full, progress=False, say=log.info)
    if candidate is None:
        return {**result, "outcome": "nothing new"}
    result["version"] = candidate.entry["version"]
    if stopping():  # an undecided candidate is dropped: the next round builds it again with newer events
        return {**result, "outcome": "stopped"}
    with step("gate", times):
        log.info("gate: %s", gate(settings, candidate).reason)
    if stopping():
        return {**result, "outcome": "stopped"}
    with step("publish" if candidate.gate.passed else "record", times):
        entry = decide(settings, candidate, triton_url, canary, say=log.info)
    return {**result, "outcome": entry["decision"], "freshness_s": entry.get("freshness_s")}


def run_loop(settings: Settings, every_s: float, once: bool, triton_url: str | None, full: bool,
             canary: float | None, stop: threading.Event) -> list[dict]:
    """Rounds every ``every_s`` seconds (measured from each round's start) until ``stop`` is set, or one (whose
    failure is raised; a failed round of a running loop is logged and the loop goes on)."""
    rounds = []
    while not stop.is_set():
        started = time.monotonic()
        try:
            outcome = run_round(settings, triton_url, full, canary, stop.is_set)
        except Exception:
            if once:
                raise
            # A loop left running must outlive a Triton restart or a full disk: the next round tries again.
            log.exception("round %d failed; the next one starts on time", len(rounds) + 1)
            outcome = {"seconds": {}, "outcome": "failed"}
        rounds.append(outcome)
        total = sum(outcome["seconds"].values())
        log.info("round %d: %s in %.1f s (%s)", len(rounds), outcome["outcome"], total,
                 ", ".join(f"{name} {s:.1f} s" for name, s in outcome["seconds"].items()))
        if once:
            break
        stop.wait(max(0.0, every_s - (time.monotonic() - started)))
    return rounds
