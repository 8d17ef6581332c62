"""The HTTP connections uvicorn accepts, bounded before any request reaches the app.

``guarded_protocol(settings)`` is uvicorn's httptools protocol (``uvicorn[standard]``) with three bounds
uvicorn does not have or answers in plain text:

- **Open connections** (``MAX_CONNECTIONS``): a connection over the bound is answered at once with a
  JSON 503 (``too_many_connections``, ``Retry-After``) and closed. uvicorn's ``limit_concurrency`` would
  answer ``text/plain`` and only once the headers are in, so it is not used.
- **Header time** (``HEADER_TIMEOUT_S``): from the connection's start, and from each response to the
  next request, the request line and headers must arrive in time, else a JSON 408
  (``request_timeout``) and close. uvicorn only closes a keep-alive connection that stays idle
  (``timeout_keep_alive``); a client trickling headers is never timed out (slowloris).
- **Header size** (``MAX_HEADER_BYTES``): more bytes without the end of the headers get a JSON 431;
  httptools itself sets no bound (h11's is ``h11_max_incomplete_event_size``, 16 KiB).

The body's own limits (size, memory, time) are ``service.limits``'s, once the app reads it.
"""

from __future__ import annotations

import asyncio
import json
import logging
from http import HTTPStatus

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

from service.errors import refusals

logger = logging.getLogger("service")

#: Request line + headers at most (bytes): nginx's default ``large_client_header_buffers 4 8k`` holds
#: 32 KiB; twice that leaves room for long bearer tokens.
MAX_HEADER_BYTES = 64 * 1024


def raw_response(status: int, code: str, detail: str, headers: dict[str, str] | None = None) -> bytes:
    """A complete HTTP/1.1 response with the JSON error body of ``service.errors``
    (``{"error": code, "detail": detail}``) and ``connection: close``, for writing to a transport."""
    body = json.dumps({"error": code, "detail": detail}).encode()
    lines = [f"HTTP/1.1 {status} {HTTPStatus(status).phrase}", "content-type: application/json",
             f"content-length: {len(body)}", "connection: close"]
    lines += [f"{name}: {value}" for name, value in (headers or {}).items()]
    return ("\r\n".join(lines) + "\r\n\r\n").encode() + body


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """``HttpToolsProtocol`` with the bounds of the module docstring (class attributes, set by
    ``guarded_protocol``)."""

    max_connections = 512
    header_timeout_s = 20.0
    max_header_bytes = MAX_HEADER_BYTES

    _header_timer: asyncio.TimerHandle | None = None
    _header_bytes = 0
    _refused = False

    def connection_made(self, transport: asyncio.Transport) -> None:  # type: ignore[override]
        if len(self.connections) >= self.max_connections:
            self.transport, self._refused = transport, True
            refusals.event("too_many_connections")
            transport.write(raw_response(
                503, "too_many_connections",
                f"the server has {self.max_connections} connections open (MAX_CONNECTIONS): retry later",
                {"retry-after": "1"}))
            transport.close()
            return
        super().connection_made(transport)
        self._arm_header_timer()

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_header_timer()
        if self._refused:
            return
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._refused:
            return
        if self._header_timer is not None:
            self._header_bytes += len(data)
        super().data_received(data)
        if self._header_timer is not None and self._header_bytes > self.max_header_bytes:
            self._refuse(431, "request_header_fields_too_large",
                         f"request line and headers over {self.max_header_bytes} bytes")

    def on_message_begin(self) -> None:
        super().on_message_begin()
        if self._header_timer is None and not self._awaiting_body():
            self._arm_header_timer()

    def on_headers_complete(self) -> None:
        self._cancel_header_timer()
        super().on_headers_complete()

    def on_response_complete(self) -> None:
        super().on_response_complete()
        if not self.transport.is_closing() and not self.pipeline:
            self._arm_header_timer()

    def _awaiting_body(self) -> bool:
        return self.cycle is not None and not self.cycle.response_complete

    def _arm_header_timer(self) -> None:
        self._cancel_header_timer()
        self._header_bytes = 0
        self._header_timer = self.loop.call_later(self.header_timeout_s, self._header_timeout)

    def _cancel_header_timer(self) -> None:
        if self._header_timer is not None:
            self._header_timer.cancel()
            self._header_timer = None

    def _header_timeout(self) -> None:
        self._header_timer = None
        self._refuse(408, "request_timeout",
                     f"request headers not received within {self.header_timeout_s:g} s (HEADER_TIMEOUT_S)")

    def _refuse(self, status: int, code: str, detail: str) -> None:
        """Answer ``status`` in JSON and close, unless a response is under way or the connection closing."""
        self._cancel_header_timer()
        if self.transport.is_closing() or (self.cycle is not None and self.cycle.response_started
                                           and not self.cycle.response_complete):
            return
        refusals.event(code)
        self.transport.write(raw_response(status, code, detail))
        self.transport.close()


def guarded_protocol(settings) -> type[GuardedHttpToolsProtocol]:
    """The protocol class for ``uvicorn.Config(http=...)`` with ``settings``' ``MAX_CONNECTIONS`` and
    ``HEADER_TIMEOUT_S`` (``settings``: a ``service.settings.Settings``)."""
    return type("GuardedHttpToolsProtocol", (GuardedHttpToolsProtocol,), {
        "max_connections": settings.max_connections, "header_timeout_s": settings.header_timeout_s})
