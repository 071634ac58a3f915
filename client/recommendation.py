"""The one recommendation type, from the engine's output tensors to the API's answer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

# The output tensors of the recommend, similar and trending models, in this order.
OUTPUTS = ("item_ids", "item_idx", "scores", "reasons", "model_version")


@dataclass(frozen=True)
class Recommendation:
    item_id: str
    item_idx: int
    score: float
    reason: str


@dataclass(frozen=True)
class RecommendationList:
    items: list[Recommendation]
    model_version: str

    @property
    def item_ids(self) -> list[str]:
        return [r.item_id for r in self.items]


def lists(outputs: dict[str, np.ndarray]) -> list[RecommendationList]:
    """Output tensors → one list per user, padding dropped."""
    out = []
    for row in range(len(outputs["item_idx"])):
        keep = outputs["item_idx"][row] >= 0
        items = [Recommendation(i.decode(), int(x), float(s), r.decode())
                 for i, x, s, r in zip(outputs["item_ids"][row][keep], outputs["item_idx"][row][keep],
                                       outputs["scores"][row][keep], outputs["reasons"][row][keep], strict=True)]
        out.append(RecommendationList(items, outputs["model_version"][row][0].decode()))
    return out
