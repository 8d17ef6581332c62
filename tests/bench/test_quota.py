"""bench.quota / bench.cgroup / bench.quota_report: the CPU-quota mode's arithmetic, its cgroup handling
on fake and (as root, where writable) real cgroup trees, its skip status, and a quick run end to end.

The real-kernel tests model the kernel's rules (Documentation/scheduler/sched-bwc.rst: a v1 group's
``cpu.cfs_quota_us`` / ``cpu.cfs_period_us``; writing a pid to ``cgroup.procs`` moves the process; a
group with processes in it cannot be removed) and skip, naming the reason, where cgroups are not writable.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bench import cgroup, quota, quota_report
from bench.quota_report import parse_variant, summarize

REPO_ROOT = Path(__file__).resolve().parents[2]


def row(variant: str, number: int, tput: float, p99: float, errors: int = 0, cpu: float | None = None):
    return {"variant": variant, "round": number, "c1_p50_ms": p99 / 2, "c1_p99_ms": p99,
            "c16_img_per_s": tput, "c16_p99_ms": 10 * p99, "c16_cpu_ms_per_image": cpu,
            "c16_throttled": 0.5 if cpu else None, "errors": errors}


def test_parse_variant():
    assert parse_variant("default") is None
    assert parse_variant("1/2") == (1, 2) and parse_variant("12/4") == (12, 4)
    for bad in ("1", "0/1", "1/0", "a/b", "1/2/3", "", "Default"):
        with pytest.raises(ValueError, match="TORCH_THREADS/DECODE_THREADS"):
            parse_variant(bad)


def test_summary_medians_spread_best_and_ratios():
    rows = [
        row("default", 1, 6.0, 210, cpu=150), row("1/1", 1, 6.2, 200, cpu=140),
        row("2/2", 1, 5.0, 290, cpu=190),
        row("default", 2, 6.3, 220, cpu=148), row("1/1", 2, 6.0, 205, cpu=150),
        row("2/2", 2, 5.2, 300, cpu=200),
        row("default", 3, 5.4, 260, cpu=160), row("1/1", 3, 6.6, 230),
        row("2/2", 3, 4.6, 280, errors=2, cpu=120),
    ]  # fmt: skip
    summary = summarize(rows, ["default", "1/1", "2/2"])
    default = summary["variants"]["default"]
    assert default["c16_img_per_s"] == {"median": 6.0, "min": 5.4, "max": 6.3, "n": 3}
    assert default["c1_p99_ms"]["median"] == 220
    assert summary["best_throughput"] == "1/1" and summary["best_p99"] == "1/1"
    # Paired: per round, default / the best sizing by median (1/1), measured seconds apart; the bar
    # reads their median. The unpaired ratio of the medians rides along.
    assert summary["per_round_throughput"] == pytest.approx([6.0 / 6.2, 6.3 / 6.0, 5.4 / 6.6])
    assert summary["default_vs_best_throughput"] == pytest.approx(6.0 / 6.2)
    assert summary["per_round_p99"] == pytest.approx([210 / 200, 220 / 205, 260 / 230])
    assert summary["default_vs_best_p99"] == pytest.approx(220 / 205)
    assert summary["ratio_of_medians"] == pytest.approx({"throughput": 6.0 / 6.2, "p99": 220 / 205})
    # CPU per image: medians of the rounds that have it (1/1: 140, 150 -> 145; 2/2: 190, 200, 120 -> 190).
    cpu_1_1 = summary["variants"]["1/1"]["c16_cpu_ms_per_image"]
    assert cpu_1_1 == {"median": 145, "min": 140, "max": 150, "n": 2}
    assert summary["best_cpu_per_image"] == "1/1"
    assert summary["default_vs_best_cpu_per_image"] == pytest.approx(150 / 145)
    assert summary["errors"] == 2
    assert summary["pass"] == {"throughput": True, "p99": False, "zero_errors": False}


def test_paired_median_differs_from_the_ratio_of_medians():
    # A slow round hits both sizings alike: paired, default is even with 1/1 in every round.
    rows = [row("default", 1, 10.0, 100), row("1/1", 1, 10.0, 100), row("default", 2, 5.0, 200),
            row("1/1", 2, 5.0, 200), row("default", 3, 5.0, 200), row("1/1", 3, 10.0, 100)]  # fmt: skip
    summary = summarize(rows, ["default", "1/1"])
    assert summary["per_round_throughput"] == [1.0, 1.0, 0.5]
    assert summary["default_vs_best_throughput"] == 1.0
    assert summary["ratio_of_medians"]["throughput"] == 0.5  # medians 5.0 vs 10.0


def test_summary_bar_edges_and_missing_sides():
    at_bar = summarize([row("default", 1, 95.0, 105), row("1/1", 1, 100.0, 100)], ["default", "1/1"])
    assert at_bar["pass"] == {"throughput": True, "p99": True, "zero_errors": True}
    below = summarize([row("default", 1, 94.9, 105.1), row("1/1", 1, 100.0, 100)], ["default", "1/1"])
    assert below["pass"]["throughput"] is False and below["pass"]["p99"] is False
    alone = summarize([row("default", 1, 5.0, 200)], ["default"])
    assert alone["default_vs_best_throughput"] is None and alone["pass"]["throughput"] is False
    assert alone["per_round_throughput"] == [None] and alone["default_vs_best_p99"] is None


def test_table_and_verdicts_print_medians_ranges_and_the_bar():
    rows = [row("default", 1, 6.0, 210), row("default", 2, 6.4, 230), row("1/1", 1, 6.2, 200),
            row("1/1", 2, 6.1, 220)]  # fmt: skip
    summary = summarize(rows, ["default", "1/1"])
    text = quota_report.table(summary, {"default": "1 / 1 (own choice for 1 CPUs)", "1/1": "1 / 1"})
    assert "| default | 1 / 1 (own choice for 1 CPUs) | 110.0 (105.0–115.0) | 220.0 (210.0–230.0) " in text
    assert "| 6.20 (6.00–6.40) |" in text
    lines = quota_report.verdicts(summary).splitlines()
    # Best by median: 1/1 (6.15 img/s, p99 210 ms); paired: 6.0/6.2, 6.4/6.1 and 210/200, 230/220.
    assert lines[0] == ("c=16 img/s: default / best explicit (1/1) = 1.008 (bar >= 0.95; median of paired "
                        "rounds: 0.968, 1.049; ratio of medians 1.008) ok")
    assert lines[1] == ("c=1 p99: default / best explicit (1/1) = 1.048 (bar <= 1.05; median of paired "
                        "rounds: 1.050, 1.045; ratio of medians 1.048) ok")
    assert lines[2].startswith("c=16 CPU ms per image: default / best explicit (None) = –")
    assert lines[3] == "errors: 0 ok"


def test_quota_files_per_cgroup_version():
    assert cgroup.quota_text("v1", 1.0) == {"cpu.cfs_period_us": "100000", "cpu.cfs_quota_us": "100000"}
    assert cgroup.quota_text("v2", 1.5) == {"cpu.max": "150000 100000"}
    assert cgroup.quota_text("v2", 0.001) == {"cpu.max": "1000 100000"}  # the kernel's 1 ms minimum
    with pytest.raises(ValueError, match="> 0"):
        cgroup.quota_text("v1", 0)


def test_find_cpu_root_on_fake_trees(tmp_path):
    v1 = tmp_path / "v1"
    (v1 / "cpu").mkdir(parents=True)
    (v1 / "cpu/cpu.cfs_quota_us").write_text("-1\n")
    assert cgroup.find_cpu_root(v1) == cgroup.CgroupRoot("v1", v1 / "cpu")
    v2 = tmp_path / "v2"
    v2.mkdir()
    (v2 / "cgroup.controllers").write_text("cpuset cpu io memory pids\n")
    (v2 / "cgroup.subtree_control").write_text("memory\n")
    assert cgroup.find_cpu_root(v2) == cgroup.CgroupRoot("v2", v2)
    assert (v2 / "cgroup.subtree_control").read_text() == "+cpu"  # what enables the controller
    hybrid = tmp_path / "hybrid"
    (hybrid / "unified").mkdir(parents=True)
    (hybrid / "unified/cgroup.controllers").write_text("\n")
    with pytest.raises(cgroup.CgroupUnavailable, match="without the cpu controller"):
        cgroup.find_cpu_root(hybrid)
    with pytest.raises(cgroup.CgroupUnavailable, match="no cgroup v1 cpu controller"):
        cgroup.find_cpu_root(tmp_path / "nothing")


def test_no_writable_cgroup_exits_with_the_skip_status(tmp_path):
    done = subprocess.run([sys.executable, "-m", "bench", "--cpu-quota", "1.0", "--quick",
                           "--cgroup-root", str(tmp_path)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=120)  # fmt: skip
    assert done.returncode == quota.SKIPPED == 4, done.stderr
    assert done.stderr.startswith("skipped: no writable CPU cgroup:")


def test_bad_arguments_are_refused():
    for argv in (["--variants", "default", "one"], ["--cpu-quota", "0"], ["--rounds", "0"],
                 ["--variants", "1/1", "1/1"]):  # fmt: skip
        with pytest.raises(SystemExit) as exit_info:
            quota.parse_args(argv)
        assert exit_info.value.code == 2


def _real_root() -> cgroup.CgroupRoot:
    try:
        return cgroup.find_cpu_root()
    except cgroup.CgroupUnavailable as error:
        pytest.skip(str(error))


def test_quota_group_holds_a_process_and_is_removed_with_it_moved_back():
    root = _real_root()
    with cgroup.QuotaGroup(root, 0.5, "test") as group:
        quota_file = "cpu.max" if root.version == "v2" else "cpu.cfs_quota_us"
        assert (group.path / quota_file).read_text().split()[0] == "50000"
        sleeper = subprocess.Popen([*group.prefix, "sleep", "60"])
        try:
            deadline = time.monotonic() + 30
            while sleeper.pid not in group.pids() and time.monotonic() < deadline:
                time.sleep(0.01)  # the shim moves itself into the group, then execs sleep (same pid)
            assert group.pids() == [sleeper.pid]
            group.remove()  # with the process still running: it goes back to the parent
            assert not group.path.exists()
            assert str(sleeper.pid) in (root.path / "cgroup.procs").read_text().split()
            assert sleeper.poll() is None
        finally:
            sleeper.kill()
            sleeper.wait()


def test_quick_quota_run_end_to_end(tmp_path):
    _real_root()
    out = tmp_path / "quota.json"
    done = subprocess.run([sys.executable, "-m", "bench", "--cpu-quota", "1.0", "--quick", "--out", str(out)],
                          cwd=REPO_ROOT, capture_output=True, text=True, timeout=540)  # fmt: skip
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    doc = json.loads(out.read_text())
    assert [r["variant"] for r in doc["rows"]] == ["default", "2/2"]
    for r in doc["rows"]:
        assert r["errors"] == 0 and r["c16_img_per_s"] > 0 and 0 < r["c1_p50_ms"] <= r["c1_p99_ms"]
    # The service, started inside the 1-CPU group on a host with more CPUs, sized itself for one.
    assert doc["sizing"]["default"] == "1 / 1 (own choice for 1 CPUs)"
    assert not any(Path(path).exists() for path in doc["groups"].values())
    assert "| sizing | torch / decode threads |" in done.stdout
    assert "default / best explicit (2/2)" in done.stdout
