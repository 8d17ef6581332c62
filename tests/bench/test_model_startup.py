"""bench.model_startup's arithmetic: the startup probe it proposes stays within Container Apps' limits, and
the CPU time it reads from /proc is the process's own."""

from __future__ import annotations

import os
import time
from pathlib import Path

import pytest

from bench.model_startup import (
    _FETCHED,
    _LOADED,
    MAX_FAILURES,
    PROBE_PERIOD_S,
    Start,
    cpu_seconds,
    startup_budget,
)

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.mark.parametrize("slowest_s", [0.5, 7.0, 30.0, 49.9, 50.1, 92.5, 600.0])
def test_the_startup_probe_allows_twice_the_slowest_start_within_the_limits(slowest_s):
    period, failures = startup_budget(slowest_s)
    # ARM Microsoft.App ContainerAppProbe: failureThreshold 1..10, periodSeconds 1..240.
    assert 1 <= failures <= MAX_FAILURES and PROBE_PERIOD_S <= period <= 240
    assert period * failures >= 2 * slowest_s
    assert period * (failures - 1) < 2 * slowest_s or failures == 1  # no probe more than needed


def test_cpu_seconds_counts_this_process_work():
    before = cpu_seconds(os.getpid())
    deadline = time.process_time() + 0.3
    while time.process_time() < deadline:  # burn 0.3 s of CPU
        pass
    assert cpu_seconds(os.getpid()) - before >= 0.25


def test_the_log_patterns_match_the_service_lines():
    """The bench reads the fetch and load times from the lines the service logs: format them as the
    service does (its format strings, read from its source) and parse them back."""
    fetched = "model %s: %s (%d bytes, sha256 %s, %.2f s)"
    ready = "model %s v%s ready: %s, %s %s, %d classes, input [N, 3, %d, %d], %.1f s"
    assert fetched in (REPO_ROOT / "service" / "model_repository.py").read_text()
    assert ready in (REPO_ROOT / "service" / "model.py").read_text()
    log = "\n".join([fetched % ("fetched", "http://127.0.0.1:1/a/models/r/1/model.pt", 102, "ab" * 32, 0.76),
                      ready % ("resnet50", "1", "torchscript", "openvino", "int8", 1000, 224, 224, 5.3)])
    start = Start(9.0, 8.0, 0.1, log)
    assert start.logged(_FETCHED, 2) == 0.76 and start.logged(_LOADED, 1) == 5.3


COLD_START = (REPO_ROOT / "docs" / "cold-start.md").read_text()


def test_the_documented_probes_follow_the_limits_and_the_pods():
    """docs/cold-start.md's probe table: the startup row is PROBE_PERIOD_S x MAX_FAILURES and covers twice
    the slowest start it quotes; liveness and readiness are the pods' (stacks/pod_spec.py)."""
    from stacks import pod_spec

    budget = PROBE_PERIOD_S * MAX_FAILURES
    assert (f"| startup | `/healthz` | 1 | {PROBE_PERIOD_S} | 5 | {MAX_FAILURES} | {budget} s |"
            in COLD_START)
    assert f"`failureThreshold` 1 to {MAX_FAILURES}" in COLD_START
    slowest = 40.9
    assert f"({slowest} s)" in COLD_START and budget >= 2 * slowest
    assert startup_budget(slowest)[0] == PROBE_PERIOD_S
    assert (f"| liveness | `/healthz` | - | {pod_spec.LIVENESS_PERIOD_S} | {pod_spec.LIVENESS_TIMEOUT_S} | "
            f"{pod_spec.LIVENESS_FAILURES} |" in COLD_START)
    assert (f"| readiness | `/readyz` | - | {pod_spec.READINESS_PERIOD_S} | {pod_spec.READINESS_TIMEOUT_S} | "
            f"{pod_spec.READINESS_FAILURES} |" in COLD_START)
    pods = pod_spec.STARTUP_PERIOD_S * pod_spec.STARTUP_FAILURES
    assert f"({pod_spec.STARTUP_PERIOD_S} s x {pod_spec.STARTUP_FAILURES} = {pods} s)" in COLD_START
