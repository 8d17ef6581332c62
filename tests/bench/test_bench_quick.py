"""`python -m bench --quick` end to end: real model file, real service, real TorchServe, real load.

Asserts that the benchmark runs and reports sane numbers (not how fast anything is).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import sys
from pathlib import Path

import psutil
import pytest

pytestmark = pytest.mark.slow  # a minute of end-to-end benchmark: `make test` and CI run it

REPO_ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def quick_run(tmp_path_factory: pytest.TempPathFactory) -> tuple[subprocess.CompletedProcess, dict]:
    out = tmp_path_factory.mktemp("bench") / "quick.json"
    done = subprocess.run(
        [sys.executable, "-m", "bench", "--quick", "--out", str(out)],
        cwd=REPO_ROOT, capture_output=True, text=True, timeout=540,
    )  # fmt: skip
    assert out.exists(), (
        f"no JSON written (rc={done.returncode}):\n{done.stdout[-3000:]}\n{done.stderr[-3000:]}"
    )
    return done, json.loads(out.read_text())


def _assert_sane_levels(result: dict, levels: list[int]) -> None:
    assert "levels" in result, result
    assert [lv["concurrency"] for lv in result["levels"]] == levels
    for lv in result["levels"]:
        assert lv["errors"] == 0, lv["error_samples"]
        assert lv["requests"] > 0 and lv["img_per_s"] > 0
        assert 0 < lv["p50_ms"] <= lv["p99_ms"] < 60_000
    assert result["rss_mib"] > 50  # a Python process with torch loaded is far above this


def test_quick_mode_exits_cleanly_and_prints_the_table(quick_run) -> None:
    done, _ = quick_run
    assert done.returncode == 0, done.stdout[-3000:] + done.stderr[-3000:]
    assert "| target | concurrency / batch | img/s | p50 ms | p99 ms | errors | RSS MiB |" in done.stdout
    assert "service / model alone =" in done.stdout and "service / TorchServe =" in done.stdout


def test_model_alone_has_a_ceiling_and_a_single_image_time(quick_run) -> None:
    _, doc = quick_run
    alone = doc["model_alone"]
    assert alone["batches"][0]["batch_size"] == 1
    best = max(alone["batches"], key=lambda b: b["img_per_s"])
    assert alone["ceiling_img_per_s"] == best["img_per_s"] > 0
    assert alone["ceiling_batch_size"] == best["batch_size"]
    assert 0 < alone["single_image_ms"] < 10_000


def test_service_serves_every_level_without_errors(quick_run) -> None:
    _, doc = quick_run
    levels = doc["meta"]["config"]["levels"]
    _assert_sane_levels(doc["service"], levels)
    summary = doc["summary"]
    assert summary["service_errors"] == 0 and summary["service_vs_model_alone"] > 0
    assert summary["p99_c1_ms"] == doc["service"]["levels"][0]["p99_ms"]
    _assert_all_stopped(doc["service"]["pids"], at_least=1)


def test_paired_rounds_time_the_model_alone_next_to_each_server(quick_run) -> None:
    _, doc = quick_run
    rounds = doc["service"]["paired"]["rounds"]
    assert len(rounds) == doc["meta"]["config"]["rounds"] >= 1
    assert doc["service"]["paired"]["batch_size"] == doc["model_alone"]["ceiling_batch_size"]
    for row in rounds:
        assert row["errors"] == 0 and row["model_alone_img_per_s"] > 0 and row["server_img_per_s"] > 0
        assert row["ratio"] == row["server_img_per_s"] / row["model_alone_img_per_s"]
    assert doc["summary"]["basis"]["service_vs_model_alone"] == "paired"
    assert doc["summary"]["service_vs_model_alone"] == doc["service"]["paired"]["efficiency"]


@pytest.mark.skipif(shutil.which("java") is None, reason="TorchServe needs Java 17 (CI installs it)")
def test_torchserve_runs_under_the_same_load_and_is_stopped(quick_run) -> None:
    _, doc = quick_run
    _assert_sane_levels(doc["torchserve"], doc["meta"]["config"]["levels"])
    assert doc["summary"]["service_vs_torchserve"] > 0
    assert doc["torchserve"]["paired"]["rounds"]
    assert doc["summary"]["basis"]["service_vs_torchserve"] == "paired"
    _assert_all_stopped(doc["torchserve"]["pids"], at_least=3)  # launcher, Java frontend, Python worker


def _assert_all_stopped(pids: list[int], at_least: int) -> None:
    assert len(pids) >= at_least, pids
    alive = [pid for pid in pids if psutil.pid_exists(pid) and psutil.Process(pid).status() != "zombie"]
    assert not alive, f"server processes outlived the benchmark: {alive}"
