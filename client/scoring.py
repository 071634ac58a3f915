"""Batch scoring (``recstack score``): top-K lists with reasons for every user, for email and push campaigns.

Three modes give the same lists: ``batch`` (the default: :class:`recstack.ensemble.batch.BatchFunnel`, a whole
chunk as matrices on every core), and an :class:`recstack.client.engine.Engine`, the online funnel in-process
(onnxruntime + FAISS) or Triton (gRPC), batched requests, several in flight. Users are scored in chunks, each
written to ``<out>/parts/part-NNNNN.parquet`` atomically, so a killed run continues where it stopped with no user
scored twice or skipped; memory stays bounded by one chunk. The chunks may be spread over a Dask cluster
(:mod:`recstack.client.distributed`). At the end the parts are joined into ``recommendations.parquet`` and
``recommendations.csv`` (user_id, rank, item_id, score, reason, model_version).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from recstack.client.core.shop import Shop
from recstack.client.engine import EngineKind, open_engine
from recstack.ensemble.batch import BatchFunnel
from recstack.preprocessing.layout import PreparedLayout
from recstack.preprocessing.tombstones import rewrite_without
from tqdm import tqdm

Mode = Literal["batch", "in-process", "triton"]
MODES: tuple[Mode, ...] = ("batch", "in-process", "triton")
SCORING_STATE = "scoring.json"  # what a scoring output folder is for (users, K, data), checked on resume
OUTPUT_SCHEMA = {"user_id": pl.String, "rank": pl.UInt16, "item_id": pl.String, "score": pl.Float32,
                 "reason": pl.String, "model_version": pl.String}


def _identity(users: list[str], k: int, exclude: list[str], fingerprint: str) -> str:
    digest = hashlib.sha256(json.dumps([users, k, sorted(exclude), fingerprint]).encode()).hexdigest()
    return digest[:16]


def _rows(user_ids: list[str], outputs: dict[str, np.ndarray]) -> pl.DataFrame:
    """The output table of a chunk's ``recommend`` tensors (one row per listed item, best first)."""
    keep = outputs["item_idx"] >= 0
    counts = keep.sum(1)
    ranks = np.cumsum(keep, 1)[keep]
    versions = np.repeat([v[0] for v in outputs["model_version"]], counts)
    text = {name: pl.Series(values, dtype=pl.Binary).cast(pl.String) for name, values in
            (("item_id", outputs["item_ids"][keep]), ("reason", outputs["reasons"][keep]),
             ("model_version", versions))}
    return pl.DataFrame({"user_id": np.repeat(np.asarray(user_ids, dtype=object), counts), "rank": ranks,
                         "item_id": text["item_id"], "score": outputs["scores"][keep], "reason": text["reason"],
                         "model_version": text["model_version"]}, schema=OUTPUT_SCHEMA)


def _write_part(path: Path, frame: pl.DataFrame) -> None:
    """A chunk's rows, there whole or not at all (what a resumed run relies on)."""
    tmp = path.with_name(f".{path.name}.{os.getpid()}.tmp")  # one per writer: a retried chunk may overlap
    frame.write_parquet(tmp)
    os.replace(tmp, path)


def _part_path(parts: Path, number: int) -> Path:
    return parts / f"part-{number:05d}.parquet"


