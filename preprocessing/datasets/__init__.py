"""Dataset loaders: the built-in synthetic generator and the public formats, all in the generic schema.

Every loader returns a :class:`recstack.preprocessing.schema.RawDataset`. ``load_dataset`` picks one by name::

    >>> from recstack.preprocessing.datasets import load_dataset
    >>> ds = load_dataset("synthetic", n_events=10_000, seed=0)
    >>> ds.events.columns
    ['user_id', 'item_id', 'event_type', 'timestamp', 'weight']
"""

from __future__ import annotations

from pathlib import Path

from recstack.preprocessing.datasets.amazon import load_amazon_beauty
from recstack.preprocessing.datasets.diginetica import load_diginetica, load_diginetica_raw
from recstack.preprocessing.datasets.events_files import load_events_files
from recstack.preprocessing.datasets.movielens import load_ml_1m_sasrec, load_ml_100k
from recstack.preprocessing.datasets.synthetic import SyntheticConfig, generate_synthetic
from recstack.preprocessing.schema import InputError, RawDataset

# Folder of each public dataset below the shared data directory.
PUBLIC_DATASETS = {
    "ml-1m": "ml-1m-sasrec",
    "ml-100k": "ml-100k",
    "beauty": "amazon-beauty-s3rec",
    "diginetica": "diginetica-srgnn",
}
DATASETS = ("synthetic", *PUBLIC_DATASETS, "events")


def load_dataset(name: str, data_dir: Path | None = None, events_path: Path | None = None,
                 items_path: Path | None = None, **synthetic_options) -> RawDataset:
    """Load a dataset by name.

    Parameters
    ----------
    name : str
        ``"synthetic"`` (default data, options go to :class:`SyntheticConfig`), a public dataset
        (``"ml-1m"``, ``"ml-100k"``, ``"beauty"``, ``"diginetica"``) read from ``data_dir``, or
        ``"events"`` for your own logs in the generic schema (``events_path``, optional ``items_path``).
    data_dir : Path, optional
        Folder holding the public datasets' folders (e.g. ``../shared/data``).
    """
    if name == "synthetic":
        return generate_synthetic(SyntheticConfig(**synthetic_options))
    if name == "events":
        if events_path is None:
            raise InputError("dataset 'events' needs an events file (--events PATH)")
        return load_events_files(Path(events_path), None if items_path is None else Path(items_path))
    if name not in PUBLIC_DATASETS:
        raise InputError(f"unknown dataset {name!r}; choose one of {list(DATASETS)}")
    if data_dir is None:
        raise InputError(f"dataset {name!r} needs the shared data folder (--data-dir or RECSTACK_DATA_DIR)")
    folder = Path(data_dir) / PUBLIC_DATASETS[name]
    if not folder.is_dir():
        raise InputError(f"dataset {name!r}: folder {folder} not found (set --data-dir or RECSTACK_DATA_DIR)")
    loader = {"ml-1m": load_ml_1m_sasrec, "ml-100k": load_ml_100k, "beauty": load_amazon_beauty,
              "diginetica": load_diginetica}[name]
    return loader(folder)


__all__ = ["DATASETS", "PUBLIC_DATASETS", "RawDataset", "SyntheticConfig", "generate_synthetic",
           "load_amazon_beauty", "load_dataset", "load_diginetica", "load_diginetica_raw",
           "load_events_files", "load_ml_100k", "load_ml_1m_sasrec"]
