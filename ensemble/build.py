"""``recstack build-repo``: assemble ``build/model_repository/``.

Every ``config.pbtxt`` rendered from the tensor specs (:mod:`recstack.ensemble.specs`), the committed ``model.py``
files of the python models (``model_repository/<model>/model.py``), plus the trained
artifacts of a dataset (``build/models/<dataset>/onnx/``) and its prepared data (``build/data/<dataset>/``)
become one Triton repository::

    build/model_repository/
      repository.json                 what was built, from what, and the index's measured recall
      query_encoder/config.pbtxt      <v>/model.onnx               (two-tower query tower)
      retrieve/config.pbtxt           <v>/model.py, items.faiss, index.json, catalog files, funnel.json
      rank/config.pbtxt               <v>/model.onnx               (SASRec ranker)
      rerank/config.pbtxt             <v>/model.py, catalog files, funnel.json
      similar/, trending/             <v>/model.py, catalog files (similar also the index)
      recommend/config.pbtxt          <v>/                         (the ensemble, pinned to the default version)
      recommend_canary/               <c>/, config.pbtxt           (while a canary serves a share of users)
      serving.json                    which versions serve: default, canary and its share, rollback targets

Items added to the catalog since training (``new_items``: the facade's ingest file) are embedded by the item tower
and served from this version on. Building into an existing repository adds version ``v+1`` of every model beside
the old ones and deletes versions older than the last ``keep_versions`` except those served or kept for a rollback
(``serving.json``, :mod:`recstack.ensemble.serving`); given a running server's address, the build switches it to the
new version without a restart (:func:`recstack.ensemble.serving.switch`).
"""

from __future__ import annotations

import json
import os
import shutil
import time
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

import numpy as np
import onnxruntime as ort
import polars as pl
from recstack.ensemble.catalog import BusinessRules, Catalog
from recstack.ensemble.config import ServingConfig
from recstack.ensemble.index import build_index, save_index
from recstack.ensemble.new_items import embed_new_items, read_new_items
from recstack.ensemble.server import model_control
from recstack.ensemble.serving import ServingState, initial_state, switch
from recstack.ensemble.triton_models import FUNNEL_FILE
from recstack.preprocessing.layout import Manifest, PreparedLayout
from recstack.training.config import OBJECTIVES_OUTPUT
from recstack.training.data import pad_left

from recstack.devices import resolve

PYTHON_MODEL_SOURCES = Path(__file__).resolve().parents[1] / "model_repository"  # <model>/model.py
ONNX_MODELS = {"query_encoder": ("two_tower", "query_tower"), "rank": ("sasrec", "ranker")}
PYTHON_MODELS = ("retrieve", "rerank", "similar", "trending")
ENSEMBLES = ("recommend",)
MODELS = (*ONNX_MODELS, *PYTHON_MODELS, *ENSEMBLES)
INDEX_MODELS = ("retrieve", "similar")
REPOSITORY_FILE = "repository.json"
QUERY_SAMPLE = 1000


class BuildError(RuntimeError):
    """The inputs of the build are missing or do not belong together."""


def _read_manifest(path: Path, what: str) -> dict:
    if not path.exists():
        raise BuildError(f"{path} is missing: {what}")
    return json.loads(path.read_text())


def instance_kind(device: str) -> str:
    """``KIND_GPU`` when asked for (a repository built for a GPU host, even on a machine without one), or on
    ``auto`` when this machine has a GPU; ``KIND_CPU`` otherwise."""
    if device == "gpu":
        return "KIND_GPU"
    return "KIND_GPU" if resolve(device) == "gpu" else "KIND_CPU"


def versions(model_dir: Path) -> list[int]:
    return sorted(int(p.name) for p in model_dir.iterdir() if p.is_dir() and p.name.isdigit()) \
        if model_dir.is_dir() else []


