"""A CPU-quota cgroup for a benchmarked server: what a pod's CPU limit is, reproduced on this machine.

``find_cpu_root()`` finds a writable CPU hierarchy: cgroup v1's ``cpu`` controller
(``/sys/fs/cgroup/cpu``, quota in ``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``, kernel
Documentation/scheduler/sched-bwc.rst) or a cgroup v2 hierarchy whose root delegates the ``cpu``
controller (``cpu.max``, Documentation/admin-guide/cgroup-v2.rst). ``QuotaGroup`` makes one child
group with a quota, gives the command prefix that starts a process inside it (so the process reads its
quota from its very first instruction, as in a container), and on exit moves any process left in it
back to the parent and removes it. Needs root.
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
class CpuRoot:
    """A writable hierarchy with the cpu controller: ``version`` ``v1`` or ``v2`` at ``path``."""

    version: str
    path: Path


def find_cpu_root(root: Path = CGROUP_ROOT) -> CpuRoot:
    """The first writable CPU hierarchy under ``root``: v1 ``<root>/cpu``, then v2 at ``<root>``
    (pure v2 host) or ``<root>/unified`` (hybrid host) if its root offers and delegates ``cpu``.

    Raises ``CgroupUnavailable`` naming each place tried, e.g. when not root or in a container
    without a writable cgroup filesystem.
    """
    reasons = []
    v1 = root / "cpu"
    if (v1 / "cpu.cfs_quota_us").exists():
        why = _writable(v1)
        if why is None:
            return CpuRoot("v1", v1)
        reasons.append(f"{v1}: {why}")
    else:
        reasons.append(f"{v1}: no cgroup v1 cpu controller")
    for v2 in (root, root / "unified"):
        controllers = v2 / "cgroup.controllers"
        if not controllers.exists():
            continue
        if "cpu" not in controllers.read_text().split():
            reasons.append(f"{v2}: cgroup v2 without the cpu controller (it is bound to v1)")
            continue
        why = _enable_cpu(v2) or _writable(v2)
        if why is None:
            return CpuRoot("v2", v2)
        reasons.append(f"{v2}: {why}")
    raise CgroupUnavailable("no writable CPU cgroup: " + "; ".join(reasons))


def _enable_cpu(v2: Path) -> str | None:
    """Make ``cpu`` available to ``v2``'s children (``+cpu`` into ``cgroup.subtree_control``)."""
    control = v2 / "cgroup.subtree_control"
    try:
        if "cpu" not in control.read_text().split():
            control.write_text("+cpu")
    except OSError as error:
        return f"cannot enable cpu in {control}: {error.strerror or error}"
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


class QuotaGroup:
    """``with QuotaGroup(cpu_root, 1.0, "name") as group:`` a child cgroup with that CPU quota.

    ``group.prefix`` is the command prefix that moves the started process into the group before it
    ``exec``s the real command (``sh -c 'echo $$ > .../cgroup.procs && exec "$@"'``). Leaving the
    block moves whatever still runs in the group back to the parent and removes the group.
    """

    def __init__(self, cpu_root: CpuRoot, cpus: float, name: str) -> None:
        self.cpu_root, self.cpus = cpu_root, cpus
        self.path = cpu_root.path / f"bench-quota-{name}-{os.getpid()}"

    @property
    def prefix(self) -> list[str]:
        procs = self.path / "cgroup.procs"
        return ["sh", "-c", f'echo $$ > "{procs}" && exec "$@"', "quota-shim"]

    def pids(self) -> list[int]:
        """Processes in the group now."""
        with contextlib.suppress(OSError):
            return [int(line) for line in (self.path / "cgroup.procs").read_text().split()]
        return []

    def __enter__(self) -> QuotaGroup:
        self.path.mkdir()
        try:
            for name, value in quota_text(self.cpu_root.version, self.cpus).items():
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
