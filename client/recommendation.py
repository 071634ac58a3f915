"""The one recommendation type, from the engine's output tensors to the API's answer."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
from pydantic import BaseModel, ConfigDict, Field


class Recommendation(BaseModel):
    """One recommended item with its reason and the model version that chose it.

    Examples
    --------
    >>> r = Recommendation(item_id="i7", score=0.9, reason="trending", model_version="m1", item_idx=7)
    >>> r.model_dump(), r.item_idx
    ({'item_id': 'i7', 'score': 0.9, 'reason': 'trending', 'model_version': 'm1'}, 7)
    """

    model_config = ConfigDict(frozen=True)

    item_id: str
    score: float
    reason: str
    model_version: str
    # The models' vocabulary index; -1 where only the raw id is known. Internal: never in an API answer.
    item_idx: int = Field(-1, exclude=True)


@dataclass(frozen=True)
class RecommendationList:
    """One answer of an engine: the items in order and the model version that served them."""

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
        version = outputs["model_version"][row][0].decode()
        items = [Recommendation.model_construct(item_id=i.decode(), score=float(s), reason=r.decode(),
                                                model_version=version, item_idx=int(x))
                 for i, x, s, r in zip(outputs["item_ids"][row][keep], outputs["item_idx"][row][keep],
                                       outputs["scores"][row][keep], outputs["reasons"][row][keep], strict=True)]
        out.append(RecommendationList(items, version))
    return out
