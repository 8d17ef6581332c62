"""CPU-quota and memory-limit cgroups for a server under test: a pod's limits, reproduced on this machine.

``find_cpu_root()`` / ``find_root("memory")`` find a writable hierarchy with the controller: cgroup v1's
(``/sys/fs/cgroup/cpu``, quota in ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, kernel
Documentation/scheduler/sched-bwc.rst; ``/sys/fs/cgroup/memory``, ``memory.limit_in_bytes``,
Documentation/admin-guide/cgroup-v1/memory.rst) or a cgroup v2 hierarchy whose root delegates it
(``cpu.max``, ``memory.max``, Documentation/admin-guide/cgroup-v2.rst). ``QuotaGroup`` / ``MemoryGroup``
make one child group with a CPU quota / memory limit, give the command prefix that starts a process
inside it (so the process reads its limit from its very first instruction, as in a container), and on
exit move any process left in it back to the parent and remove it. ``MemoryGroup`` also reports the
kernel's OOM kills in it and its peak usage. Needs root.
"""

from __future__ import annotations

import contextlib
import os
import time
import uuid
from dataclasses import dataclass
from pathlib import Path

CGROUP_ROOT = Path("/sys/fs/cgroup")
#: The CFS period (µs): the kernel's default, and what Kubernetes writes for a CPU limit (kubelet's
#: ``--cpu-cfs-quota-period`` defaults to 100 ms), so a 1-CPU limit is 100000 / 100000.
PERIOD_US = 100_000


class CgroupUnavailable(RuntimeError):
    """No writable CPU cgroup hierarchy here; the message says what was tried and why it failed."""


@dataclass(frozen=True)
class CgroupRoot:
    """A writable hierarchy with a controller: ``version`` ``v1`` or ``v2`` at ``path``."""

    version: str
    path: Path


#: A file only a v1 hierarchy with the controller has.
V1_MARKERS = {"cpu": "cpu.cfs_quota_us", "memory": "memory.limit_in_bytes"}


def find_cpu_root(root: Path = CGROUP_ROOT) -> CgroupRoot:
    """``find_root("cpu", root)``."""
    return find_root("cpu", root)


def find_root(controller: str, root: Path = CGROUP_ROOT) -> CgroupRoot:
    """The first writable hierarchy with ``controller`` (``cpu``, ``memory``) under ``root``: v1
    ``<root>/<controller>``, then v2 at ``<root>`` (pure v2 host) or ``<root>/unified`` (hybrid host) if
    its root offers and delegates the controller.

    Raises ``CgroupUnavailable`` naming each place tried, e.g. when not root or in a container
    without a writable cgroup filesystem.
    """
    reasons = []
    v1 = root / controller
    if (v1 / V1_MARKERS[controller]).exists():
        why = _writable(v1)
        if why is None:
            return CgroupRoot("v1", v1)
        reasons.append(f"{v1}: {why}")
    else:
        reasons.append(f"{v1}: no cgroup v1 {controller} controller")
    for v2 in (root, root / "unified"):
        controllers = v2 / "cgroup.controllers"
        if not controllers.exists():
            continue
        if controller not in controllers.read_text().split():
            reasons.append(f"{v2}: cgroup v2 without the {controller} controller (it is bound to v1)")
            continue
        why = _enable(v2, controller) or _writable(v2)
        if why is None:
            return CgroupRoot("v2", v2)
        reasons.append(f"{v2}: {why}")
    raise CgroupUnavailable(f"no writable {controller.upper() if controller == 'cpu' else controller} "
                            "cgroup: " + "; ".join(reasons))


def _enable(v2: Path, controller: str) -> str | None:
    """Make ``controller`` available to ``v2``'s children (``+cpu`` into ``cgroup.subtree_control``)."""
    control = v2 / "cgroup.subtree_control"
    try:
        if controller not in control.read_text().split():
            control.write_text(f"+{controller}")
    except OSError as error:
        return f"cannot enable {controller} in {control}: {error.strerror or error}"
    return None


def _writable(path: Path) -> str | None:
    """None if a child group can be made (and removed) under ``path``; else why not."""
    probe = path / f"bench-probe-{uuid.uuid4().hex[:8]}"
    try:
        probe.mkdir()
    except OSError as error:
        return f"cannot create a group ({error.strerror or error}; running as uid {os.getuid()})"
    with contextlib.suppress(OSError):
        probe.rmdir()
    return None


def quota_text(version: str, cpus: float) -> dict[str, str]:
    """Files and contents that set a quota of ``cpus`` CPUs per ``PERIOD_US``:
    v1 ``{"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "150000"}`` for 1.5, v2 ``{"cpu.max":
    "150000 100000"}``. Raises ``ValueError`` unless ``cpus`` > 0 (the kernel's minimum quota is 1 ms)."""
    if not cpus > 0:
        raise ValueError(f"a CPU quota must be > 0 CPUs, got {cpus}")
    quota = max(1000, round(cpus * PERIOD_US))
    if version == "v1":
        return {"cpu.cfs_period_us": str(PERIOD_US), "cpu.cfs_quota_us": str(quota)}
    return {"cpu.max": f"{quota} {PERIOD_US}"}


