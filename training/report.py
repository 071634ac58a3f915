"""The typed training report: what one model's run measured, as ``metrics.json`` records it per model."""

from __future__ import annotations

from dataclasses import asdict, dataclass, field


@dataclass
class TrainingReport:
    """One model's training run. Baselines fill the first four fields; the neural models all of them (``test``
    only on torchrun's main process).

    Examples
    --------
    >>> report = TrainingReport("most_popular", test={"ndcg@10": 0.01}, test_users=100, train_seconds=0.2)
    >>> report.to_json()
    {'model': 'most_popular', 'test': {'ndcg@10': 0.01}, 'test_users': 100, 'train_seconds': 0.2}
    >>> TrainingReport.from_json(report.to_json()) == report
    True
    """

    model: str
    test: dict[str, float] = field(default_factory=dict)  # full-ranking test metrics of the final model
    test_users: int = 0
    train_seconds: float = 0.0
    version: str | None = None  # <model>-<dataset fingerprint>-<config hash>-e<best epoch>[-f<finish epochs>]
    resumed: bool | None = None
    world_size: int | None = None
    epochs: int | None = None
    best_epoch: int | None = None
    session_seconds: float | None = None  # this session's wall time (a resumed run's earlier ones excluded)
    device: str | None = None
    precision: str | None = None
    loss: str | None = None  # the training loss chosen (``auto`` resolved), e.g. "full" or "sampled"
    history: list[dict] = field(default_factory=list)  # one record per epoch: loss, validation metrics, seconds
    test_best_checkpoint: dict[str, float] | None = None  # with finishing epochs: the early-stopped model's test
    finish_epochs: int | None = None
    finish_seconds: float | None = None
    onnx_parity: dict | None = None  # max |onnx - torch| per exported graph

    def quality_curve(self, metric: str = "ndcg@10") -> list[tuple[float, float]]:
        """(training minutes, validation ``metric``) at every validation, in order."""
        return [(round(r["seconds"] / 60, 2), r[f"valid_{metric}"]) for r in self.history if f"valid_{metric}" in r]

    def minutes_to_quality(self, share: float = 0.95, metric: str = "ndcg@10") -> float | None:
        """Training minutes until validation ``metric`` first reached ``share`` of its best (None: never validated).

        Examples
        --------
        >>> history = [{"seconds": 60, "valid_ndcg@10": 0.10}, {"seconds": 120, "valid_ndcg@10": 0.19},
        ...            {"seconds": 180, "valid_ndcg@10": 0.20}]
        >>> TrainingReport("sasrec", history=history).minutes_to_quality()
        2.0
        """
        curve = self.quality_curve(metric)
        if not curve:
            return None
        best = max(value for _, value in curve)
        return next(minutes for minutes, value in curve if value >= share * best)

    def to_json(self) -> dict:
        """The ``metrics.json`` entry: unset fields left out."""
        return {k: v for k, v in asdict(self).items() if v is not None and v != []}

    @classmethod
    def from_json(cls, data: dict) -> TrainingReport:
        return cls(**data)
