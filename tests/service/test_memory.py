"""service.memory: the memory limit read from fake cgroup trees (v1, v2, nested, unlimited, malformed),
the budget arithmetic of docs/memory.md, its start-up line, and the docs quoting the code's constants.

File formats: cgroup v2 ``memory.max`` (kernel Documentation/admin-guide/cgroup-v2.rst), v1
``memory.limit_in_bytes`` (Documentation/admin-guide/cgroup-v1/memory.rst: no limit reads as
``PAGE_COUNTER_MAX`` pages, 9223372036854771712 on 4 KiB pages).
"""

from __future__ import annotations

import logging
from pathlib import Path

import pytest

from service import memory
from service.settings import Settings
from tests.service.test_cpus import V1_MOUNTINFO, V2_MOUNTINFO

ROOT = Path(__file__).resolve().parents[2]
V1_NO_LIMIT = "9223372036854771712"


def fake_v1(tmp: Path, path: str, limits: dict[str, str]) -> Path:
    """A hybrid host's v1 memory hierarchy at /sys/fs/cgroup/memory, ``limit_in_bytes`` per level."""
    (tmp / "proc/self").mkdir(parents=True)
    (tmp / "proc/self/cgroup").write_text(f"4:memory:{path}\n3:cpu,cpuacct:/\n0::/\n")
    (tmp / "proc/self/mountinfo").write_text(V1_MOUNTINFO.format(root="/"))
    for rel, text in limits.items():
        (tmp / "sys/fs/cgroup/memory" / rel).mkdir(parents=True, exist_ok=True)
        (tmp / "sys/fs/cgroup/memory" / rel / memory.V1_LIMIT).write_text(text + "\n")
    return tmp


def fake_v2(tmp: Path, path: str, limits: dict[str, str], mount_root: str = "/") -> Path:
    (tmp / "proc/self").mkdir(parents=True)
    (tmp / "proc/self/cgroup").write_text(f"0::{path}\n")
    (tmp / "proc/self/mountinfo").write_text(V2_MOUNTINFO.format(root=mount_root))
    for rel, text in limits.items():
        (tmp / "sys/fs/cgroup" / rel).mkdir(parents=True, exist_ok=True)
        (tmp / "sys/fs/cgroup" / rel / memory.V2_MAX).write_text(text + "\n")
    return tmp


def test_parse_files():
    assert memory.parse_memory_max("2147483648\n") == 2 * 2**30
    assert memory.parse_memory_max("max\n") is None
    assert memory.parse_limit_in_bytes("2147483648") == 2 * 2**30
    assert memory.parse_limit_in_bytes(V1_NO_LIMIT) is None
    for bad in ("", "lots", "-1", "1.5G"):
        with pytest.raises(ValueError, match="memory"):
            memory.parse_memory_max(bad)
    with pytest.raises(ValueError, match=r"memory\.limit_in_bytes"):
        memory.parse_limit_in_bytes("x")


def test_v1_tightest_level_wins(tmp_path):
    # Kubernetes limits the pod's cgroup and the container's: the tightest level is what the kernel enforces.
    levels = {"": V1_NO_LIMIT, "kubepods": V1_NO_LIMIT, "kubepods/pod1": "1073741824",
              "kubepods/pod1/c1": "2147483648"}
    root = fake_v1(tmp_path, "/kubepods/pod1/c1", levels)
    limit = memory.read_limit(root)
    assert limit.bytes == 2**30
    assert limit.source == "cgroup v1 /sys/fs/cgroup/memory/kubepods/pod1/memory.limit_in_bytes"


def test_v2_leaf_limit_and_unlimited(tmp_path):
    levels = {"kubepods.slice": "max", "kubepods.slice/pod/c": "1610612736"}
    root = fake_v2(tmp_path / "a", "/kubepods.slice/pod/c", levels)
    assert memory.read_limit(root) == memory.MemoryLimit(
        1536 * 2**20, "cgroup v2 /sys/fs/cgroup/kubepods.slice/pod/c/memory.max")
    # a container's namespaced view: its own cgroup is the mount's root; the root cgroup has no memory.max
    unlimited = fake_v2(tmp_path / "b", "/", {"": "max"}, mount_root="/kubepods.slice/pod/c")
    assert memory.read_limit(unlimited) == memory.MemoryLimit(None, "cgroup v2: no limit")


def test_unreadable_levels_are_listed_and_skipped(tmp_path):
    root = fake_v2(tmp_path, "/a/b", {"a": "1073741824", "a/b": "lots"})
    limit = memory.read_limit(root)
    assert limit.bytes == 2**30
    assert len(limit.problems) == 1 and "not an integer: 'lots'" in limit.problems[0]
    assert memory.read_limit(tmp_path / "nothing").source.startswith("no cgroup information")


def test_this_process_limit_is_read_without_errors():
    limit = memory.read_limit()
    assert limit.problems == ()
    assert limit.bytes is None or limit.bytes > 0