def query_sample(data_dir: Path, query_tower: Path, max_length: int, n: int = QUERY_SAMPLE) -> np.ndarray:
    """Query-tower outputs for real users' histories: what the index's recall is measured on."""
    histories = pl.read_parquet(PreparedLayout(data_dir).eval_test, columns=["history"]).head(n)["history"]
    seq = pad_left([np.asarray(h, dtype=np.int64) for h in histories.to_list()], max_length)
    session = ort.InferenceSession(str(query_tower), providers=["CPUExecutionProvider"])
    return session.run(None, {"item_seq": seq})[0]


def _check_ranker_takes_new_items(ranker: Path, item: int, max_length: int) -> None:
    """Rankers exported before new-item support fail on indices past their table: say so at build time."""
    session = ort.InferenceSession(str(ranker), providers=["CPUExecutionProvider"])
    try:
        session.run(None, {"item_seq": np.full((1, max_length), item, dtype=np.int64),
                           "candidates": np.array([[item]], dtype=np.int64)})
    except Exception as exc:  # noqa: BLE001 - onnxruntime raises its own error types
        raise BuildError(f"{ranker} cannot score items added after training (exported by an older version): "
                         f"export it again with `recstack train`") from exc


def _link(src: Path, dest: Path) -> None:
    """Hard link (the same bytes serve several models), a copy where linking is impossible."""
    try:
        os.link(src, dest)
    except OSError:
        shutil.copy2(src, dest)


@dataclass(frozen=True)
class Inputs:
    """What a build reads, checked to belong together: the prepared data and the two exported models."""

    data: PreparedLayout
    manifest: Manifest
    onnx_dir: Path
    exports: dict[str, dict]  # two_tower / sasrec -> the export's manifest.json

    @property
    def max_length(self) -> int:
        return int(self.exports["sasrec"]["model"]["max_length"])

    @property
    def objectives(self) -> bool:
        """Whether the ranker has objective heads: its graph also outputs their probabilities."""
        outputs = self.exports["sasrec"].get("graphs", {}).get("ranker", {}).get("outputs", [])
        return any(output["name"] == OBJECTIVES_OUTPUT for output in outputs)


def validate_inputs(data_dir: Path, models_dir: Path) -> Inputs:
    """The prepared data and the exports of both models, or a :class:`BuildError` that says what to run."""
    data = PreparedLayout(data_dir)
    if not data.exists():
        raise BuildError(f"{data.manifest} is missing: run `recstack preprocess` first")
    manifest = data.read_manifest()
    onnx_dir = models_dir / "onnx"
    exports = {name: _read_manifest(onnx_dir / name / "manifest.json",
                                    f"train and export {name} first (`recstack train --models {name}`)")
               for name in ("two_tower", "sasrec")}
    for name, export in exports.items():
        if export.get("dataset_fingerprint") != manifest.fingerprint:
            raise BuildError(f"{name} in {onnx_dir} was trained on dataset {export.get('dataset_fingerprint')}, "
                             f"but {data_dir} is {manifest.fingerprint}: retrain or point at the matching data")
    return Inputs(data, manifest, onnx_dir, exports)


def build_catalog(inputs: Inputs, config: ServingConfig, rules_path: str | Path | None,
                  new_items: str | Path | None, say) -> tuple[Catalog, int]:
    """The served catalog (item vectors, rules, freshness), with the items added since training embedded by the
    item tower from their content; returns it and the number of items added."""
    rules = BusinessRules.load(rules_path)
    two_tower = inputs.onnx_dir / "two_tower"
    vectors = np.load(two_tower / inputs.exports["two_tower"]["model"]["item_embeddings"])
    catalog = Catalog.build(inputs.data.root, vectors, rules, config.freshness_days)
    if new_items is None:
        return catalog, 0
    extra = read_new_items(new_items)
    extra = extra.filter(~pl.col("item_id").is_in([i for i in catalog.item_ids.tolist() if i is not None]))
    features, extra_vectors = embed_new_items(inputs.data.root, two_tower / "item_tower.onnx", extra, len(catalog))
    names = pl.read_parquet(inputs.data.vocabulary("category"))
    catalog.extend(features, extra_vectors, dict(zip(names["index"].to_list(), names["raw"].to_list(), strict=True)),
                   config.freshness_days)
    if features.height:
        _check_ranker_takes_new_items(inputs.onnx_dir / "sasrec" / "ranker.onnx", len(catalog) - 1, inputs.max_length)
    say(f"{features.height} new items from {new_items}, embedded by the item tower from their content")
    return catalog, features.height


