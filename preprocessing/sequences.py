"""Per-user chronological item sequences and the (history, targets) tables that evaluation reads."""

from __future__ import annotations

import polars as pl


def group_starts(by: str) -> pl.Expr:
    """True on the first row of each run of equal ``by`` values (rows sorted by ``by``)."""
    return (pl.col(by) != pl.col(by).shift(1)).fill_null(True)


def rank_in_group(group_start: pl.Expr, flag: pl.Expr | None = None) -> pl.Expr:
    """Running count of ``flag`` (of rows, when None) within each group, from 0, without a window.

    On sorted rows this is the global cumulative sum minus its value where the group starts, which
    is much cheaper than ``over`` on a string key.
    """
    counts = (pl.repeat(True, pl.len()) if flag is None else flag).cast(pl.UInt32)
    running = counts.cum_sum()
    before_group = pl.when(group_start).then(running - counts).forward_fill()
    return running - before_group - 1


def steps_after(step_start: pl.Expr, by: str) -> pl.Expr:
    """How many steps follow the row's step within its group (0 in the last step), without a window.

    Mirror of :func:`rank_in_group`: a reverse cumulative count of step starts, minus the count
    that lies beyond the group's last row.
    """
    group_end = (pl.col(by) != pl.col(by).shift(-1)).fill_null(True)
    starts = step_start.cast(pl.UInt32)
    from_here = starts.cum_sum(reverse=True)
    beyond_group = pl.when(group_end).then(from_here - starts).backward_fill()
    return from_here - beyond_group - starts


def mark_steps(encoded: pl.LazyFrame, collapse_repeats: bool, by: str = "user_id") -> pl.LazyFrame:
    """Number the steps of each user (or session: ``by``) from 0 (``step``) and flag the first event
    of each (``step_start``).

    With ``collapse_repeats`` consecutive events on one item are one step, so a view → cart →
    purchase funnel is one step of the sequence rather than three copies of the item.
    Groups by the raw ``user_id`` because users unknown to the workflow share the OOV ``user_idx``.
    Expects events sorted by user and time (as :meth:`Workflow.transform` returns them), so each
    user's (or session's) rows are contiguous.
    """
    new_group = group_starts(by)
    start = new_group | (pl.col("item_idx") != pl.col("item_idx").shift(1)) if collapse_repeats else pl.lit(True)
    return (encoded.with_columns(new_group.alias("_new_group"), start.fill_null(True).alias("step_start"))
            .with_columns(rank_in_group(pl.col("_new_group"), pl.col("step_start")).alias("step"))
            .drop("_new_group"))


def user_sequences(events: pl.LazyFrame, collapse_repeats: bool, max_length: int | None) -> pl.LazyFrame:
    """One row per user: ``item_seq`` (the last ``max_length`` steps, all when None, oldest first),
    ``timestamps`` and ``length`` (steps before truncation)."""
    steps = mark_steps(events, collapse_repeats).filter(pl.col("step_start"))

    def recent(column: str) -> pl.Expr:
        return pl.col(column) if max_length is None else pl.col(column).tail(max_length)

    return (steps.group_by("user_id").agg(
        pl.col("user_idx").first(),
        recent("item_idx").alias("item_seq"),
        recent("timestamp").alias("timestamps"),
        pl.len().cast(pl.UInt32).alias("length"),
    ).sort("user_idx", "user_id").select("user_idx", "user_id", "item_seq", "timestamps", "length"))


def evaluation_set(history: pl.LazyFrame, targets: pl.LazyFrame, collapse_repeats: bool) -> pl.LazyFrame:
    """One row per user with targets: ``history`` (every step before the targets, empty for users new in
    the target period) and ``targets`` (distinct items in first-seen order).

    Histories are not truncated: models cut them to their own window, and evaluation must filter every
    item the user has already seen, as the published full-ranking protocols do.
    """
    target_lists = (targets.sort(["user_id", "timestamp"], maintain_order=True)
                    .group_by("user_id", maintain_order=True)
                    .agg(pl.col("user_idx").first(), pl.col("item_idx").unique(maintain_order=True).alias("targets")))
    histories = user_sequences(history, collapse_repeats, None).select(
        "user_id", pl.col("item_seq").alias("history"))
    return (target_lists.join(histories, on="user_id", how="left")
            .with_columns(pl.col("history").fill_null(pl.lit([], pl.List(pl.UInt32))))
            .select("user_idx", "user_id", "history", "targets").sort("user_idx", "user_id"))
