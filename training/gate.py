"""The quality gate of retraining: the candidate and the serving ranker, ranked in full on the same held-out
events that neither was trained on, and a decision with its reason.

The held-out window is each user's last step in the new data, for the users with events the serving version
never saw: those steps are newer than the serving version's data and held out of the candidate's training. The
serving ranker cannot know items added after it was trained: it is scored as it serves them, with those items
read as unknown in histories and never ranked.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from pathlib import Path

import numpy as np
import torch
from recstack.preprocessing.vocabulary import OOV
from recstack.training.config import GateConfig, SASRecConfig
from recstack.training.data import EvalSet, PreparedData
from recstack.training.evaluate import Scorer, evaluate
from recstack.training.models.sasrec import SASRec
from recstack.training.train_sasrec import sequence_scorer
from recstack.training.warm_start import serving_checkpoint


@dataclass(frozen=True)
class GateResult:
    passed: bool
    reason: str
    metric: str
    users: int  # held-out users both versions were ranked on
    candidate: dict[str, float]
    serving: dict[str, float]

    def to_json(self) -> dict:
        return asdict(self)


def held_out(data: PreparedData, recent_users: np.ndarray, min_users: int) -> tuple[EvalSet, str]:
    """The test rows of users with new events; every test row when fewer than ``min_users`` have one."""
    rows = np.flatnonzero(np.isin(data.test.user_idx, recent_users) & (data.test.user_idx > OOV))
    if len(rows) >= min_users:
        return data.test.subset(rows), "the newest step of each user with new events"
    return data.test, f"every test user (only {len(rows)} with new events, fewer than {min_users})"


def load_ranker(models_dir: Path, n_items: int, config: SASRecConfig) -> SASRec:
    model = SASRec(n_items, config)
    state = torch.load(serving_checkpoint(Path(models_dir) / "sasrec"), map_location="cpu", weights_only=False)
    try:
        model.load_state_dict(state["model"])
    except RuntimeError as exc:  # e.g. RECSTACK_SASREC__HIDDEN changed since that version was trained
        raise ValueError(f"the ranker in {models_dir} was trained with other SASRec settings than the current "
                         f"ones, so the gate cannot compare it: restore them, or publish the new version with "
                         f"`recstack publish` ({str(exc).splitlines()[0]})") from exc
    return model.eval()


def as_served(model: SASRec, n_items: int) -> Scorer:
    """Scores of a ranker trained on a smaller catalog, over ``n_items``: items past its table are read as OOV in
    histories and get no score (as the exported ranker serves them)."""
    score = sequence_scorer(model, torch.device("cpu"))
    known = model.n_items

    def scorer(histories, user_idx):
        clipped = [np.where(h >= known, OOV, h) for h in histories]
        scores = score(clipped, user_idx)
        return torch.nn.functional.pad(scores, (0, n_items - known), value=float("-inf"))
    return scorer


def judge(candidate_dir: Path, serving_dir: Path, serving_items: int, data: PreparedData,
          recent_users: np.ndarray, sasrec: SASRecConfig, config: GateConfig) -> GateResult:
    """Compare the rankers of ``candidate_dir`` and ``serving_dir`` (trained on ``serving_items`` items) on the
    held-out window of ``data``; the candidate passes when its metric is at most ``config.tolerance`` (a share)
    below the serving one."""
    eval_set, window = held_out(data, recent_users, config.min_users)
    candidate = evaluate(sequence_scorer(load_ranker(candidate_dir, data.n_items, sasrec), torch.device("cpu")),
                         data, eval_set)
    serving = evaluate(as_served(load_ranker(serving_dir, serving_items, sasrec), data.n_items), data, eval_set)
    return verdict(candidate, serving, len(eval_set), window, config)


def verdict(candidate: dict[str, float], serving: dict[str, float], users: int, window: str,
            config: GateConfig) -> GateResult:
    """Pass when the candidate's metric is at most ``config.tolerance`` below the serving one, on evidence.

    Examples
    --------
    >>> verdict({"ndcg@10": 0.19}, {"ndcg@10": 0.2}, 50, "recent users", GateConfig()).passed
    True
    >>> verdict({"ndcg@10": 0.18}, {"ndcg@10": 0.2}, 50, "recent users", GateConfig()).reason
    'candidate ndcg@10 0.1800 vs serving 0.2000 on 50 users (recent users): is refused (floor 0.1900, tolerance 5%)'
    >>> verdict({"ndcg@10": float("nan")}, {"ndcg@10": 0.2}, 50, "recent users", GateConfig()).passed
    False
    >>> verdict({"ndcg@10": 0.0}, {"ndcg@10": 0.0}, 0, "recent users", GateConfig()).passed
    False
    """
    ours, theirs = candidate[config.metric], serving[config.metric]
    if users == 0 or not np.isfinite([ours, theirs]).all():
        # No evidence is no pass: an empty window or a diverged model must not publish.
        reason = (f"candidate {config.metric} {ours} vs serving {theirs} on {users} users: is refused "
                  "(no held-out user, or a metric that is not a number)")
        return GateResult(False, reason, config.metric, users, candidate, serving)
    floor = theirs * (1 - config.tolerance)
    passed = ours >= floor
    reason = (f"candidate {config.metric} {ours:.4f} vs serving {theirs:.4f} on {users} users ({window}): "
              f"{'passes' if passed else 'is refused'} (floor {floor:.4f}, tolerance {config.tolerance:.0%})")
    return GateResult(passed, reason, config.metric, users, candidate, serving)
