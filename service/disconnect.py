"""Client disconnects: a request whose client has gone stops waiting, and its images leave the queue.

uvicorn keeps running a handler after its client has closed the connection; an image waiting in the
batch queue would hold its slot under ``MAX_QUEUE`` (and later a place in a forward pass) for an answer
nobody reads. Once a request's body has been read, the ASGI ``receive`` has nothing more to return
but ``http.disconnect``, which uvicorn sends when the connection closes (or the response is complete,
ASGI HTTP spec), so ``unless_disconnected`` waits for it next to the inference and cancels the
inference when it comes first: ``Batcher.submit`` then takes the request's images out of the queue.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import Awaitable
from typing import TypeVar

from starlette.requests import Request

from service.errors import ClientClosedRequest

T = TypeVar("T")


async def unless_disconnected(request: Request, work: Awaitable[T]) -> T:
    """``await work`` (its result or error), unless the client disconnects first: then ``work`` is
    cancelled and ``ClientClosedRequest`` (499, never read by anyone; it marks the access log line and
    ``http_requests_total``) raised. Call it only after the request body has been read in full."""
    task = asyncio.ensure_future(work)
    watcher = asyncio.ensure_future(_disconnected(request))
    try:
        await asyncio.wait({task, watcher}, return_when=asyncio.FIRST_COMPLETED)
        if task.done():
            return task.result()
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError, Exception):
            await task  # the queue is left before the handler answers
        raise ClientClosedRequest("the client closed the connection before the answer")
    finally:
        watcher.cancel()
        task.cancel()


async def _disconnected(request: Request) -> None:
    """Return when ``receive`` says ``http.disconnect`` (any later body message is ignored)."""
    while (await request.receive())["type"] != "http.disconnect":
        pass
