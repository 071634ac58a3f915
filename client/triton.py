"""Typed clients of the Triton models ``recommend``, ``similar`` and ``trending``, over HTTP or gRPC,
blocking (:class:`TritonRecommender`) or asyncio (:class:`AsyncTritonRecommender`).

``version`` names the model version a request runs on (by default Triton's highest loaded one; for the ensembles,
each pinned to one repository version, their only one: :mod:`recstack.ensemble.serving`).

Histories are item indices (the preprocessing vocabulary), oldest first; they are left-padded to a fixed
length so requests of different users batch together on the server. Results come back as raw item ids with
scores and reasons.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Literal

import numpy as np
import tritonclient.grpc as grpcclient
import tritonclient.grpc.aio as grpcaio
import tritonclient.http as httpclient
import tritonclient.http.aio as httpaio
from recstack.client.recommendation import RecommendationList, lists
from recstack.ensemble.config import ObjectiveWeights
from recstack.ensemble.funnel import request_arrays, window_width
from recstack.ensemble.specs import NUMPY_TYPES, RANK, RECOMMEND, SIMILAR, TRENDING, WEIGHTS, WIRE_TYPES, ModelSpec
from recstack.preprocessing.config import DEFAULT_MAX_SEQUENCE_LENGTH
from recstack.training.data import pad_left

Protocol = Literal["http", "grpc"]
DEFAULT_SEQ_LEN = DEFAULT_MAX_SEQUENCE_LENGTH  # the ranker's default window
# gRPC waits longer and longer between reconnection attempts (1 s growing to 120 s by default), so a channel that
# saw Triton die stayed dark for up to 15 s after Triton was ready again; capped at 0.5 s, it reconnects at once.
RECONNECT_BACKOFF = (("grpc.initial_reconnect_backoff_ms", 100), ("grpc.min_reconnect_backoff_ms", 100),
                     ("grpc.max_reconnect_backoff_ms", 500))


def grpc_channel_args() -> list[tuple[str, int]]:
    """tritonclient's own channel options (message sizes, keep-alive) with :data:`RECONNECT_BACKOFF`."""
    keepalive = grpcclient.KeepAliveOptions()
    return [("grpc.max_send_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
            ("grpc.max_receive_message_length", grpcclient.MAX_GRPC_MESSAGE_SIZE),
            ("grpc.keepalive_time_ms", keepalive.keepalive_time_ms),
            ("grpc.keepalive_timeout_ms", keepalive.keepalive_timeout_ms),
            ("grpc.keepalive_permit_without_calls", keepalive.keepalive_permit_without_calls),
            ("grpc.http2.max_pings_without_data", keepalive.http2_max_pings_without_data), *RECONNECT_BACKOFF]


def _module(protocol: Protocol, asynchronous: bool):
    if protocol not in ("http", "grpc"):
        raise ValueError(f"protocol must be 'http' or 'grpc'; got {protocol!r}")
    return {("http", False): httpclient, ("grpc", False): grpcclient,
            ("http", True): httpaio, ("grpc", True): grpcaio}[protocol, asynchronous]


def _inputs(module, spec: ModelSpec, values: dict[str, np.ndarray | list]) -> list:
    """The request tensors of a model, in its spec's order, typed by its spec (strings as UTF-8 bytes)."""
    tensors = []
    for tensor in spec.inputs:
        if tensor.optional and tensor.name not in values:
            continue
        value = np.asarray(values[tensor.name], dtype=NUMPY_TYPES[tensor.dtype])
        if tensor.dtype == "STRING":
            value = np.vectorize(lambda v: v.encode() if isinstance(v, str) else v, otypes=[object])(value)
        infer_input = module.InferInput(tensor.name, list(value.shape), WIRE_TYPES[tensor.dtype])
        infer_input.set_data_from_numpy(value)
        tensors.append(infer_input)
    return tensors


def recommend_inputs(module, histories: Sequence[Sequence[int]], exclude: Sequence[Sequence[int]] | None,
                     limit: int, seq_len: int, objectives: ObjectiveWeights | None = None) -> list:
    """The ``recommend`` ensemble's input tensors for a batch of users
    (see :func:`recstack.ensemble.funnel.request_arrays`), with their objective weights when given."""
    seq, excluded, limits = request_arrays(histories, exclude, limit, seq_len)
    values = {"item_seq": seq, "exclude": excluded, "limit": limits}
    if objectives is not None:
        values[WEIGHTS.name] = objectives.rows(len(seq))
    return _inputs(module, RECOMMEND, values)


def rank_inputs(module, history: Sequence[int], candidates: Sequence[int], seq_len: int) -> list:
    """The ``rank`` model's inputs: one user's history and the items to score."""
    if not len(candidates):
        raise ValueError("at least one candidate is needed")
    seq = pad_left([np.asarray(history, dtype=np.int64)], window_width([len(history)], seq_len))
    return _inputs(module, RANK, {"item_seq": seq, "candidates": [candidates]})


def similar_inputs(module, item_idx: int, limit: int, kind: str) -> list:
    return _inputs(module, SIMILAR, {"item_idx": [[item_idx]], "limit": [[limit]], "kind": [[kind]]})


def trending_inputs(module, limit: int, category: str) -> list:
    return _inputs(module, TRENDING, {"category": [[category]], "limit": [[limit]]})


def model_version(version: int | None) -> str:
    """tritonclient's ``model_version``: empty for the server's choice."""
    return "" if version is None else str(version)


def arrays(result, spec: ModelSpec = RECOMMEND) -> dict[str, np.ndarray]:
    return {name: result.as_numpy(name) for name in spec.output_names}


class TritonRecommender:
    """Blocking client. Over HTTP it is not thread-safe (tritonclient's gevent connection pool): use one per
    thread; over gRPC one client may serve many threads.

    Examples
    --------
    >>> client = TritonRecommender("127.0.0.1:8001", "grpc")  # doctest: +SKIP
    >>> top = client.recommend([[17, 42, 8]], limit=5)[0]  # doctest: +SKIP
    >>> top.items[0]  # doctest: +SKIP
    Recommendation(item_id='i0000658', score=1.0, reason='because you viewed ...', model_version='sasrec-...')
    """

    def __init__(self, url: str, protocol: Protocol = "grpc", seq_len: int = DEFAULT_SEQ_LEN,
                 timeout_s: float | None = None):
        self.module = _module(protocol, asynchronous=False)
        self.protocol = protocol
        self.seq_len = seq_len
        self.timeout_s = timeout_s
        if protocol == "http" and timeout_s is not None:
            # HTTP's per-call timeout is a server-side hint that ensembles ignore: bound the socket instead.
            self.client = self.module.InferenceServerClient(url, connection_timeout=timeout_s,
                                                            network_timeout=timeout_s)
        elif protocol == "grpc":
            self.client = self.module.InferenceServerClient(url, channel_args=grpc_channel_args())
        else:
            self.client = self.module.InferenceServerClient(url)

    def _call(self, model: str, inputs: list, version: int | None = None):
        if self.timeout_s is not None and self.protocol == "grpc":
            return self.client.infer(model, inputs, model_version(version), client_timeout=self.timeout_s)
        return self.client.infer(model, inputs, model_version(version))

    def _infer(self, model: str, inputs: list, version: int | None = None) -> dict[str, np.ndarray]:
        return arrays(self._call(model, inputs, version))

    def recommend_arrays(self, histories, exclude=None, limit: int = 20, model: str = "recommend",
                         version: int | None = None, objectives: ObjectiveWeights | None = None
                         ) -> dict[str, np.ndarray]:
        inputs = recommend_inputs(self.module, histories, exclude, limit, self.seq_len, objectives)
        return self._infer(model, inputs, version)

    def recommend(self, histories, exclude=None, limit: int = 20, model: str = "recommend",
                  version: int | None = None, objectives: ObjectiveWeights | None = None) -> list[RecommendationList]:
        """``model``: the ensemble (``recommend``, or ``recommend_canary`` while a canary serves); ``objectives``:
        how the re-rank weighs the ranker's objective heads (an experiment variant's; None: as built)."""
        return lists(self.recommend_arrays(histories, exclude, limit, model, version, objectives))

    def rank(self, history: Sequence[int], candidates: Sequence[int], version: int | None = None) -> np.ndarray:
        """The ranker's score of each candidate for a user with this history."""
        result = self._call("rank", rank_inputs(self.module, history, candidates, self.seq_len), version)
        return arrays(result, RANK)["scores"][0]

    def similar(self, item_idx: int, limit: int = 10, kind: str = "similar",
                version: int | None = None) -> RecommendationList:
        return lists(self._infer("similar", similar_inputs(self.module, item_idx, limit, kind), version))[0]

    def trending(self, limit: int = 20, category: str = "", version: int | None = None) -> RecommendationList:
        return lists(self._infer("trending", trending_inputs(self.module, limit, category), version))[0]

    def ready(self) -> bool:
        try:
            return bool(self.client.is_server_ready())
        except Exception:  # noqa: BLE001 - any transport failure means "not ready"
            return False

    def close(self) -> None:
        self.client.close()

    def __enter__(self) -> TritonRecommender:
        return self

    def __exit__(self, *exc) -> None:
        self.close()


class AsyncTritonRecommender:
    """asyncio client with the same methods as :class:`TritonRecommender` (awaitable): the Triton
    :class:`recstack.client.engine.Engine`."""

    def __init__(self, url: str, protocol: Protocol = "grpc", seq_len: int = DEFAULT_SEQ_LEN):
        self.module = _module(protocol, asynchronous=True)
        self.seq_len = seq_len
        options = {"channel_args": grpc_channel_args()} if protocol == "grpc" else {}
        self.client = self.module.InferenceServerClient(url, **options)

    async def recommend_arrays(self, histories, exclude=None, limit: int = 20, model: str = "recommend",
                               version: int | None = None, objectives: ObjectiveWeights | None = None
                               ) -> dict[str, np.ndarray]:
        inputs = recommend_inputs(self.module, histories, exclude, limit, self.seq_len, objectives)
        return arrays(await self.client.infer(model, inputs, model_version(version)))

    async def recommend(self, histories, exclude=None, limit: int = 20, model: str = "recommend",
                        version: int | None = None, objectives: ObjectiveWeights | None = None
                        ) -> list[RecommendationList]:
        """``model`` names the ensemble (experiments may deploy others beside ``recommend``, and a canary
        serves as ``recommend_canary``); ``objectives``: the variant's objective weights (None: as built)."""
        return lists(await self.recommend_arrays(histories, exclude, limit, model, version, objectives))

    async def rank(self, history: Sequence[int], candidates: Sequence[int], version: int | None = None
                   ) -> np.ndarray:
        result = await self.client.infer("rank", rank_inputs(self.module, history, candidates, self.seq_len),
                                         model_version(version))
        return arrays(result, RANK)["scores"][0]

    async def ready(self) -> bool:
        try:
            return bool(await self.client.is_server_ready())
        except Exception:  # noqa: BLE001 - any transport failure means "not ready"
            return False

    async def similar(self, item_idx: int, limit: int = 10, kind: str = "similar") -> RecommendationList:
        return lists(arrays(await self.client.infer("similar", similar_inputs(self.module, item_idx, limit,
                                                                                kind))))[0]

    async def trending(self, limit: int = 20, category: str = "") -> RecommendationList:
        return lists(arrays(await self.client.infer("trending", trending_inputs(self.module, limit, category))))[0]

    async def close(self) -> None:
        await self.client.close()
