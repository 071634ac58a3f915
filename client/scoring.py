"""Batch scoring (``recstack score``): top-K lists with reasons for every user, for email and push campaigns.

Runs on an :class:`recstack.client.engine.Engine`: the funnel in-process (onnxruntime + FAISS) or Triton (gRPC),
batched requests, several in flight; both give the same lists. Users are scored in chunks, each written to
``<out>/parts/part-NNNNN.parquet`` atomically, so a killed run continues where it stopped with no user scored twice
or skipped; memory stays bounded by one chunk. At the end the parts are joined into ``recommendations.parquet`` and
``recommendations.csv`` (user_id, rank, item_id, score, reason, model_version).
"""

from __future__ import annotations

import asyncio
import hashlib
import json
import os
import time
from contextlib import contextmanager
from pathlib import Path
from typing import Literal

import numpy as np
import polars as pl
from recstack.client.core.shop import Shop
from recstack.client.engine import EngineKind, open_engine
from recstack.preprocessing.layout import PreparedLayout
from recstack.preprocessing.tombstones import rewrite_without
from tqdm import tqdm

Mode = Literal["in-process", "triton"]
SCORING_STATE = "scoring.json"  # what a scoring output folder is for (users, K, data), checked on resume
OUTPUT_SCHEMA = {"user_id": pl.String, "rank": pl.UInt16, "item_id": pl.String, "score": pl.Float32,
                 "reason": pl.String, "model_version": pl.String}


def _identity(users: list[str], k: int, exclude: list[str], fingerprint: str) -> str:
    digest = hashlib.sha256(json.dumps([users, k, sorted(exclude), fingerprint]).encode()).hexdigest()
    return digest[:16]


def _rows(user_ids: list[str], outputs: dict[str, np.ndarray]) -> pl.DataFrame:
    records = {name: [] for name in OUTPUT_SCHEMA}
    for row, user in enumerate(user_ids):
        keep = outputs["item_idx"][row] >= 0
        ids, scores = outputs["item_ids"][row][keep], outputs["scores"][row][keep]
        reasons = outputs["reasons"][row][keep]
        version = outputs["model_version"][row][0].decode()
        for rank, (item, score, reason) in enumerate(zip(ids, scores, reasons, strict=True), 1):
            for name, value in (("user_id", user), ("rank", rank), ("item_id", item.decode()), ("score", score),
                                ("reason", reason.decode()), ("model_version", version)):
                records[name].append(value)
    return pl.DataFrame(records, schema=OUTPUT_SCHEMA)


def score_users(data_dir: str | Path, out: str | Path, mode: Mode = "in-process", k: int = 50,
                repository: str | Path | None = None, triton_url: str | None = None,
                users: list[str] | None = None, exclude: list[str] | None = None, chunk_users: int = 5000,
                batch: int = 64, in_flight: int = 4, max_chunks: int | None = None, progress: bool = True) -> dict:
    """Score users chunk by chunk into ``out``; returns a summary (users, seconds, users/s, chunks).

    ``max_chunks`` stops after that many new chunks (what a killed run leaves behind), for tests.

    Examples
    --------
    >>> score_users("build/data/synthetic", "build/scores", k=50, repository="build/model_repository")  # doctest: +SKIP
    {'users': 8000, 'chunks': 2, 'scored_now': 8000, 'seconds': 21.4, 'users_per_second': 373.8, ...}
    """
    if mode not in ("in-process", "triton"):
        raise ValueError(f"mode must be 'in-process' or 'triton'; got {mode!r}")
    if (mode == "in-process" and repository is None) or (mode == "triton" and triton_url is None):
        raise ValueError("the in-process mode needs a repository, the triton mode a triton_url")
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
    kind = "in-process" if mode == "in-process" else "triton-grpc"
    with _recommender(kind, repository, triton_url, batch, in_flight) as recommend:
        started, scored_now, new_chunks = time.perf_counter(), 0, 0
        bar = tqdm(total=len(chosen), unit="user", disable=not progress, desc=f"scoring ({mode})")
        for number, user_ids in enumerate(chunks):
            path = parts / f"part-{number:05d}.parquet"
            if path.exists():  # done by an earlier run
                bar.update(len(user_ids))
                continue
            if max_chunks is not None and new_chunks >= max_chunks:
                break
            histories = [shop.histories[u] for u in user_ids]
            frame = _rows(user_ids, recommend(histories, excluded, k))
            tmp = path.with_suffix(".tmp")
            frame.write_parquet(tmp)
            os.replace(tmp, path)  # a chunk is there whole or not at all
            scored_now += len(user_ids)
            new_chunks += 1
            bar.update(len(user_ids))
        bar.close()
    seconds = time.perf_counter() - started
    done = sorted(parts.glob("part-*.parquet"))
    summary = {"users": len(chosen), "chunks": len(chunks), "chunks_done": len(done), "scored_now": scored_now,
               "seconds": round(seconds, 2), "users_per_second": round(scored_now / seconds, 1) if seconds else 0.0,
               "mode": mode, "k": k}
    if len(done) == len(chunks):
        summary["rows"] = _join(done, out)
    return summary


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
def _recommender(kind: EngineKind, repository: Path | None, triton_url: str | None, batch: int, in_flight: int):
    """Yield ``f(histories, excluded, k) -> output tensors`` for a chunk: batches of ``batch`` users sent to the
    engine, ``in_flight`` at once, on one event loop that lives as long as the engine."""
    async def start():  # the async clients bind to the loop they are made on
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