class ChildGroup:
    """``with ChildGroup(parent, files, name) as group:`` a child cgroup of ``parent`` (a directory of a
    hierarchy) with ``files`` written into it (e.g. ``{"cpu.max": "100000 100000"}``).

    ``group.prefix`` is the command prefix that moves the started process into the group before it
    ``exec``s the real command (``sh -c 'echo $$ > .../cgroup.procs && exec "$@"'``). Leaving the
    block moves whatever still runs in the group back to the parent and removes the group.
    """

    def __init__(self, parent: Path, files: dict[str, str], name: str) -> None:
        self.files = files
        self.path = parent / f"bench-{name}-{os.getpid()}"

    @property
    def prefix(self) -> list[str]:
        procs = self.path / "cgroup.procs"
        return ["sh", "-c", f'echo $$ > "{procs}" && exec "$@"', "cgroup-shim"]

    def pids(self) -> list[int]:
        """Processes in the group now."""
        with contextlib.suppress(OSError):
            return [int(line) for line in (self.path / "cgroup.procs").read_text().split()]
        return []

    def __enter__(self):
        self.path.mkdir()
        try:
            for name, value in self.files.items():
                (self.path / name).write_text(value)
        except BaseException:
            self.path.rmdir()
            raise
        return self

    def __exit__(self, *exc_info: object) -> None:
        self.remove()

    def remove(self, timeout_s: float = 10.0) -> None:
        """Move every process still in the group to the parent, then ``rmdir`` it (retrying while the
        kernel finishes the moves); a group that will not go is left and named in ``OSError``."""
        parent = self.path.parent / "cgroup.procs"
        deadline = time.monotonic() + timeout_s
        while self.path.exists():
            for pid in self.pids():
                with contextlib.suppress(OSError):  # it may have exited meanwhile
                    parent.write_text(str(pid))
            try:
                self.path.rmdir()
            except OSError as error:
                if time.monotonic() > deadline:
                    raise OSError(f"cannot remove cgroup {self.path}: {error.strerror}") from error
                time.sleep(0.05)


class QuotaGroup(ChildGroup):
    """``with QuotaGroup(cpu_root, 1.0, "name") as group:`` a child cgroup of the hierarchy's root with
    that CPU quota (``quota_text``)."""

    def __init__(self, cpu_root: CgroupRoot, cpus: float, name: str) -> None:
        super().__init__(cpu_root.path, quota_text(cpu_root.version, cpus), f"quota-{name}")
        self.cpu_root, self.cpus = cpu_root, cpus


def memory_limit_text(version: str, limit_bytes: int) -> dict[str, str]:
    """Files and contents that limit a group's memory to ``limit_bytes``: v1
    ``{"memory.limit_in_bytes": "2147483648"}``, v2 ``{"memory.max": "2147483648"}``. Swap is left
    alone (these machines have none, as AKS nodes). Raises ``ValueError`` unless ``limit_bytes`` > 0."""
    if limit_bytes <= 0:
        raise ValueError(f"a memory limit must be > 0 bytes, got {limit_bytes}")
    return {"memory.limit_in_bytes" if version == "v1" else "memory.max": str(limit_bytes)}


class MemoryGroup(ChildGroup):
    """``with MemoryGroup(memory_root, 2 * 2**30, "name") as group:`` a child cgroup of ``parent``
    (default: the hierarchy's root) limited to that many bytes; ``oom_kills()`` and ``peak_bytes()``
    read what the kernel recorded in it."""

    def __init__(self, memory_root: CgroupRoot, limit_bytes: int, name: str,
                 parent: Path | None = None) -> None:
        super().__init__(parent or memory_root.path, memory_limit_text(memory_root.version, limit_bytes),
                         f"memory-{name}")
        self.memory_root, self.limit_bytes = memory_root, limit_bytes

    def oom_kills(self) -> int:
        """Processes the OOM killer killed in the group: ``oom_kill`` of v1 ``memory.oom_control``
        (kernel >= 4.13) or v2 ``memory.events``; 0 when the group or the line is gone."""
        name = "memory.oom_control" if self.memory_root.version == "v1" else "memory.events"
        with contextlib.suppress(OSError):
            for line in (self.path / name).read_text().splitlines():
                key, _, value = line.partition(" ")
                if key == "oom_kill":
                    return int(value)
        return 0

    def peak_bytes(self) -> int | None:
        """The group's peak memory usage (bytes): v1 ``memory.max_usage_in_bytes``, v2 ``memory.peak``
        (kernel >= 5.19); None when unreadable."""
        name = "memory.max_usage_in_bytes" if self.memory_root.version == "v1" else "memory.peak"
        with contextlib.suppress(OSError, ValueError):
            return int((self.path / name).read_text())
        return None


def own_group(cgroup_root: CgroupRoot, controller: str) -> Path:
    """This process's own cgroup in ``cgroup_root``'s hierarchy (from ``/proc/self/cgroup``, as
    ``service.cpus`` finds it), so a child group stays inside whatever limits and accounting the
    caller runs under; the hierarchy's root when it cannot be told."""
    from service.cpus import controller_cgroup, parse_mountinfo

    with contextlib.suppress(OSError):
        found = controller_cgroup(Path("/proc/self/cgroup").read_text(),
                                  parse_mountinfo(Path("/proc/self/mountinfo").read_text()), controller)
        if found is not None and found[0] == cgroup_root.version:
            path = cgroup_root.path / found[2]
            if path.is_dir() and _writable(path) is None:
                return path
    return cgroup_root.path