def _settings(**overrides) -> Settings:
    values = {"max_batch_size": 8, "max_queue": 256, "decode_threads": 1, "max_image_pixels": 50_000_000,
              "max_connections": 512, "max_body_bytes": 20 * 2**20} | overrides
    return Settings(**values)


def test_plan_terms_follow_the_documented_formula():
    limit = memory.MemoryLimit(2 * 2**30, "cgroup v1 test")
    p = memory.plan(_settings(), crop_size=224, max_batch_size=8, footprint=600 * 2**20, limit=limit)
    pixels = 3 * 224 * 224
    assert p.batches == 2 * 8 * pixels * 4
    assert p.queue == 256 * pixels
    assert p.decode == 1 * 50_000_000 * 3 * memory.DECODE_COPIES
    assert p.connections == 512 * memory.CONNECTION_BYTES
    assert p.headroom == int(0.10 * 2 * 2**30)
    assert p.fixed == 600 * 2**20 + p.batches + p.queue + p.decode + p.connections + p.headroom
    assert p.bodies == (2 * 2**30 - p.fixed) // memory.BODY_COPIES
    assert p.sufficient and p.bodies >= memory.MIN_BODIES * 20 * 2**20


def test_a_limit_too_small_keeps_one_maximal_body_and_warns():
    limit = memory.MemoryLimit(512 * 2**20, "cgroup v2 test")
    p = memory.plan(_settings(), crop_size=224, max_batch_size=8, footprint=400 * 2**20, limit=limit)
    assert p.bodies == 20 * 2**20 and not p.sufficient
    assert "WARNING" in memory.plan_line(p) and "fewer than 4 maximal bodies" in memory.plan_line(p)


def test_limit_sources_override_cgroup_then_physical_memory():
    override = memory.plan(_settings(memory_limit_bytes=3 * 2**30), 224, 8, 0,
                           limit=memory.MemoryLimit(2**30, "cgroup"))
    assert (override.limit, override.source) == (3 * 2**30, "MEMORY_LIMIT_BYTES")
    none = memory.plan(_settings(), 224, 8, 0, limit=memory.MemoryLimit(None, "cgroup v1: no limit"))
    assert none.limit == memory.physical_memory() and none.source == "physical memory (cgroup v1: no limit)"


def test_plan_line():
    p = memory.MemoryPlan(limit=2 * 2**30, source="cgroup v1 /x/memory.limit_in_bytes",
                          footprint=600 * 2**20, batches=10 * 2**20, queue=37 * 2**20,
                          decode=286 * 2**20, connections=160 * 2**20, headroom=205 * 2**20,
                          max_body_bytes=20 * 2**20)
    assert memory.plan_line(p) == (
        "memory budget: request bodies 375 MiB (18 x MAX_BODY_BYTES) of a 2048 MiB limit from cgroup v1 "
        "/x/memory.limit_in_bytes; model footprint 600 MiB (peak RSS after warm-up), batches 10 MiB, "
        "queue 37 MiB, decode 286 MiB, connections 160 MiB, headroom 205 MiB; each body byte counted 2x")


def test_body_budget_reserves_only_what_fits():
    budget = memory.BodyBudget(100)
    assert budget.reserve(60) and not budget.reserve(41) and budget.reserved == 60
    assert budget.reserve(40) and budget.reserved == 100
    budget.release(100)
    assert budget.reserved == 0
    unsized = memory.BodyBudget()
    assert unsized.reserve(10**12)


def test_peak_rss_is_this_process():
    assert 10 * 2**20 < memory.peak_rss() < memory.physical_memory()


def test_startup_sizes_the_apps_budget(client):
    budget = client.app.state.body_budget
    assert budget.capacity is not None and budget.capacity >= client.app.state.settings.max_body_bytes
    assert budget.reserved == 0


def test_docs_state_the_code_constants():
    # docs/memory.md quotes the formula's constants; they must be the code's.
    text = (ROOT / "docs/memory.md").read_text()
    for phrase in (f"BODY_COPIES = {memory.BODY_COPIES}", f"DECODE_COPIES = {memory.DECODE_COPIES}",
                   f"CONNECTION_BYTES = {memory.CONNECTION_BYTES // 1024} KiB",
                   f"HEADROOM_FRACTION = {memory.HEADROOM_FRACTION}", f"MIN_BODIES = {memory.MIN_BODIES}"):
        assert phrase in text, phrase
    formula = memory.__doc__.split("::")[1].split("``BodyBudget``")[0]
    lines = [line.strip() for line in formula.splitlines() if line.strip()]
    assert len(lines) == 8 and all(line in text for line in lines), [x for x in lines if x not in text]


def test_startup_line_is_logged(app_settings, caplog):
    from fastapi.testclient import TestClient

    from service.app import create_app

    with caplog.at_level(logging.INFO, logger="service"), TestClient(create_app(app_settings)):
        pass
    lines = [r.getMessage() for r in caplog.records if r.getMessage().startswith("memory budget:")]
    assert len(lines) == 1 and "model footprint" in lines[0]