def build_retrieval_index(inputs: Inputs, catalog: Catalog, config: ServingConfig, say):
    """The index over the catalog's vectors, tuned on real users' queries at the funnel's candidate depth."""
    queries = query_sample(inputs.data.root, inputs.onnx_dir / "two_tower" / "query_tower.onnx", inputs.max_length)
    index, report = build_index(catalog.vectors, queries, config.index, recall_k=config.retrieve.candidates,
                                target_recall=config.index_target_recall)
    say(f"retrieval index: {report.summary()}")
    return index, report


def write_version(out: Path, version: int, inputs: Inputs, catalog: Catalog, index, index_report,
                  settings: dict) -> None:
    """Version ``version`` of every model: the catalog, index and funnel settings once (hard-linked into the
    python models that read them), the ONNX graphs, the python models' entry points."""
    first = out / "retrieve" / str(version)
    catalog.save(first)
    save_index(index, index_report, first)
    (first / FUNNEL_FILE).write_text(json.dumps(settings, indent=2) + "\n")
    shared = [p.name for p in first.iterdir()]
    for model in MODELS:
        folder = out / model / str(version)
        folder.mkdir(parents=True, exist_ok=True)
        if model in PYTHON_MODELS:
            shutil.copy2(PYTHON_MODEL_SOURCES / model / "model.py", folder / "model.py")
            if model != "retrieve":
                for name in shared:
                    if model in INDEX_MODELS or not name.startswith(("items.faiss", "index.json")):
                        _link(first / name, folder / name)
        elif model in ONNX_MODELS:
            source, graph = ONNX_MODELS[model]
            for name in inputs.exports[source]["files"][graph]:  # the graph and any external-data file beside it
                target = "model.onnx" if name == f"{graph}.onnx" else name
                shutil.copy2(inputs.onnx_dir / source / name, folder / target)


def config_values(config: ServingConfig, kind: str, dim: int, objectives: bool = False) -> dict:
    """What every ``config.pbtxt`` is rendered from (kept in ``repository.json``: promote and rollback render the
    configs again with other versions); ``objectives``: the ranker has objective heads."""
    return {"max_batch_size": config.max_batch_size, "kind": kind, "instances": config.instances,
            "queue_delay_us": config.queue_delay_us, "onnx_threads": config.onnx_threads, "dim": dim,
            "candidates": config.retrieve.candidates, "objectives": objectives}


def check_same_heads(out: Path, objectives: bool) -> None:
    """One ``rank`` config serves every loaded version, so they all output the heads' probabilities or none do:
    a ranker with heads cannot join a repository of rankers without (or the reverse)."""
    report = out / REPOSITORY_FILE
    if not report.exists() or not any(versions(out / model) for model in MODELS):
        return
    before = bool(json.loads(report.read_text()).get("config_values", {}).get("objectives", False))
    if before != objectives:
        have = "with" if before else "without"
        raise BuildError(f"{out} serves rankers {have} objective heads and this one is not: one rank config serves "
                         "every loaded version, so build it into a new repository (--clean)")


def stale(out: Path, keep_versions: int, protected: set[int]) -> dict[str, list[int]]:
    """Per model, its versions beyond the last ``keep_versions`` that are not protected (served, or a rollback
    target)."""
    return {model: [v for v in versions(out / model)[:-keep_versions] if v not in protected] for model in MODELS}


