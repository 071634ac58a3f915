"""Request limits applied before a body reaches the app: its size, how deep its JSON nests, and numbers JSON does
not allow.

A pure ASGI middleware, outermost, so that a 20 MB body is refused from its ``Content-Length`` (or, sent chunked,
as soon as it passes the limit) without being held in memory, and the parsers behind it never see a body that
could exhaust the recursion limit or carry ``NaN`` into a model.
"""

from __future__ import annotations

import json
import math
import re

import numpy as np
from recstack.client.api.problems import problem

# A JSON string literal, escapes included: brackets inside strings do not nest.
_STRING = re.compile(rb'"(?:[^"\\]|\\.)*"', re.DOTALL)
_OPEN, _CLOSE = np.frombuffer(b"[{", np.uint8), np.frombuffer(b"]}", np.uint8)


class NonFinite(ValueError):
    pass


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf
        raise NonFinite(text)
    return value


def _refuse_constant(name: str):
    raise NonFinite(name)


def json_depth(body: bytes) -> int:
    """How deep ``body``'s arrays and objects nest (0 for a scalar)."""
    codes = np.frombuffer(_STRING.sub(b'""', body), np.uint8)
    steps = np.isin(codes, _OPEN).astype(np.int32) - np.isin(codes, _CLOSE).astype(np.int32)
    return int(np.cumsum(steps).max(initial=0))


def json_problem(body: bytes, max_depth: int) -> str | None:
    """Why a JSON body is refused, or None; a body that is not JSON at all is left to the route's own parser."""
    if json_depth(body) > max_depth:
        return f"the JSON nests deeper than {max_depth} levels"
    try:
        json.loads(body, parse_float=_finite, parse_constant=_refuse_constant)
    except NonFinite as exc:
        return f"JSON numbers must be finite; got {exc}"
    except ValueError:
        return None
    return None


def _is_json(headers: dict[bytes, bytes]) -> bool:
    # FastAPI reads a body without a type as JSON, and a beacon sends its JSON as text/plain.
    content_type = headers.get(b"content-type", b"")
    return not content_type or b"json" in content_type or content_type.startswith(b"text/plain")


class RequestLimits:
    """Refuse bodies over ``max_body_bytes`` (413) and JSON bodies that nest deeper than ``max_depth`` or hold
    ``NaN`` / ``Infinity`` / out-of-range numbers (422); everything else passes through unchanged."""

    def __init__(self, app, max_body_bytes: int, max_depth: int):
        self.app, self.max_body_bytes, self.max_depth = app, max_body_bytes, max_depth

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        headers = dict(scope["headers"])
        declared = headers.get(b"content-length")
        if declared is not None and (not declared.isdigit() or int(declared) > self.max_body_bytes):
            return await self._refuse(scope, receive, send, 413, self._too_large())
        chunks, size, more = [], 0, True
        while more:
            message = await receive()
            if message["type"] == "http.disconnect":
                return None
            chunk = message.get("body", b"")
            size += len(chunk)
            if size > self.max_body_bytes:
                return await self._refuse(scope, receive, send, 413, self._too_large())
            chunks.append(chunk)
            more = message.get("more_body", False)
        body = b"".join(chunks)
        if body and _is_json(headers):
            reason = json_problem(body, self.max_depth)
            if reason is not None:
                return await self._refuse(scope, receive, send, 422, reason)
        delivered = False

        async def replay():
            nonlocal delivered
            if delivered:
                return await receive()
            delivered = True
            return {"type": "http.request", "body": body, "more_body": False}

        return await self.app(scope, replay, send)

    def _too_large(self) -> str:
        return f"the body is over the limit of {self.max_body_bytes:,} bytes"

    async def _refuse(self, scope, receive, send, status: int, detail: str):
        await problem(status, detail)(scope, receive, send)
