"""How many CPUs this process may use: the cgroup CPU quota (a pod's CPU limit), capped by affinity.

In a pod ``os.sched_getaffinity`` and ``os.cpu_count`` report the node's CPUs; the container's CPU limit
is a CFS bandwidth quota, ``quota / period`` CPUs per period: cgroup v2 ``cpu.max`` (``"max 100000"`` or
``"<quota> <period>"``, Documentation/admin-guide/cgroup-v2.rst "CPU Interface Files"), cgroup v1
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (``-1`` = no quota, Documentation/scheduler/sched-bwc.rst).

The cgroup is found the way Go's runtime finds it for its cgroup-aware ``GOMAXPROCS`` default (Go 1.25,
``internal/runtime/cgroup``): the process's own path from ``/proc/self/cgroup`` (a v1 line whose
controller list holds ``cpu``, else the v2 line ``0::<path>``), joined to the mount point of that
hierarchy from ``/proc/self/mountinfo`` (the path taken relative to the mount's root, which is a
subtree when the container's runtime mounts only its own cgroup). Unlike Go, which reads only the leaf,
every directory from the leaf up to the mount point is read and the tightest quota wins: the kernel
enforces each level's bandwidth limit on everything below it (sched-bwc.rst, "Hierarchical
considerations"), and Kubernetes puts a limit on the pod's cgroup as well as the container's.

Rounding (``effective_cpus``): a fractional quota rounds **down** to the whole CPUs it guarantees, at
least 1 (1.5 -> 1, 2.5 -> 2, 0.5 -> 1). Go's runtime rounds up (and raises anything below 2 to 2, for its
garbage collector), as joblib/loky's ``cpu_count`` does. For PyTorch's intra-op threads, rounding 1.5 up
was measured (``python -m bench --cpu-quota 1.5``) to cost 2.5x the CPU per image and two thirds of the
throughput on a busy host, where OpenMP threads spin at every layer's barrier while a sibling waits
for a CPU, and to gain about 10 % where the host had the CPU to give: the smaller risk is rounding
down (docs/cpu-quota.md, "Findings"). The fraction left over serves the event loop and decoding.

Every function takes the files' contents or a root directory, so tests feed fake cgroup trees.
"""

from __future__ import annotations

import math
import os
import re
from dataclasses import dataclass, field
from pathlib import Path

V1_QUOTA, V1_PERIOD, V2_MAX = "cpu.cfs_quota_us", "cpu.cfs_period_us", "cpu.max"


@dataclass(frozen=True)
class Mount:
    """One ``/proc/self/mountinfo`` line's useful fields (proc(5)): the root of the mounted
    filesystem (``root``), where it is mounted (``mount_point``), ``fstype`` and ``super_options``."""

    root: str
    mount_point: str
    fstype: str
    super_options: tuple[str, ...]


@dataclass(frozen=True)
class CpuQuota:
    """The tightest CFS quota found: ``cpus`` = quota / period (e.g. 1.5), None when no level has one.

    ``source`` names the file it came from (or why there is none); ``problems`` lists files that could
    not be read or parsed (they count as "no quota" at their level).
    """

    cpus: float | None
    source: str
    problems: tuple[str, ...] = field(default_factory=tuple)


@dataclass(frozen=True)
class CpuBudget:
    """What thread pools are sized from: ``cpus`` = ``effective_cpus(quota.cpus, affinity)`` (>= 1)."""

    cpus: int
    affinity: int
    quota: CpuQuota


def parse_cpu_max(text: str) -> float | None:
    """cgroup v2 ``cpu.max`` -> CPUs: ``"150000 100000"`` -> 1.5, ``"max 100000"`` -> None.

    A missing period means the default 100000 µs (cgroup-v2.rst). Raises ``ValueError`` for anything
    else (non-numbers, a quota or period <= 0, more than two fields).
    """
    parts = text.split()
    if not 1 <= len(parts) <= 2:
        raise ValueError(f"cpu.max: expected '<quota|max> [<period>]', got {text.strip()!r}")
    period = _positive_int(parts[1], "cpu.max period") if len(parts) == 2 else 100_000
    if parts[0] == "max":
        return None
    return _positive_int(parts[0], "cpu.max quota") / period


