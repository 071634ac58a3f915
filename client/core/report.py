"""The offline experiment report: per variant, how often served lists led to a click or a purchase, with Wilson
95% confidence intervals, from the exposure log and the event stream (``recstack report``)."""

from __future__ import annotations

import math
from collections import defaultdict
from datetime import UTC, datetime

CLICKS = ("click", "add_to_cart", "purchase")


def wilson(successes: int, trials: int, z: float = 1.96) -> tuple[float, float]:
    """Wilson score interval of a proportion.

    Examples
    --------
    >>> [round(x, 3) for x in wilson(10, 100)]
    [0.055, 0.174]
    """
    if trials == 0:
        return 0.0, 0.0
    p = successes / trials
    centre = (p + z * z / (2 * trials)) / (1 + z * z / trials)
    half = z * math.sqrt(p * (1 - p) / trials + z * z / (4 * trials * trials)) / (1 + z * z / trials)
    return max(0.0, centre - half), min(1.0, centre + half)


def _seconds(value) -> float:
    """Unix seconds of an event time; an ISO time without an offset is UTC, as the facade records it."""
    if not isinstance(value, str):
        return float(value)
    moment = datetime.fromisoformat(value)
    return (moment if moment.tzinfo else moment.replace(tzinfo=UTC)).timestamp()


def experiment_report(exposures: list[dict], events: list[dict], window_s: float = 86_400.0) -> dict:
    """A list counts as clicked when its user clicked (or carted, or bought) one of its items within
    ``window_s`` after it was served, and as converted when they bought one."""
    by_user: dict[str, list[tuple[float, str, str]]] = defaultdict(list)
    for event in events:
        by_user[event["user_id"]].append((_seconds(event["timestamp"]), event["item_id"], event["event_type"]))
    table: dict[tuple[str, str], dict] = defaultdict(lambda: {"lists": 0, "clicked": 0, "converted": 0})
    wins: dict[str, dict[str, int]] = defaultdict(lambda: defaultdict(int))
    skipped = 0
    for exposure in exposures:
        if not exposure.get("experiment_id"):
            continue
        if exposure.get("degraded"):  # the fallback answered, not the variant
            skipped += 1
            continue
        row = table[exposure["experiment_id"], exposure["variant"]]
        row["lists"] += 1
        shown, start = set(exposure["items"]), float(exposure["at"])
        later = [(kind, item) for at, item, kind in by_user.get(exposure["user_id"], ())
                 if start <= at <= start + window_s and item in shown]
        row["clicked"] += any(kind in CLICKS for kind, _ in later)
        row["converted"] += any(kind == "purchase" for kind, _ in later)
        if exposure.get("teams"):
            # Interleaving credit: the team whose items drew more clicks wins the impression.
            team_of = dict(zip(exposure["items"], exposure["teams"], strict=True))
            clicks = defaultdict(int)
            for kind, item in later:
                if kind in CLICKS:
                    clicks[team_of[item]] += 1
            if clicks:
                ranked = sorted(clicks.items(), key=lambda kv: -kv[1])
                winner = "tie" if len(ranked) > 1 and ranked[0][1] == ranked[1][1] else ranked[0][0]
                wins[exposure["experiment_id"]][winner] += 1
    out = []
    for (experiment, variant), row in sorted(table.items()):
        ctr, conversion = (row["clicked"] / row["lists"], row["converted"] / row["lists"])
        out.append({"experiment_id": experiment, "variant": variant, **row, "ctr": ctr,
                    "ctr_ci95": wilson(row["clicked"], row["lists"]), "conversion": conversion,
                    "conversion_ci95": wilson(row["converted"], row["lists"])})
    return {"window_s": window_s, "variants": out, "degraded_lists_left_out": skipped,
            "interleaving_wins": {experiment: dict(counts) for experiment, counts in wins.items()}}


def format_report(report: dict) -> str:
    lines = ["| experiment | variant | lists | CTR | 95% CI | conversion | 95% CI |",
             "|---|---|---:|---:|---|---:|---|"]
    for experiment, counts in report.get("interleaving_wins", {}).items():
        lines.insert(0, f"interleaving {experiment}: impressions won " + ", ".join(
            f"{team} {n}" for team, n in sorted(counts.items())))
    for r in report["variants"]:
        lines.append(f"| {r['experiment_id']} | {r['variant']} | {r['lists']} | {r['ctr']:.3f} | "
                     f"{r['ctr_ci95'][0]:.3f}–{r['ctr_ci95'][1]:.3f} | {r['conversion']:.3f} | "
                     f"{r['conversion_ci95'][0]:.3f}–{r['conversion_ci95'][1]:.3f} |")
    return "\n".join(lines)