def serve_version(out: Path, version: int, values: dict, keep_versions: int, canary: float | None,
                  triton_url: str | None) -> ServingState:
    """The serving state with the new version (the default, or the canary for a share of users), the configs
    rendered for it and, with ``triton_url``, that server switched to it; then the old versions it no longer needs
    are deleted (after the switch: a server never loses the files of a version it still serves)."""
    old = initial_state(out, [v for m in MODELS for v in versions(out / m) if v != version])
    if old is None and canary is not None:
        raise BuildError("nothing serves yet: the first version cannot be a canary (publish it without --canary)")
    new = old.published(version, canary) if old else ServingState(version)
    doomed = stale(out, keep_versions, new.protected)
    kept = {v for m in MODELS for v in versions(out / m) if v not in doomed[m]}
    new = new.pruned(kept)
    control = model_control(triton_url) if triton_url else {}
    switch(out, values, old, new, **control)
    for model, old_versions in doomed.items():
        for v in old_versions:
            shutil.rmtree(out / model / str(v))
    return new


def build_repository(data_dir: str | Path, models_dir: str | Path, out: str | Path,
                     config: ServingConfig | None = None, rules_path: str | Path | None = None,
                     clean: bool = False, verbose: bool = True, new_items: str | Path | None = None,
                     canary: float | None = None, triton_url: str | None = None) -> dict:
    """Build (or add a version to) the model repository and return what ``repository.json`` records:
    validate the inputs → build the catalog → build the index → write the version → render the configs and
    record the serving state (:mod:`recstack.ensemble.serving`): the new version serves by default, or with
    ``canary`` a share of users beside the default; ``triton_url``: that server switches to it without a restart.

    Examples
    --------
    >>> report = build_repository("build/data/synthetic", "build/models/synthetic",
    ...                           "build/model_repository")  # doctest: +SKIP
    >>> report["version"], report["index"]["kind"]  # doctest: +SKIP
    (1, 'flat')
    """
    start = time.perf_counter()
    config = config or ServingConfig()
    data_dir, models_dir, out = Path(data_dir), Path(models_dir), Path(out)
    say = print if verbose else (lambda *_: None)
    inputs = validate_inputs(data_dir, models_dir)
    if clean and out.exists():
        shutil.rmtree(out)
    out.mkdir(parents=True, exist_ok=True)
    check_same_heads(out, inputs.objectives)
    version = max((v for m in MODELS for v in versions(out / m)), default=0) + 1
    kind = instance_kind(config.device)
    # Ranker + retrieval model versions and the repository version that served them.
    model_version = (f"{inputs.exports['sasrec']['model_version']}+{inputs.exports['two_tower']['model_version']}"
                     f"/r{version}")
    catalog, added = build_catalog(inputs, config, rules_path, new_items, say)
    index, index_report = build_retrieval_index(inputs, catalog, config, say)
    settings = {"model_version": model_version, "repository_version": version, "max_length": inputs.max_length,
                "retrieve": asdict(config.retrieve), "rerank": asdict(config.rerank)}
    write_version(out, version, inputs, catalog, index, index_report, settings)
    values = config_values(config, kind, catalog.dim, inputs.objectives)

    report = {"version": version, "built_at": datetime.now(UTC).isoformat(timespec="seconds"),
              "dataset": inputs.manifest.dataset, "dataset_fingerprint": inputs.manifest.fingerprint,
              "data_dir": str(data_dir.resolve()), "models_dir": str(models_dir.resolve()),
              "model_version": model_version, "instance_kind": kind, "max_length": inputs.max_length,
              "n_items": len(catalog), "new_items": int(catalog.is_new.sum()), "ingested_items": added,
              "unavailable_items": int((~catalog.available).sum() - 2),
              "index": asdict(index_report), "settings": settings, "config_values": values}
    (out / REPOSITORY_FILE).write_text(json.dumps(report, indent=2) + "\n")
    report["serving"] = serve_version(out, version, values, config.keep_versions, canary, triton_url).to_json()
    report["seconds"] = round(time.perf_counter() - start, 2)
    role = f"the canary for {canary:.0%} of users" if canary is not None else "the default"
    say(f"model repository version {version} in {out} ({kind}, {len(catalog):,} items, "
        f"model {model_version}) built in {report['seconds']:.1f} s; {role}")
    return report