def score_users(data_dir: str | Path, out: str | Path, mode: Mode = "batch", k: int = 50,
                repository: str | Path | None = None, triton_url: str | None = None,
                users: list[str] | None = None, exclude: list[str] | None = None, chunk_users: int = 5000,
                batch: int = 64, in_flight: int = 4, max_chunks: int | None = None, progress: bool = True,
                workers: int | None = None, scheduler: str | None = None) -> dict:
    """Score users chunk by chunk into ``out``; returns a summary (users, seconds, users/s, chunks).

    ``max_chunks`` stops after that many new chunks (what a killed run leaves behind), for tests. ``workers``
    (a local Dask cluster of that many processes) or ``scheduler`` (a running cluster's address) spread the
    chunks over Dask workers, batch mode on each (:func:`recstack.client.distributed.score_chunks`).

    Examples
    --------
    >>> score_users("build/data/synthetic", "build/scores", k=50, repository="build/model_repository")  # doctest: +SKIP
    {'users': 8000, 'chunks': 2, 'scored_now': 8000, 'seconds': 6.1, 'users_per_second': 1311.5, ...}
    """
    if mode not in MODES:
        raise ValueError(f"mode must be one of {', '.join(MODES)}; got {mode!r}")
    if (mode != "triton" and repository is None) or (mode == "triton" and triton_url is None):
        raise ValueError(f"the {mode} mode needs a {'triton_url' if mode == 'triton' else 'repository'}")
    distributed = workers is not None or scheduler is not None
    if distributed and mode != "batch":
        raise ValueError("Dask workers run the batch mode: leave --mode at batch with --workers or --scheduler")
    data_dir, out = Path(data_dir), Path(out)
    shop = Shop.load(data_dir)
    everyone = sorted(shop.histories)
    chosen = everyone if users is None else list(dict.fromkeys(users))
    unknown = [u for u in chosen if u not in shop.histories]
    if unknown:
        raise ValueError(f"{len(unknown)} users are not in {data_dir} (first: {unknown[:3]})")
    exclude = list(exclude or [])
    excluded = [i for i in (shop.item_index(e) for e in exclude) if i is not None]
    fingerprint = PreparedLayout(data_dir).read_manifest().fingerprint
    identity = _identity(chosen, k, exclude, fingerprint)
    parts = out / "parts"
    parts.mkdir(parents=True, exist_ok=True)
    state = out / SCORING_STATE
    if state.exists() and json.loads(state.read_text())["identity"] != identity:
        raise ValueError(f"{out} holds a run for other users, K, exclusions or data: use another folder or delete it")
    state.write_text(json.dumps({"identity": identity, "users": len(chosen), "k": k, "mode": mode}))

    chunks = [chosen[i:i + chunk_users] for i in range(0, len(chosen), chunk_users)]
    missing = [n for n in range(len(chunks)) if not _part_path(parts, n).exists()]  # the rest: an earlier run's
    todo = missing[:max_chunks] if max_chunks is not None else missing
    bar = tqdm(total=len(chosen), unit="user", disable=not progress, desc=f"scoring ({mode})")
    bar.update(len(chosen) - sum(len(chunks[n]) for n in missing))
    if distributed:  # the time includes starting a local cluster and each worker's loading
        from recstack.client.distributed import score_chunks

        started = time.perf_counter()
        score_chunks({n: chunks[n] for n in todo}, ChunkJob(data_dir, repository, parts, excluded, k), bar,
                     workers, scheduler)
    else:
        with _recommender(mode, repository, triton_url, batch, in_flight) as recommend:
            started = time.perf_counter()  # after loading the models: what a chunk costs, in every mode alike
            for number in todo:
                user_ids = chunks[number]
                outputs = recommend([shop.histories[u] for u in user_ids], excluded, k)
                _write_part(_part_path(parts, number), _rows(user_ids, outputs))
                bar.update(len(user_ids))
    bar.close()
    seconds = time.perf_counter() - started
    scored_now = sum(len(chunks[n]) for n in todo)
    done = sorted(parts.glob("part-*.parquet"))
    summary = {"users": len(chosen), "chunks": len(chunks), "chunks_done": len(done), "scored_now": scored_now,
               "seconds": round(seconds, 2), "users_per_second": round(scored_now / seconds, 1) if seconds else 0.0,
               "mode": mode, "k": k}
    if distributed:
        summary["workers"] = workers or scheduler
    if len(done) == len(chunks):
        summary["rows"] = _join(done, out)
    return summary


@dataclass(frozen=True)
class ChunkJob:
    """What scoring one chunk needs besides its users: small enough to send to every Dask task."""

    data_dir: Path
    repository: Path
    parts: Path
    excluded: list[int]
    k: int

    def run(self, number: int, user_ids: list[str], shop: Shop, engine: BatchFunnel) -> int:
        """Score and write chunk ``number`` unless a part is there already (a retried task whose first try had
        written it); returns the users it holds."""
        path = _part_path(self.parts, number)
        if not path.exists():
            outputs = engine.recommend_histories([shop.histories[u] for u in user_ids],
                                                 [self.excluded] * len(user_ids), self.k)
            _write_part(path, _rows(user_ids, outputs))
        return len(user_ids)