def parse_cfs(quota_text: str, period_text: str) -> float | None:
    """cgroup v1 ``cpu.cfs_quota_us`` and ``cpu.cfs_period_us`` -> CPUs: ``100000``, ``100000`` -> 1.0;
    a quota of ``-1`` (any negative value: sched-bwc.rst) -> None. Raises ``ValueError`` for non-numbers,
    a quota of 0 or a period <= 0."""
    try:
        quota = int(quota_text.strip())
    except ValueError:
        raise ValueError(f"{V1_QUOTA}: not an integer: {quota_text.strip()!r}") from None
    if quota < 0:
        return None
    if quota == 0:
        raise ValueError(f"{V1_QUOTA}: 0")
    return quota / _positive_int(period_text.strip(), V1_PERIOD)


def _positive_int(text: str, what: str) -> int:
    try:
        value = int(text)
    except ValueError:
        raise ValueError(f"{what}: not an integer: {text!r}") from None
    if value <= 0:
        raise ValueError(f"{what}: must be > 0, got {value}")
    return value


def parse_mountinfo(text: str) -> list[Mount]:
    """``/proc/self/mountinfo`` -> cgroup and cgroup2 mounts (proc(5): fields 4 and 5 are the root and
    the mount point; after the ``-`` separator come fstype, source and super options). Malformed lines
    and other filesystems are skipped. Octal escapes (``\\040`` for a space) are decoded."""
    mounts = []
    for line in text.splitlines():
        fields = line.split()
        if "-" not in fields[6:]:
            continue
        dash = fields.index("-", 6)
        tail = fields[dash + 1:]
        if len(tail) < 3 or tail[0] not in ("cgroup", "cgroup2"):
            continue
        mounts.append(Mount(_unescape(fields[3]), _unescape(fields[4]), tail[0], tuple(tail[2].split(","))))
    return mounts


def _unescape(path: str) -> str:
    """Undo mountinfo's octal escapes of space, tab, newline and backslash (``\\040`` -> ``" "``)."""
    return re.sub(r"\\([0-7]{3})", lambda match: chr(int(match.group(1), 8)), path)


def cpu_cgroup(proc_cgroup: str, mounts: list[Mount]) -> tuple[str, str, str] | None:
    """The process's CPU cgroup: ``(version, mount point, path relative to that mount)``, or None
    (``controller_cgroup`` for the ``cpu`` controller)."""
    return controller_cgroup(proc_cgroup, mounts, "cpu")


def controller_cgroup(proc_cgroup: str, mounts: list[Mount], controller: str) -> tuple[str, str, str] | None:
    """The process's cgroup for ``controller`` (``cpu``, ``memory``): ``(version, mount point, path
    relative to that mount)``, or None.

    ``proc_cgroup`` is ``/proc/self/cgroup`` (``hierarchy-id:controllers:path`` lines, cgroups(7)). A v1
    hierarchy with the controller wins (a controller sits in one hierarchy only, so on a hybrid host
    the v2 line then does not have it); else the v2 line ``0::<path>``. A path outside the mount's
    root (a cgroup namespace's ``/..`` view) resolves to the mount point itself.
    """
    v1_path, v2_path = None, None
    for line in proc_cgroup.splitlines():
        parts = line.split(":", 2)
        if len(parts) != 3:
            continue
        hierarchy, controllers, path = parts
        if controller in controllers.split(","):
            v1_path = path
        elif hierarchy == "0" and controllers == "":
            v2_path = path
    if v1_path is not None:
        mount = next((m for m in mounts if m.fstype == "cgroup" and controller in m.super_options), None)
        return ("v1", mount.mount_point, _relative(v1_path, mount.root)) if mount else None
    if v2_path is not None:
        mount = next((m for m in mounts if m.fstype == "cgroup2"), None)
        return ("v2", mount.mount_point, _relative(v2_path, mount.root)) if mount else None
    return None


def cgroup_levels(root: Path, mount_point: str, relative: str) -> list[Path]:
    """The directories from the cgroup ``relative`` (under ``mount_point``, below ``root``) up to the
    mount point, leaf first: every level whose limit the kernel enforces on the process."""
    base = root / mount_point.lstrip("/")
    levels = [base / relative] if relative else [base]
    while levels[-1] != base:
        levels.append(levels[-1].parent)
    return levels


