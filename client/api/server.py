"""The facade's HTTP server: uvicorn with deadlines for slow and idle clients (``recstack serve api``).

uvicorn alone waits for ever on a client that opens a connection and sends its request slowly or not at all, so
two hundred such clients hold two hundred connections of a worker. Here a connection gets ``head_timeout_s`` to
send a request's line and headers (:class:`HeadDeadline`) and ``body_timeout_s`` for its body
(:class:`BodyDeadline`); idle keep-alive connections close after ``keep_alive_s``, and past ``max_connections``
a request is answered 503 at once.
"""

from __future__ import annotations

import asyncio
import functools

import h11
import uvicorn
from recstack.client.api.problems import PROBLEM_JSON, Problem
from recstack.client.core.config import FacadeConfig
from uvicorn.protocols.http.h11_impl import H11Protocol


class HeadDeadline(H11Protocol):
    """h11 protocol that closes a connection whose request head is not complete ``head_timeout_s`` after the
    connection opened, or after the first byte of a later request on it (uvicorn's keep-alive timer covers the
    silence between requests, but any byte cancels it)."""

    def __init__(self, *args, head_timeout_s: float, **kwargs):
        super().__init__(*args, **kwargs)
        self.head_timeout_s = head_timeout_s
        self.head_timer: asyncio.TimerHandle | None = None

    def connection_made(self, transport) -> None:
        super().connection_made(transport)
        self._arm()

    def data_received(self, data: bytes) -> None:
        super().data_received(data)
        if self.conn.their_state is h11.IDLE:
            if self.head_timer is None:
                self._arm()
        else:
            self._disarm()

    def connection_lost(self, exc) -> None:
        self._disarm()
        super().connection_lost(exc)

    def _arm(self) -> None:
        self.head_timer = self.loop.call_later(self.head_timeout_s, self._expire)

    def _disarm(self) -> None:
        if self.head_timer is not None:
            self.head_timer.cancel()
            self.head_timer = None

    def _expire(self) -> None:
        self.head_timer = None
        # h11 cannot answer a request it has not read: the connection just closes.
        if self.conn.their_state is h11.IDLE and not self.transport.is_closing():
            self.transport.close()


DROPPED_BODY = Problem(title="Request Timeout", status=408,
                       detail="the request body did not arrive in time").model_dump_json(exclude_none=True).encode()


class BodyDeadline:
    """ASGI wrapper that drops a request whose body has not fully arrived ``timeout_s`` after its head: the client
    gets 408 and the connection is closed; the application sees a disconnect and its answer is discarded."""

    def __init__(self, app, timeout_s: float, on_drop=None):
        self.app, self.timeout_s, self.on_drop = app, timeout_s, on_drop

    async def __call__(self, scope, receive, send):
        if scope["type"] != "http":
            return await self.app(scope, receive, send)
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.timeout_s
        state = {"body_done": False, "started": False, "dropped": False}

        async def timed_receive():
            if state["body_done"] or state["dropped"]:
                return await receive()  # after the body: waiting for a disconnect is the application's business
            try:
                message = await asyncio.wait_for(receive(), max(0.0, deadline - loop.time()))
            except TimeoutError:
                await drop()
                return {"type": "http.disconnect"}
            state["body_done"] = message["type"] != "http.request" or not message.get("more_body", False)
            return message

        async def drop():
            state["dropped"] = True
            if self.on_drop is not None:
                self.on_drop()
            if not state["started"]:
                await send({"type": "http.response.start", "status": 408,
                            "headers": [(b"content-type", PROBLEM_JSON.encode()), (b"connection", b"close")]})
                await send({"type": "http.response.body", "body": DROPPED_BODY})

        async def guarded_send(message):
            if state["dropped"]:
                return
            state["started"] = True
            await send(message)

        try:
            await self.app(scope, timed_receive, guarded_send)
        except Exception:
            if not state["dropped"]:
                raise  # a dropped request's failure to parse its missing body is expected, anything else is not


def server_config(app, config: FacadeConfig, log_level: str = "warning") -> uvicorn.Config:
    """uvicorn's configuration for the facade ``app`` with the deadlines and limits of ``config``."""
    metrics = getattr(app.state, "metrics", None)
    on_drop = metrics.dropped.labels("body_timeout").inc if metrics is not None else None
    return uvicorn.Config(BodyDeadline(app, config.body_timeout_s, on_drop), host=config.host, port=config.port,
                          http=functools.partial(HeadDeadline, head_timeout_s=config.head_timeout_s),
                          timeout_keep_alive=config.keep_alive_s, limit_concurrency=config.max_connections,
                          h11_max_incomplete_event_size=config.max_head_bytes, log_level=log_level,
                          lifespan="on")


def serve(app, config: FacadeConfig) -> None:
    """Run the facade until interrupted (SIGINT/SIGTERM finish requests in flight)."""
    uvicorn.Server(server_config(app, config)).run()
