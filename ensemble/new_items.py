"""Items added to the catalog after training: read from an ingest file, embedded from their content by the
exported item tower (cold start: no id embedding), and appended to the catalog the next repository version
serves. Indices continue the vocabulary in file order, the order the facade assigned them in.

Ingest files: JSON lines, CSV or parquet with ``item_id`` and any of ``title, category, brand, price,
created_at`` (ISO time).
"""

from __future__ import annotations

import json
import logging
from pathlib import Path

import numpy as np
import onnxruntime as ort
import polars as pl
from recstack.preprocessing.layout import PreparedLayout
from recstack.preprocessing.vocabulary import OOV
from recstack.preprocessing.workflow import Workflow

log = logging.getLogger(__name__)
COLUMNS = {"item_id": pl.String, "title": pl.String, "category": pl.String, "brand": pl.String,
           "price": pl.Float64, "created_at": pl.String}


def read_new_items(path: str | Path) -> pl.DataFrame:
    """The ingest file as a frame with every known column (missing ones null), duplicates dropped."""
    path = Path(path)
    if not path.exists():
        raise FileNotFoundError(f"no new-items file at {path}")
    if path.suffix == ".parquet":
        frame = pl.read_parquet(path)
    elif path.suffix == ".csv":
        frame = pl.read_csv(path, infer_schema=False)
    else:
        rows = []
        for number, line in enumerate(path.read_text().splitlines(), 1):
            if not line.strip():
                continue
            try:
                rows.append(json.loads(line))
            except json.JSONDecodeError:  # e.g. a line cut short by a crash: the others still count
                log.warning("%s:%d is not JSON; skipped", path, number)
        frame = pl.DataFrame(rows, infer_schema_length=None) if rows else pl.DataFrame()
    if frame.height and "item_id" not in frame.columns:
        raise ValueError(f"{path}: new items need an item_id column")
    frame = frame.select([(pl.col(c) if c in frame.columns else pl.lit(None)).cast(t).alias(c)
                          for c, t in COLUMNS.items()])
    frame = frame.with_columns(pl.col("created_at").str.to_datetime(time_zone="UTC", strict=False)
                               .dt.replace_time_zone(None).cast(pl.Datetime("us")))
    return frame.filter(pl.col("item_id").is_not_null()).unique("item_id", keep="first", maintain_order=True)


def embed_new_items(data_dir: Path, item_tower: Path, items: pl.DataFrame, first_index: int
                    ) -> tuple[pl.DataFrame, np.ndarray]:
    """Feature rows (``Workflow.encode_new_items``) and unit item-tower vectors of new items."""
    workflow = Workflow.load(PreparedLayout(data_dir).workflow)
    features = workflow.encode_new_items(items, first_index)
    if not features.height:
        return features, np.zeros((0, 0), dtype=np.float32)
    session = ort.InferenceSession(str(item_tower), providers=["CPUExecutionProvider"])
    tokens = features["title_tokens"].to_list()
    # The exported graph may fix the title width (the widest title at training): pad or cut to it.
    declared = next(i.shape[1] for i in session.get_inputs() if i.name == "title_tokens")
    width = declared if isinstance(declared, int) else max(1, max(len(t) for t in tokens))
    title = np.zeros((len(tokens), width), dtype=np.int64)
    for row, values in enumerate(tokens):
        title[row, :min(len(values), width)] = values[:width]
    count = features.height
    vectors = session.run(None, {
        "item_idx": np.full(count, OOV, dtype=np.int64),  # no trained id: content only
        "category": features["category_idx"].to_numpy().astype(np.int64),
        "brand": features["brand_idx"].to_numpy().astype(np.int64),
        "price_bucket": features["price_bucket"].to_numpy().astype(np.int64),
        "title_tokens": title,
        "has_id": np.zeros(count, dtype=bool),
    })[0]
    return features, vectors.astype(np.float32)
