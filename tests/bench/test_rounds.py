"""Paired rounds (``bench.rounds``) and the idle wait before each model-alone timing (``bench.servers``)."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench.model_alone import BatchTiming
from bench.rounds import RoundsConfig, run_rounds
from bench.servers import wait_idle


class FakeAlone:
    """A model alone whose speed drifts like a shared host's: each call is 10 % slower."""

    def __init__(self, calls: list[str]) -> None:
        self.calls, self.speed = calls, 40.0

    def time(self, batch_size: int, seconds: float) -> BatchTiming:
        self.calls.append(f"alone b{batch_size} {seconds}s")
        timing = BatchTiming(batch_size, self.speed, batch_size / self.speed * 1000, 10)
        self.speed *= 0.9
        return timing


def test_each_round_settles_times_the_model_alone_then_loads_the_server() -> None:
    calls: list[str] = []
    alone = FakeAlone(calls)
    served = iter([40 * 0.9, 36 * 0.8, 32.4 * 0.9])  # ratios 0.9, 0.8, 0.9 against the drifting model

    def load() -> dict:
        calls.append("load")
        return {"img_per_s": next(served), "errors": 0, "p50_ms": 400.0, "p99_ms": 500.0}

    config = RoundsConfig(rounds=3, concurrency=16, batch_size=8, model_seconds=5.0, warmup_s=2,
                          duration_s=10)
    result = run_rounds(alone, config, load, settle=lambda: calls.append("settle"))
    assert calls == ["settle", "alone b8 5.0s", "load"] * 3
    assert [round(r["ratio"], 6) for r in result["rounds"]] == [0.9, 0.8, 0.9]
    assert result["efficiency"] == pytest.approx(0.9)  # the median: one slow round does not decide
    assert result["concurrency"] == 16 and result["batch_size"] == 8 and result["errors"] == 0


def test_errors_add_up_over_rounds_and_zero_rounds_is_refused() -> None:
    config = RoundsConfig(rounds=2, concurrency=4, batch_size=2, model_seconds=0.1, warmup_s=0, duration_s=1)
    result = run_rounds(FakeAlone([]), config, lambda: {"img_per_s": 0.0, "errors": 3, "p50_ms": None,
                                                         "p99_ms": None})  # fmt: skip
    assert result["errors"] == 6 and result["efficiency"] == 0.0
    with pytest.raises(ValueError, match="at least one round"):
        run_rounds(FakeAlone([]), RoundsConfig(0, 4, 2, 0.1, 0, 1), lambda: {})


def test_wait_idle_waits_for_a_busy_process_tree_and_not_for_an_idle_one() -> None:
    # The child spins one CPU for 1.5 s, then sleeps: like a server finishing abandoned requests.
    busy = "import time\nend = time.perf_counter() + 1.5\nwhile time.perf_counter() < end: pass\n"
    busy += "time.sleep(60)"
    proc = subprocess.Popen([sys.executable, "-c", busy])
    try:
        time.sleep(0.2)
        waited = wait_idle(proc.pid, timeout_s=20)
        assert 1.0 <= waited < 10
        assert wait_idle(proc.pid, timeout_s=20) < 1.0  # now idle: two quiet intervals of 0.25 s
    finally:
        proc.kill()
        proc.wait()


@pytest.mark.parametrize(("flags", "message"), [(["--rounds", "-1"], "--rounds must be >= 0"),
                                                (["--round-duration", "0"], "--round-duration must be > 0")])
def test_bad_round_flags_are_refused_with_the_flag_named(capsys, flags, message):
    from bench.__main__ import parse_args

    with pytest.raises(SystemExit) as exit_info:
        parse_args(["--quick", *flags])
    assert exit_info.value.code == 2 and message in capsys.readouterr().err