def _relative(path: str, mount_root: str) -> str:
    """``/kubepods/pod1/c1`` under a mount whose root is ``/kubepods/pod1`` -> ``c1``."""
    path, mount_root = path.rstrip("/") or "/", mount_root.rstrip("/") or "/"
    if mount_root == "/":
        return path.lstrip("/")
    if path == mount_root:
        return ""
    if path.startswith(mount_root + "/"):
        return path[len(mount_root) + 1:]
    return ""  # not under the mount's root: the mount point is the closest view of our cgroup


def read_quota(root: Path = Path("/")) -> CpuQuota:
    """The tightest CFS quota over the process's CPU cgroup and its ancestors, read under ``root``
    (``/`` in production; a fake tree in tests). Never raises: unreadable or malformed files are listed
    in ``problems`` and count as no quota at their level."""
    try:
        proc_cgroup = (root / "proc/self/cgroup").read_text()
        mounts = parse_mountinfo((root / "proc/self/mountinfo").read_text())
    except OSError as error:
        return CpuQuota(None, f"no cgroup information ({error.strerror or error})")
    found = cpu_cgroup(proc_cgroup, mounts)
    if found is None:
        return CpuQuota(None, "no CPU cgroup mounted")
    version, mount_point, relative = found
    best, source, problems = None, f"cgroup {version}: no quota", []
    for directory in cgroup_levels(root, mount_point, relative):
        try:
            if version == "v2":
                cpus = parse_cpu_max((directory / V2_MAX).read_text())
                name = V2_MAX
            else:
                cpus = parse_cfs((directory / V1_QUOTA).read_text(), (directory / V1_PERIOD).read_text())
                name = V1_QUOTA
        except FileNotFoundError:
            continue  # e.g. the v2 root cgroup, or a level without the cpu controller enabled
        except (OSError, ValueError) as error:
            problems.append(f"{directory}: {error}")
            continue
        if cpus is not None and (best is None or cpus < best):
            shown = "/" + str(directory.relative_to(root) / name)
            best, source = cpus, f"cgroup {version} {shown}"
    return CpuQuota(best, source, tuple(problems))


def effective_cpus(quota_cpus: float | None, affinity: int) -> int:
    """CPUs to size thread pools for: ``floor(quota_cpus)`` (at least 1), never more than ``affinity``;
    ``affinity`` when there is no quota. ``effective_cpus(1.5, 4) == 1``, ``(2.5, 4) == 2``,
    ``(0.5, 4) == 1``, ``(8, 2) == 2``, ``(None, 4) == 4``. Why down, not up: the module docstring."""
    affinity = max(1, affinity)
    if quota_cpus is None:
        return affinity
    return max(1, min(affinity, math.floor(quota_cpus)))  # k * period / period is exactly k


def affinity_cpus() -> int:
    """CPUs in this process's scheduler affinity mask (respects cpusets), ``os.cpu_count()`` off Linux."""
    try:
        return max(1, len(os.sched_getaffinity(0)))
    except AttributeError:  # not Linux
        return max(1, os.cpu_count() or 1)


def cpu_budget(root: Path = Path("/"), affinity: int | None = None) -> CpuBudget:
    """``CpuBudget`` of this process: the quota under ``root`` and the affinity (``affinity_cpus()``
    unless given) combined by ``effective_cpus``."""
    quota = read_quota(root)
    affinity = affinity_cpus() if affinity is None else affinity
    return CpuBudget(effective_cpus(quota.cpus, affinity), affinity, quota)


def sizing_line(settings, budget: CpuBudget | None = None) -> str:
    """The start-up log line of the thread sizing for ``settings`` (a ``service.settings.Settings``):
    effective CPUs and where they come from, then torch and decode threads, each ``default`` or ``set``
    (``TORCH_THREADS`` / ``DECODE_THREADS`` given explicitly). ``budget`` defaults to ``cpu_budget()``."""
    budget = budget or cpu_budget()
    quota = budget.quota
    basis = (f"quota {quota.cpus:g} CPUs from {quota.source}" if quota.cpus is not None
             else f"no CPU quota ({quota.source})")
    problems = f"; unreadable: {'; '.join(quota.problems)}" if quota.problems else ""
    explicit = settings.model_fields_set

    def threads(name: str) -> str:
        how = f"{name.upper()} set" if name in explicit else "default"
        return f"{name.replace('_', ' ')} {getattr(settings, name)} ({how})"

    return (f"CPU sizing: {budget.cpus} effective CPUs ({basis}; affinity {budget.affinity}{problems}); "
            f"{threads('torch_threads')}, {threads('decode_threads')}")
