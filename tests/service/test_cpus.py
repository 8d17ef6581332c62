"""service.cpus: the CPU quota read from fake cgroup trees (v1, v2, nested, malformed), the rounding,
the thread defaults that follow from it, the start-up log line, and (as root, where this machine's
cgroup v1 cpu controller is writable) a real 1-CPU quota seen by a real process.

File formats: cgroup v2 ``cpu.max`` (kernel Documentation/admin-guide/cgroup-v2.rst), v1
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us`` (Documentation/scheduler/sched-bwc.rst), ``/proc/self/cgroup``
(cgroups(7)), ``/proc/self/mountinfo`` (proc(5)).
"""

from __future__ import annotations

import logging
import subprocess
import sys
from pathlib import Path

import pytest

from service import cpus
from service.settings import Settings, available_cpus

# A hybrid host as this one: cgroup v1 controllers plus an empty v2 hierarchy at /sys/fs/cgroup/unified.
V1_MOUNTINFO = """\
31 23 0:28 / /sys/fs/cgroup rw,relatime - tmpfs tmpfs rw,mode=755
32 31 0:29 {root} /sys/fs/cgroup/cpu,cpuacct rw,nosuid shared:9 - cgroup cgroup rw,cpu,cpuacct
35 31 0:32 / /sys/fs/cgroup/memory rw,relatime - cgroup cgroup rw,memory
41 31 0:38 / /sys/fs/cgroup/unified rw,relatime - cgroup2 cgroup2 rw
"""
V2_MOUNTINFO = """\
22 1 0:21 / /proc rw,nosuid - proc proc rw
30 22 0:26 {root} /sys/fs/cgroup rw,nosuid,nodev,noexec,relatime shared:4 - cgroup2 cgroup2 rw,nsdelegate
"""


def fake_v1(tmp: Path, path: str, quotas: dict[str, tuple[str, str]], mount_root: str = "/") -> Path:
    """A root with /proc/self/{cgroup,mountinfo} and v1 cpu,cpuacct directories ``{rel: (quota, period)}``."""
    (tmp / "proc/self").mkdir(parents=True)
    (tmp / "proc/self/cgroup").write_text(f"4:memory:/x\n3:cpu,cpuacct:{path}\n0::/\n")
    (tmp / "proc/self/mountinfo").write_text(V1_MOUNTINFO.format(root=mount_root))
    base = tmp / "sys/fs/cgroup/cpu,cpuacct"
    for rel, (quota, period) in quotas.items():
        (base / rel).mkdir(parents=True, exist_ok=True)
        (base / rel / "cpu.cfs_quota_us").write_text(quota + "\n")
        (base / rel / "cpu.cfs_period_us").write_text(period + "\n")
    return tmp


def fake_v2(tmp: Path, path: str, cpu_max: dict[str, str], mount_root: str = "/") -> Path:
    """A pure cgroup v2 root: ``0::<path>`` and ``cpu.max`` files ``{rel: text}`` under /sys/fs/cgroup."""
    (tmp / "proc/self").mkdir(parents=True)
    (tmp / "proc/self/cgroup").write_text(f"0::{path}\n")
    (tmp / "proc/self/mountinfo").write_text(V2_MOUNTINFO.format(root=mount_root))
    for rel, text in cpu_max.items():
        (tmp / "sys/fs/cgroup" / rel).mkdir(parents=True, exist_ok=True)
        (tmp / "sys/fs/cgroup" / rel / "cpu.max").write_text(text + "\n")
    return tmp


@pytest.mark.parametrize(("text", "expected"), [
    ("max 100000", None), ("100000 100000", 1.0), ("150000 100000", 1.5), ("50000 100000", 0.5),
    ("200000 50000", 4.0), ("250000", 2.5), ("max", None),
])  # fmt: skip
def test_parse_cpu_max(text, expected):
    assert cpus.parse_cpu_max(text) == expected


@pytest.mark.parametrize("text", ["", "lots 100000", "100000 0", "-5 100000", "1 2 3", "0 100000"])
def test_parse_cpu_max_refuses_malformed(text):
    with pytest.raises(ValueError, match=r"cpu\.max"):
        cpus.parse_cpu_max(text)


def test_parse_cfs():
    assert cpus.parse_cfs("-1", "100000") is None
    assert cpus.parse_cfs("100000\n", "100000\n") == 1.0
    assert cpus.parse_cfs("150000", "100000") == 1.5
    for quota, period in (("x", "100000"), ("0", "100000"), ("100000", "0"), ("100000", "")):
        with pytest.raises(ValueError):
            cpus.parse_cfs(quota, period)


