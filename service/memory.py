"""The container's memory limit, and how much of it request bodies in flight may hold (docs/memory.md).

The limit is read the way ``service.cpus`` reads the CPU quota (the process's cgroup from
``/proc/self/cgroup`` + ``/proc/self/mountinfo``, every level up to the mount point, tightest wins, as
the kernel charges each level for everything below it): cgroup v2 ``memory.max`` (``"max"`` or bytes,
Documentation/admin-guide/cgroup-v2.rst "Memory Interface Files"), cgroup v1
``memory.limit_in_bytes`` (Documentation/admin-guide/cgroup-v1/memory.rst; "no limit" reads as
``PAGE_COUNTER_MAX`` pages, 9223372036854771712 with 4 KiB pages). ``MEMORY_LIMIT_BYTES`` overrides it;
with no limit anywhere the machine's physical memory is the limit.

The budget of request bodies (``MemoryPlan``), every term in bytes::

    fixed   = footprint + batches + queue + decode + connections + headroom
    bodies  = (limit - fixed) / BODY_COPIES          # body bytes admitted at once, at least MAX_BODY_BYTES

    footprint   = peak RSS after the model is loaded and warmed up (a pass at the full batch size)
    batches     = 2 x MAX_BATCH_SIZE x 3 x crop x crop x 4     float32 input of the pass running + the next
    queue       = MAX_QUEUE x 3 x crop x crop                  uint8 pixels admitted, waiting for a batch
    decode      = DECODE_THREADS x MAX_IMAGE_PIXELS x 3 x DECODE_COPIES    images being decoded
    connections = MAX_CONNECTIONS x CONNECTION_BYTES           uvicorn's read-ahead per connection
    headroom    = HEADROOM_FRACTION x limit                    allocator slack, logs, metrics, Python objects

``BodyBudget`` counts the admitted bytes (``service.limits`` reserves and releases them).
"""

from __future__ import annotations

import math
import os
import resource
from dataclasses import dataclass, field
from pathlib import Path

from service.cpus import cgroup_levels, controller_cgroup, parse_mountinfo

V1_LIMIT, V2_MAX = "memory.limit_in_bytes", "memory.max"
#: A v1 limit at or above this is "no limit" (the kernel reports PAGE_COUNTER_MAX pages, ~2^63 bytes).
V1_UNLIMITED = 1 << 62
#: A body byte admitted exists about twice while its request runs: Starlette's list of received chunks
#: and the joined ``bytes`` (``Request.body``), or the spooled multipart file and ``UploadFile.read()``.
BODY_COPIES = 2
#: A decoding image exists about twice at its peak: Pillow's decoded image and its RGB conversion or
#: EXIF-transposed copy (``service.decode.decode_image``).
DECODE_COPIES = 2
#: Bytes one open connection may hold before the app reads its body: uvicorn's buffer up to its
#: high-water mark (``uvicorn.protocols.http.flow_control.HIGH_WATER_LIMIT``, 64 KiB) plus one transport
#: read (asyncio's and uvloop's read size, 256 KiB).
CONNECTION_BYTES = 64 * 1024 + 256 * 1024
#: Share of the limit kept free for everything not counted above (allocator fragmentation, Python objects).
HEADROOM_FRACTION = 0.10
#: Maximal bodies the limit must leave room for (the stack checks ``memoryLimit`` against it).
MIN_BODIES = 4


@dataclass(frozen=True)
class MemoryLimit:
    """The tightest memory limit found: ``bytes`` (None when no level has one), the file it came from
    (or why there is none) in ``source``, files that could not be read or parsed in ``problems``."""

    bytes: int | None
    source: str
    problems: tuple[str, ...] = field(default_factory=tuple)


def parse_memory_max(text: str) -> int | None:
    """cgroup v2 ``memory.max`` -> bytes: ``"2147483648"`` -> 2147483648, ``"max"`` -> None.
    Raises ``ValueError`` for anything else."""
    value = text.strip()
    if value == "max":
        return None
    return _non_negative_int(value, V2_MAX)


