"""Paired rounds: the model alone, then a server under load, back to back, several times.

A shared VM's speed drifts by 10 % and more over minutes (README "Performance": the same batch-8 loop
ran at 26.6 and 29.7 img/s ten minutes apart), and the sequential run times the model alone first and
each server minutes later, so its ratios carry that drift. A round times the model alone for a few
seconds and the server right after (one concurrency level, a few seconds); each round gives
``server / model alone`` measured under the same conditions, and the median over rounds is the
server's **efficiency**. ``service / TorchServe`` is then the ratio of the two efficiencies, each
normalised by the model alone timed next to it.
"""

from __future__ import annotations

import statistics
from collections.abc import Callable
from dataclasses import dataclass

from bench.model_alone import ModelAlone


@dataclass
class RoundsConfig:
    """``rounds`` rounds of the model alone at ``batch_size`` for ``model_seconds`` s, then the server
    at ``concurrency`` (``warmup_s`` unrecorded + ``duration_s`` recorded). ``rounds=0``: none."""

    rounds: int
    concurrency: int
    batch_size: int
    model_seconds: float
    warmup_s: float
    duration_s: float


def run_rounds(
    alone: ModelAlone,
    config: RoundsConfig,
    load: Callable[[], dict],
    settle: Callable[[], object] = lambda: None,
) -> dict:
    """Alternate ``alone.time`` and ``load()`` (one ``bench.loadgen`` level dict) ``config.rounds`` times;
    ``settle()`` runs before each model-alone timing (e.g. ``servers.wait_idle``: a server still
    answering requests its clients gave up on would slow the model alone down).

    Returns ``{"concurrency", "batch_size", "rounds": [{"model_alone_img_per_s", "server_img_per_s",
    "ratio", "errors", "p50_ms", "p99_ms"}, ...], "efficiency": median ratio, "errors": total}``.
    Raises ``ValueError`` if ``config.rounds < 1``.
    """
    if config.rounds < 1:
        raise ValueError("run_rounds needs at least one round")
    rows = []
    for _ in range(config.rounds):
        settle()
        ceiling = alone.time(config.batch_size, config.model_seconds).img_per_s
        level = load()
        served = level["img_per_s"] or 0.0
        rows.append({
            "model_alone_img_per_s": ceiling, "server_img_per_s": served, "ratio": served / ceiling,
            "errors": level["errors"], "p50_ms": level["p50_ms"], "p99_ms": level["p99_ms"],
        })  # fmt: skip
    return {
        "concurrency": config.concurrency,
        "batch_size": config.batch_size,
        "rounds": rows,
        "efficiency": statistics.median(row["ratio"] for row in rows),
        "errors": sum(row["errors"] for row in rows),
    }