@pytest.mark.parametrize(("quota", "affinity", "expected"), [
    (None, 4, 4), (1.0, 4, 1), (1.5, 4, 1), (1.99, 4, 1), (0.5, 4, 1), (0.1, 4, 1), (2.0, 4, 2),
    (2.5, 4, 2), (300000 / 100000, 4, 3), (8.0, 2, 2), (1.0, 1, 1), (None, 0, 1),
])  # fmt: skip
def test_effective_cpus_rounds_down_to_whole_cpus_and_caps_at_the_affinity(quota, affinity, expected):
    assert cpus.effective_cpus(quota, affinity) == expected


def test_v1_quota_of_the_process_own_cgroup(tmp_path):
    root = fake_v1(tmp_path, "/kubepods/pod1/ctr", {"": ("-1", "100000"),
                                                    "kubepods/pod1/ctr": ("150000", "100000")})
    quota = cpus.read_quota(root)
    assert quota.cpus == 1.5
    assert quota.source == "cgroup v1 /sys/fs/cgroup/cpu,cpuacct/kubepods/pod1/ctr/cpu.cfs_quota_us"
    assert cpus.cpu_budget(root, affinity=4).cpus == 1


def test_v1_container_view_mount_root_is_the_container_cgroup(tmp_path):
    # Docker/containerd without a cgroup namespace: the mount's root is the container's own cgroup, the
    # path in /proc/self/cgroup is the full host path; the quota file sits at the mount point itself.
    ctr = "/kubepods/pod1/ctr"
    root = fake_v1(tmp_path, ctr, {"": ("100000", "100000")}, mount_root=ctr)
    assert cpus.read_quota(root).cpus == 1.0
    assert cpus.cpu_budget(root, affinity=16).cpus == 1


def test_tightest_ancestor_wins(tmp_path):
    root = fake_v2(tmp_path, "/kubepods.slice/pod1/ctr", {
        "kubepods.slice": "max 100000", "kubepods.slice/pod1": "100000 100000",
        "kubepods.slice/pod1/ctr": "300000 100000",
    })  # fmt: skip
    quota = cpus.read_quota(root)
    assert quota.cpus == 1.0 and quota.source.endswith("/sys/fs/cgroup/kubepods.slice/pod1/cpu.max")
    leaf_tighter = fake_v2(tmp_path / "b", "/a/b", {"a": "400000 100000", "a/b": "50000 100000"})
    assert cpus.read_quota(leaf_tighter).cpus == 0.5


def test_v2_no_quota_and_the_root_without_cpu_max(tmp_path):
    root = fake_v2(tmp_path, "/user.slice/session", {"user.slice": "max 100000"})  # leaf: no cpu.max file
    quota = cpus.read_quota(root)
    assert quota.cpus is None and quota.source == "cgroup v2: no quota" and quota.problems == ()
    assert cpus.cpu_budget(root, affinity=3).cpus == 3


def test_v2_namespace_root_path(tmp_path):
    # With a cgroup namespace the process sees itself at "/" and the mount is its own cgroup.
    root = fake_v2(tmp_path, "/", {"": "200000 100000"})
    assert cpus.read_quota(root).cpus == 2.0
    # A path outside the mount's root (namespace "/.." view) falls back to the mount point.
    other = fake_v2(tmp_path / "o", "/../sibling", {"": "100000 100000"}, mount_root="/mine")
    assert cpus.read_quota(other).cpus == 1.0


def test_malformed_files_are_reported_and_do_not_count(tmp_path):
    root = fake_v2(tmp_path, "/a/b", {"a": "garbage", "a/b": "200000 100000"})
    quota = cpus.read_quota(root)
    assert quota.cpus == 2.0
    assert len(quota.problems) == 1 and "not an integer" in quota.problems[0]
    bad = fake_v1(tmp_path / "v1", "/q", {"q": ("1.5", "100000")})
    assert cpus.read_quota(bad).cpus is None and "cpu.cfs_quota_us" in cpus.read_quota(bad).problems[0]


def test_no_cgroup_information(tmp_path):
    assert cpus.read_quota(tmp_path).cpus is None
    assert "no cgroup information" in cpus.read_quota(tmp_path).source
    (tmp_path / "proc/self").mkdir(parents=True)
    (tmp_path / "proc/self/cgroup").write_text("0::/\n")
    (tmp_path / "proc/self/mountinfo").write_text("22 1 0:21 / /proc rw - proc proc rw\nnot a mount line\n")
    assert cpus.read_quota(tmp_path) == cpus.CpuQuota(None, "no CPU cgroup mounted")
    assert cpus.cpu_budget(tmp_path, affinity=2).cpus == 2