def parse_limit_in_bytes(text: str) -> int | None:
    """cgroup v1 ``memory.limit_in_bytes`` -> bytes; ``9223372036854771712`` (any value >= 2^62) -> None.
    Raises ``ValueError`` for non-numbers."""
    value = _non_negative_int(text.strip(), V1_LIMIT)
    return None if value >= V1_UNLIMITED else value


def _non_negative_int(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{what}: not an integer: {text!r}") from None
    if value < 0:
        raise ValueError(f"{what}: must be >= 0, got {value}")
    return value


def read_limit(root: Path = Path("/")) -> MemoryLimit:
    """The tightest memory limit over the process's memory cgroup and its ancestors, read under
    ``root`` (``/`` in production, a fake tree in tests). Never raises (as ``cpus.read_quota``)."""
    try:
        proc_cgroup = (root / "proc/self/cgroup").read_text()
        mounts = parse_mountinfo((root / "proc/self/mountinfo").read_text())
    except OSError as error:
        return MemoryLimit(None, f"no cgroup information ({error.strerror or error})")
    found = controller_cgroup(proc_cgroup, mounts, "memory")
    if found is None:
        return MemoryLimit(None, "no memory cgroup mounted")
    version, mount_point, relative = found
    name, parse = (V2_MAX, parse_memory_max) if version == "v2" else (V1_LIMIT, parse_limit_in_bytes)
    best, source, problems = None, f"cgroup {version}: no limit", []
    for directory in cgroup_levels(root, mount_point, relative):
        try:
            limit = parse((directory / name).read_text())
        except FileNotFoundError:
            continue  # the v2 root cgroup has no memory.max
        except (OSError, ValueError) as error:
            problems.append(f"{directory}: {error}")
            continue
        if limit is not None and (best is None or limit < best):
            best, source = limit, f"cgroup {version} /{(directory / name).relative_to(root)}"
    return MemoryLimit(best, source, tuple(problems))


def physical_memory() -> int:
    """The machine's RAM (bytes): ``SC_PHYS_PAGES`` x ``SC_PAGE_SIZE``."""
    return os.sysconf("SC_PHYS_PAGES") * os.sysconf("SC_PAGE_SIZE")


def peak_rss() -> int:
    """This process's peak resident set size (bytes): ``VmHWM`` of ``/proc/self/status`` (proc(5)),
    else ``getrusage``'s ``ru_maxrss`` (KiB on Linux)."""
    try:
        for line in Path("/proc/self/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) * 1024
    except OSError:
        pass
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024


@dataclass(frozen=True)
class MemoryPlan:
    """The terms of the formula in the module docstring (bytes) and the limit they share."""

    limit: int
    source: str
    footprint: int
    batches: int
    queue: int
    decode: int
    connections: int
    headroom: int
    max_body_bytes: int

    @property
    def fixed(self) -> int:
        """Everything but request bodies (bytes)."""
        return (self.footprint + self.batches + self.queue + self.decode + self.connections
                + self.headroom)

    @property
    def bodies(self) -> int:
        """Body bytes admitted at once: ``(limit - fixed) / BODY_COPIES``, at least one maximal body
        (a limit too small for that still serves one upload at a time; ``sufficient`` is then False)."""
        return max(self.max_body_bytes, (self.limit - self.fixed) // BODY_COPIES)

    @property
    def sufficient(self) -> bool:
        """True when the limit leaves room for ``MIN_BODIES`` maximal bodies."""
        return self.limit - self.fixed >= MIN_BODIES * BODY_COPIES * self.max_body_bytes


def fixed_terms(*, max_batch_size: int, crop_size: int, max_queue: int, decode_threads: int,
                max_image_pixels: int, max_connections: int) -> dict[str, int]:
    """The terms that do not depend on the limit or the model (bytes): ``batches``, ``queue``,
    ``decode``, ``connections``, as in the module docstring."""
    pixels = 3 * crop_size * crop_size
    return {"batches": 2 * max_batch_size * pixels * 4, "queue": max_queue * pixels,
            "decode": decode_threads * max_image_pixels * 3 * DECODE_COPIES,
            "connections": max_connections * CONNECTION_BYTES}


def plan(settings, crop_size: int, max_batch_size: int, footprint: int,
         limit: MemoryLimit | None = None) -> MemoryPlan:
    """The ``MemoryPlan`` of ``settings`` (a ``service.settings.Settings``) for a model whose input is
    ``[max_batch_size, 3, crop_size, crop_size]`` and whose process peaked at ``footprint`` bytes.
    The limit: ``MEMORY_LIMIT_BYTES``, else ``limit`` (default ``read_limit()``), else physical memory."""
    if settings.memory_limit_bytes is not None:
        total, source = settings.memory_limit_bytes, "MEMORY_LIMIT_BYTES"
    else:
        limit = limit or read_limit()
        problems = f"; unreadable: {'; '.join(limit.problems)}" if limit.problems else ""
        total, source = (limit.bytes, limit.source + problems) if limit.bytes is not None else (
            physical_memory(), f"physical memory ({limit.source}{problems})")
    terms = fixed_terms(max_batch_size=max_batch_size, crop_size=crop_size, max_queue=settings.max_queue,
                        decode_threads=settings.decode_threads, max_image_pixels=settings.max_image_pixels,
                        max_connections=settings.max_connections)
    return MemoryPlan(limit=total, source=source, footprint=footprint, **terms,
                      headroom=int(HEADROOM_FRACTION * total), max_body_bytes=settings.max_body_bytes)


def _mib(n: int) -> str:
    return f"{n / 2**20:.0f} MiB"


def plan_line(p: MemoryPlan) -> str:
    """The start-up log line of ``p``: the body budget and each term (MiB), like ``cpus.sizing_line``."""
    bodies = p.bodies // p.max_body_bytes
    warning = "" if p.sufficient else (f"; WARNING: the limit leaves room for fewer than {MIN_BODIES} "
                                       "maximal bodies, raise it or lower MAX_BODY_BYTES / MAX_IMAGE_PIXELS")
    return (f"memory budget: request bodies {_mib(p.bodies)} ({bodies} x MAX_BODY_BYTES) of a "
            f"{_mib(p.limit)} limit from {p.source}; model footprint {_mib(p.footprint)} (peak RSS "
            f"after warm-up), batches {_mib(p.batches)}, queue {_mib(p.queue)}, decode {_mib(p.decode)}, "
            f"connections {_mib(p.connections)}, headroom {_mib(p.headroom)}; each body byte counted "
            f"{BODY_COPIES}x{warning}")


class BodyBudget:
    """Body bytes admitted and not yet released, against ``capacity`` (None: not sized yet, no bound).

    Used from the event loop only (no lock): ``reserve`` then ``release`` the same amounts.
    """

    def __init__(self, capacity: int | None = None) -> None:
        self.capacity = capacity
        self.reserved = 0

    def reserve(self, nbytes: int) -> bool:
        """Admit ``nbytes`` more if they fit (True), else change nothing (False)."""
        if self.capacity is not None and self.reserved + nbytes > self.capacity:
            return False
        self.reserved += nbytes
        return True

    def release(self, nbytes: int) -> None:
        """Give back ``nbytes`` reserved earlier."""
        self.reserved = max(0, self.reserved - nbytes)


def minimum_limit(*, footprint: int, max_batch_size: int, crop_size: int, max_queue: int,
                  decode_threads: int, max_image_pixels: int, max_connections: int,
                  max_body_bytes: int) -> int:
    """The smallest limit (bytes) whose ``MemoryPlan`` is ``sufficient``: room for ``footprint``, the
    ``fixed_terms``, the headroom and ``MIN_BODIES`` maximal bodies counted ``BODY_COPIES`` times,
    ``ceil((footprint + terms + MIN_BODIES x BODY_COPIES x max_body_bytes) / (1 - HEADROOM_FRACTION))``.
    The stack checks ``memoryLimit`` against it (stacks/config/workload.py)."""
    terms = fixed_terms(max_batch_size=max_batch_size, crop_size=crop_size, max_queue=max_queue,
                        decode_threads=decode_threads, max_image_pixels=max_image_pixels,
                        max_connections=max_connections)
    needed = footprint + sum(terms.values()) + MIN_BODIES * BODY_COPIES * max_body_bytes
    return math.ceil(needed / (1 - HEADROOM_FRACTION))
