"""Request body limit (``MAX_BODY_BYTES``) enforced while streaming, as pure ASGI middleware."""

from __future__ import annotations

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from service.errors import PayloadTooLarge


class BodyLimitMiddleware:
    """Fail body reads over ``max_bytes`` with ``PayloadTooLarge`` (413) before buffering them.

    A declared ``Content-Length`` over the limit fails the first read, so nothing is read at all;
    otherwise (chunked uploads) bytes are counted as they arrive and the read that crosses the limit
    fails. The route's exception handler turns the error into the JSON 413.
    """

    def __init__(self, app: ASGIApp, max_bytes: int) -> None:
        self.app = app
        self.max_bytes = max_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        limit = self.max_bytes
        declared = _content_length(scope)
        received = 0

        async def limited_receive() -> Message:
            nonlocal received
            if declared is not None and declared > limit:
                raise PayloadTooLarge(f"request body is {declared} bytes, over the {limit}-byte limit "
                                      "(MAX_BODY_BYTES)")
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise PayloadTooLarge(f"request body is over the {limit}-byte limit (MAX_BODY_BYTES)")
            return message

        await self.app(scope, limited_receive, send)


def _content_length(scope: Scope) -> int | None:
    for name, value in scope.get("headers", ()):
        if name == b"content-length":
            try:
                return int(value)
            except ValueError:
                return None
    return None