def forget_scores(out: str | Path, user_ids: list[str]) -> int:
    """Take the users out of a scoring output folder: its parts and the joined parquet and CSV. Returns the rows
    removed from the parts (the joined files hold the same rows)."""
    out = Path(out)
    removed = sum(rewrite_without(path, ~pl.col("user_id").is_in(user_ids)) for path in sorted(out.glob(
        "parts/part-*.parquet")))
    if (out / "recommendations.parquet").exists():
        rewrite_without(out / "recommendations.parquet", ~pl.col("user_id").is_in(user_ids))
    csv = out / "recommendations.csv"
    if csv.exists():
        table = pl.read_csv(csv, schema=OUTPUT_SCHEMA)
        kept = table.filter(~pl.col("user_id").is_in(user_ids))
        if kept.height < table.height:
            tmp = csv.with_name(f".{csv.name}.tmp")
            kept.write_csv(tmp)
            os.replace(tmp, csv)
    return removed


def _join(parts: list[Path], out: Path) -> int:
    """Join the parts into ``recommendations.parquet`` and ``.csv`` streaming, so 1M users' lists (50M rows at
    K = 50) never sit in memory at once; returns the row count."""
    if not parts:
        pl.DataFrame(schema=OUTPUT_SCHEMA).write_parquet(out / "recommendations.parquet")
        pl.DataFrame(schema=OUTPUT_SCHEMA).write_csv(out / "recommendations.csv")
        return 0
    lazy = pl.scan_parquet(parts)
    for target, sink in ((out / "recommendations.parquet", lazy.sink_parquet), (out / "recommendations.csv",
                                                                                  lazy.sink_csv)):
        tmp = target.with_name(f".{target.name}.tmp")
        sink(tmp)
        os.replace(tmp, target)
    return pl.scan_parquet(out / "recommendations.parquet").select(pl.len()).collect().item()


@contextmanager
def _recommender(mode: Mode, repository: Path | None, triton_url: str | None, batch: int, in_flight: int):
    """Yield ``f(histories, excluded, k) -> output tensors`` for a chunk. Batch mode: the chunk at once; otherwise
    batches of ``batch`` users sent to the engine, ``in_flight`` at once, on one event loop that lives as long as
    the engine."""
    if mode == "batch":
        engine = BatchFunnel(repository)
        try:
            yield lambda histories, excluded, k: engine.recommend_histories(histories, [excluded] * len(histories), k)
        finally:
            engine.close()
        return

    async def start():  # the async clients bind to the loop they are made on
        kind: EngineKind = "in-process" if mode == "in-process" else "triton-grpc"
        return open_engine(kind, triton_url, repository), asyncio.Semaphore(in_flight)

    loop = asyncio.new_event_loop()
    engine, slots = loop.run_until_complete(start())

    async def one(histories, excluded, k):
        async with slots:
            return await engine.recommend_arrays(histories, [excluded] * len(histories), k)

    async def chunk(histories, excluded, k):
        return _stack(await asyncio.gather(*(one(histories[i:i + batch], excluded, k)
                                             for i in range(0, len(histories), batch))))

    try:
        yield lambda histories, excluded, k: loop.run_until_complete(chunk(histories, excluded, k))
    finally:
        loop.run_until_complete(engine.close())
        loop.close()


def _stack(parts: list[dict[str, np.ndarray]]) -> dict[str, np.ndarray]:
    """Concatenate batches whose lists may differ in width (padding: item_idx -1, empty ids)."""
    width = max(p["item_idx"].shape[1] for p in parts)
    out = {}
    for name in ("item_ids", "item_idx", "scores", "reasons"):
        fill = {"item_idx": -1, "scores": 0.0}.get(name, b"")
        out[name] = np.concatenate([np.pad(p[name], ((0, 0), (0, width - p[name].shape[1])), constant_values=fill)
                                    for p in parts])
    out["model_version"] = np.concatenate([p["model_version"] for p in parts])
    return out

