"""What the batch queue holds: one image's input and result futures (``Item``), and the helpers that
move it along (its input started as a task, decoded or failed, answered or abandoned)."""

from __future__ import annotations

import asyncio
import time
from collections.abc import Awaitable, Callable, Sequence
from dataclasses import dataclass

import torch

#: What ``submit`` takes per image: a ready tensor ``[3, H, W]`` or a coroutine that makes one.
Input = torch.Tensor | Awaitable[torch.Tensor]


#: ``collate(tensors, normalized)``: N x ``[3, H, W]`` -> the model's input ``[N, 3, H, W]``.
Collate = Callable[[Sequence[torch.Tensor], bool], torch.Tensor]


def stack(tensors: Sequence[torch.Tensor], normalized: bool) -> torch.Tensor:
    """The default ``Collate``: ``torch.stack``, whatever ``normalized`` says."""
    return torch.stack(list(tensors))


@dataclass(eq=False)
class Item:
    input: asyncio.Future  # -> tensor [3, H, W]; pending while the image is being decoded
    future: asyncio.Future  # -> result row [C]; the deadline is submit()'s asyncio.timeout_at
    normalized: bool  # the tensor is already normalised (else uint8 pixels, normalised by collate)
    ready_at: float = 0.0  # time.monotonic() when its tensor was ready (queue wait starts)
    pass_size: int = 0  # images in the forward pass that answered it


def as_future(value: Input, loop: asyncio.AbstractEventLoop) -> asyncio.Future:
    """A tensor as a finished future; a coroutine or awaitable started as a task on ``loop``."""
    if isinstance(value, torch.Tensor):
        future = loop.create_future()
        future.set_result(value)
        return future
    return asyncio.ensure_future(value, loop=loop)


def unanswered(item: Item) -> bool:
    """``item`` got neither a result nor an error (its future is pending, or cancelled by ``gather``
    when the request gave up)."""
    return not item.future.done() or item.future.cancelled()


def decoded(item: Item) -> bool:
    """``item``'s input is done with a tensor (not cancelled, no error). Its done-callbacks, e.g.
    ``input_done``, run a loop iteration later, so a failed input is checked here too."""
    return item.input.done() and not item.input.cancelled() and item.input.exception() is None


def input_done(item: Item) -> None:
    """Done-callback of an input: its queue wait starts; its error (e.g. ``BadRequest``) answers its
    request at once."""
    item.ready_at = time.monotonic()
    if item.input.cancelled():
        return
    error = item.input.exception()
    if error is not None and not item.future.done():
        item.future.set_exception(error)
