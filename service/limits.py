"""Request body limits, enforced while streaming, as pure ASGI middleware: size (``MAX_BODY_BYTES``),
memory (the budget of bodies in flight, ``service.memory``) and time (``BODY_TIMEOUT_S`` +
``MIN_UPLOAD_BYTES_PER_S``)."""

from __future__ import annotations

import asyncio

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import MemoryBudgetFull, PayloadTooLarge, RequestTimeout
from service.memory import BodyBudget

#: Headers of a refusal after which the rest of the body is not read: uvicorn closes the connection.
CLOSE = {"Connection": "close"}
#: Seconds a client is told to wait before retrying a body the memory budget could not take now.
RETRY_AFTER_S = 1


class BodyLimitMiddleware:
    """Fail body reads that are too big, do not fit the memory budget, or arrive too slowly.

    - Size: a declared ``Content-Length`` over ``max_bytes`` fails the first read with
      ``PayloadTooLarge`` (413), so nothing is read; a chunked body fails the read that crosses it.
    - Memory: the first read reserves the declared ``Content-Length`` in ``budget`` and fails with
      ``MemoryBudgetFull`` (503 + ``Retry-After``) if it does not fit, before a byte is read; bytes
      beyond the reservation (chunked bodies, which declare nothing) are reserved as they arrive and
      the read that would overrun the budget fails. Everything reserved is released when the request
      has been answered (its bytes are referenced until then) or the client went away.
    - Time (the rule of Apache's ``mod_reqtimeout``, ``body=20,MinRate=500``): the body must arrive
      within ``body_timeout_s`` of the first read, extended by one second per ``min_rate`` bytes
      received, else the pending read fails with ``RequestTimeout`` (408).

    The route's exception handler turns each error into its JSON answer (``service.errors``). Reads
    after the body is complete (e.g. waiting for ``http.disconnect``) have no deadline.
    """

    def __init__(self, app: ASGIApp, max_bytes: int, budget: BodyBudget | None = None,
                 body_timeout_s: float | None = None, min_rate: int | None = None) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.budget = budget or BodyBudget()
        self.body_timeout_s = body_timeout_s
        self.min_rate = min_rate

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        reading = _BodyRead(self, _content_length(scope), receive)
        try:
            await self.app(scope, reading.receive, send)
        finally:
            self.budget.release(reading.reserved)


class _BodyRead:
    """One request's body as it is read: bytes received and reserved, and its deadline."""

    def __init__(self, limits: BodyLimitMiddleware, declared: int | None, receive: Receive) -> None:
        self.limits, self.declared, self._receive = limits, declared, receive
        self.received = self.reserved = 0
        self.started: float | None = None  # loop time of the first read
        self.complete = False

    async def receive(self) -> Message:
        if self.complete:
            return await self._receive()
        limit = self.limits.max_bytes
        if self.declared is not None and self.declared > limit:
            raise PayloadTooLarge(f"request body is {self.declared} bytes, over the {limit}-byte limit "
                                  "(MAX_BODY_BYTES)")
        loop = asyncio.get_running_loop()
        if self.started is None:
            self.started = loop.time()
            self._reserve(self.declared or 0)
        message = await self._timed_receive(loop)
        if message["type"] == "http.request":
            self.received += len(message.get("body", b""))
            if self.received > limit:
                raise PayloadTooLarge(f"request body is over the {limit}-byte limit (MAX_BODY_BYTES)")
            self._reserve(self.received - self.reserved)
            self.complete = not message.get("more_body", False)
        elif message["type"] == "http.disconnect":
            self.complete = True
        return message

    def _reserve(self, nbytes: int) -> None:
        if nbytes <= 0:
            return
        budget = self.limits.budget
        if not budget.reserve(nbytes):
            raise MemoryBudgetFull(
                f"the server's memory for request bodies in flight is taken ({budget.reserved} of "
                f"{budget.capacity} bytes): retry in {RETRY_AFTER_S} s",
                headers={"Retry-After": str(RETRY_AFTER_S)} | CLOSE)
        self.reserved += nbytes

    async def _timed_receive(self, loop: asyncio.AbstractEventLoop) -> Message:
        timeout_s, rate = self.limits.body_timeout_s, self.limits.min_rate
        if timeout_s is None:
            return await self._receive()
        deadline = self.started + timeout_s + (self.received / rate if rate else 0.0)
        try:
            async with asyncio.timeout_at(deadline):
                return await self._receive()
        except TimeoutError:
            raise RequestTimeout(
                f"request body too slow: {self.received} bytes in {loop.time() - self.started:.1f} s "
                f"(BODY_TIMEOUT_S {timeout_s:g} s + 1 s per MIN_UPLOAD_BYTES_PER_S {rate} bytes)",
                headers=CLOSE) from None


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
