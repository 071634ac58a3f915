"""Bodies that carry one object, a list, or ``{"<key>": [...]}``, validated object by object so one bad entry
never costs the others."""

from __future__ import annotations

from fastapi import HTTPException
from pydantic import BaseModel, ValidationError
from recstack.client.api.schemas import RejectedEvent


def _reason(exc: ValidationError) -> str:
    return "; ".join(f"{'.'.join(str(p) for p in e['loc']) or 'entry'}: {e['msg']}" for e in exc.errors())


def validate_batch(body: dict | list, key: str, model: type[BaseModel], limit: int
                   ) -> tuple[list[tuple[int, BaseModel]], list[RejectedEvent]]:
    """The valid entries with their positions, and the rejected ones with the reason; an empty or oversized
    batch is a 422."""
    raw = body[key] if isinstance(body, dict) and key in body else body
    raw = raw if isinstance(raw, list) else [raw]
    if not raw:
        raise HTTPException(422, f"no {key}")
    if len(raw) > limit:
        raise HTTPException(422, f"batch of {len(raw)} {key} is over the limit of {limit}")
    valid, rejected = [], []
    for index, entry in enumerate(raw):
        try:
            valid.append((index, model.model_validate(entry)))
        except ValidationError as exc:
            rejected.append(RejectedEvent(index=index, reason=_reason(exc)))
    return valid, rejected
