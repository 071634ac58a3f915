"""Delete users from everything recstack keeps (``DELETE /api/v1/users/{id}`` and ``recstack forget``).

In order: the tombstone list first (so a deletion interrupted half-way still keeps the users out of every later
build), then the session store (live session, events and exposures streams; experiment assignments are a hash of
the id and are stored nowhere else), then the files of the build folder: the event log, every prepared dataset
and every batch scoring output. Aggregates that cannot name a user stay: live popularity counts, bandit shows and
rewards, the models' weights.
"""

from __future__ import annotations

from pathlib import Path

from pydantic import BaseModel, Field
from recstack.client.core.sessions import SessionStore
from recstack.client.scoring import SCORING_STATE, forget_scores
from recstack.preprocessing.lake import LAKE_NAME, EventLake
from recstack.preprocessing.layout import PreparedLayout
from recstack.preprocessing.tombstones import TOMBSTONES_NAME, add_tombstones, forget_prepared


class Forgotten(BaseModel):
    """What was removed, per store."""

    tombstoned: int = Field(description="users added to the tombstone list the next builds apply")
    store: dict[str, dict[str, int]] = Field(description="per user: live session items, events and exposures "
                                                         "removed from the session store")
    prepared_data: dict[str, int] = Field(description="rows removed per prepared dataset (folder under build/)")
    scores: dict[str, int] = Field(description="rows removed per batch-scoring output (folder under build/)")
    event_log: int = Field(0, description="events removed from the event log (build/lake)")


async def forget_users(user_ids: list[str], store: SessionStore, build_dir: Path | None) -> Forgotten:
    """Remove ``user_ids`` from the store and the build folder; the answer names folders relative to it."""
    user_ids = list(dict.fromkeys(user_ids))
    tombstoned = add_tombstones(build_dir / TOMBSTONES_NAME, user_ids) if build_dir is not None else 0
    per_user = {user: await store.forget(user) for user in user_ids}
    prepared, scores, event_log = {}, {}, 0
    if build_dir is not None and build_dir.exists():
        event_log = EventLake(build_dir / LAKE_NAME).forget(user_ids)
        for layout in PreparedLayout.find(build_dir):
            prepared[str(layout.root.relative_to(build_dir))] = forget_prepared(layout.root, user_ids)
        for state in sorted(build_dir.rglob(SCORING_STATE)):
            scores[str(state.parent.relative_to(build_dir))] = forget_scores(state.parent, user_ids)
    return Forgotten(tombstoned=tombstoned, store=per_user, prepared_data=prepared, scores=scores,
                     event_log=event_log)