def test_hybrid_host_prefers_the_v1_cpu_hierarchy(tmp_path):
    root = fake_v1(tmp_path, "/q", {"": ("-1", "100000"), "q": ("100000", "100000")})
    (root / "sys/fs/cgroup/unified/q").mkdir(parents=True)
    (root / "sys/fs/cgroup/unified/q/cpu.max").write_text("400000 100000\n")  # not the cpu controller's
    assert cpus.read_quota(root).cpus == 1.0


def test_mountinfo_octal_escapes():
    text = r"32 31 0:29 / /sys/fs/cgroup/my\040cpu rw - cgroup cgroup rw,cpu" + "\n"
    assert cpus.parse_mountinfo(text) == [cpus.Mount("/", "/sys/fs/cgroup/my cpu", "cgroup", ("rw", "cpu"))]


@pytest.fixture
def clean_env(monkeypatch):
    for name in Settings.model_fields:
        monkeypatch.delenv(name.upper(), raising=False)


def _budget(count: int, quota: float | None = None) -> cpus.CpuBudget:
    source = "cgroup v2 /sys/fs/cgroup/cpu.max" if quota else "cgroup v2: no quota"
    return cpus.CpuBudget(count, 8, cpus.CpuQuota(quota, source))


@pytest.mark.parametrize(("count", "torch_threads", "decode_threads"), [(1, 1, 1), (2, 2, 2), (8, 8, 4)])
def test_thread_defaults_follow_the_quota_not_the_node(clean_env, monkeypatch, count, torch_threads,
                                                       decode_threads):
    monkeypatch.setattr(cpus, "cpu_budget", lambda *a, **k: _budget(count, float(count)))
    settings = Settings()
    assert available_cpus() == count
    assert (settings.torch_threads, settings.decode_threads) == (torch_threads, decode_threads)


def test_sizing_line_names_source_counts_and_what_was_set(clean_env, monkeypatch):
    budget = _budget(1, 1.0)
    monkeypatch.setattr(cpus, "cpu_budget", lambda *a, **k: budget)
    line = cpus.sizing_line(Settings(decode_threads=3), budget)
    assert line == ("CPU sizing: 1 effective CPUs (quota 1 CPUs from cgroup v2 /sys/fs/cgroup/cpu.max; "
                    "affinity 8); torch threads 1 (default), decode threads 3 (DECODE_THREADS set)")
    assert "no CPU quota (cgroup v2: no quota" in cpus.sizing_line(Settings(), _budget(8))


def test_the_app_logs_the_sizing_once_at_start_up(caplog):
    from service.app import create_app
    from tests.service.conftest import TestClient
    from tests.service.tiny import TinyClassifier, tiny_settings

    settings = tiny_settings()
    app = create_app(settings, TinyClassifier(settings))
    with caplog.at_level(logging.INFO, logger="service"), TestClient(app):
        pass
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("CPU sizing:")]
    assert len(lines) == 1 and "torch threads 1 (TORCH_THREADS set)" in lines[0], lines


def _writable_cpu_cgroup() -> Path | None:
    base = Path("/sys/fs/cgroup/cpu")
    if not (base / "cpu.cfs_quota_us").exists():
        return None
    probe = base / "test-cpus-probe"
    try:
        probe.mkdir(exist_ok=True)
    except OSError:
        return None
    return probe


def test_a_process_in_a_real_one_cpu_quota_sizes_for_one_cpu():
    group = _writable_cpu_cgroup()
    if group is None:
        pytest.skip("no writable cgroup v1 cpu controller at /sys/fs/cgroup/cpu (needs root on a v1 host)")
    if cpus.affinity_cpus() < 2:
        group.rmdir()
        pytest.skip("one CPU in the affinity mask: a 1-CPU quota would change nothing")
    try:
        (group / "cpu.cfs_period_us").write_text("100000")
        (group / "cpu.cfs_quota_us").write_text("100000")
        code = ("from service.settings import Settings, available_cpus; s = Settings(); "
                "print(available_cpus(), s.torch_threads, s.decode_threads)")
        shim = f'echo $$ > {group}/cgroup.procs && exec "$@"'
        done = subprocess.run(["sh", "-c", shim, "shim", sys.executable, "-c", code], capture_output=True,
                              text=True, timeout=120, env={"PATH": "/usr/bin:/bin"},
                              cwd=Path(__file__).resolve().parents[2])
        assert done.returncode == 0, done.stderr
        assert done.stdout.split() == ["1", "1", "1"]  # the node (this machine) has more CPUs
    finally:
        group.rmdir()
