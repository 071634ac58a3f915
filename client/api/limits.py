"""Request limits applied before a body reaches the app: its size, how deep its JSON nests, and numbers JSON does
not allow.

A pure ASGI middleware, outermost, so that a 20 MB body is refused from its ``Content-Length`` (or, sent chunked,
as soon as it passes the limit) without being held in memory, and the route behind it never sees a body that nests
deeper than the limit or carries ``NaN`` into a model. Every body is checked whatever its declared content type
(a beacon sends JSON as ``text/plain``, or as anything else): a body that is not JSON at all is left to the route.
"""

from __future__ import annotations

import json
import math

from recstack.client.api.problems import problem


class NonFinite(ValueError):
    pass


def _finite(text: str) -> float:
    value = float(text)
    if not math.isfinite(value):  # 1e999 parses to inf
        raise NonFinite(text)
    return value


def _refuse_constant(name: str):
    raise NonFinite(name)


def json_depth(value) -> int:
    """How deep a parsed JSON value's arrays and objects nest (0 for a scalar), without recursion."""
    deepest, stack = 0, [(value, 1)]
    while stack:
        node, depth = stack.pop()
        children = node.values() if isinstance(node, dict) else node if isinstance(node, list) else None
        if children is not None:
            deepest = max(deepest, depth)
            stack.extend((child, depth + 1) for child in children)
    return deepest


def json_problem(body: bytes, max_depth: int) -> str | None:
    """Why a JSON body is refused, or None; a body that is not JSON at all is left to the route's own parser.
    One linear parse: the parser's own recursion guard stops nesting far past the limit."""
    too_deep = f"the JSON nests deeper than {max_depth} levels"
    try:
        parsed = json.loads(body, parse_float=_finite, parse_constant=_refuse_constant)
    except NonFinite as exc:
        return f"JSON numbers must be finite; got {exc}"
    except RecursionError:
        return too_deep
    except ValueError:
        return None
    return too_deep if json_depth(parsed) > max_depth else None


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
        if body:
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
