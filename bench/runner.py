"""One benchmark run: the model alone, then this service, then TorchServe, one after the other; after
each server's levels, paired rounds of the model alone and that server (``bench.rounds``)."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench import model_alone, report, stages
from bench.rounds import RoundsConfig, run_rounds
from bench.servers import ManagedProcess, ServerError, run_service, tree_rss_mib, wait_idle
from bench.torchserve import run_torchserve, unavailable_reason


@dataclass
class RunConfig:
    """Everything one run needs: files, load shape (levels, seconds) and the batcher's settings.

    ``batch_size`` / ``delay_ms`` are the service's ``MAX_BATCH_SIZE`` / ``MAX_BATCH_DELAY_MS``; the model
    alone is timed at powers of two up to ``batch_size`` and TorchServe batches with the same values.
    """

    model_file: Path
    labels_file: Path
    photos: list[Path]
    levels: list[int]
    duration_s: float
    warmup_s: float
    server_warmup_s: float
    model_seconds_per_batch: float
    batch_size: int
    delay_ms: float
    service_module: str = "service"
    upload: str = "raw"
    skip_torchserve: bool = False
    torchserve_workers: int = 1
    rounds: int = 0
    round_model_seconds: float = 5.0
    round_warmup_s: float = 2.0
    round_duration_s: float = 10.0


def batch_sizes_up_to(limit: int) -> list[int]:
    """Powers of two below ``limit``, then ``limit``: ``16 -> [1, 2, 4, 8, 16]``, ``6 -> [1, 2, 4, 6]``."""
    sizes, size = [], 1
    while size < limit:
        sizes.append(size)
        size *= 2
    return [*sizes, limit]


def server_rss_mib(proc: ManagedProcess, skip_launcher: bool = False) -> float:
    """RSS (MiB) of a server's process tree after its run.

    With ``skip_launcher`` the root (TorchServe's Python CLI, which only waits) is left out and the
    subtrees of its children count: the Java frontend and its Python backend workers.
    """
    if skip_launcher:
        return sum(tree_rss_mib(child.pid) for child in psutil.Process(proc.pid).children())
    return tree_rss_mib(proc.pid)


def _pids(proc: ManagedProcess) -> dict:
    """The server's process ids (root first), recorded so a test can check none outlives the run."""
    return {"pids": [proc.pid, *(child.pid for child in proc.descendants())]}


def run_load(
    base_url: str,
    path: str,
    config: RunConfig,
    workdir: Path,
    name: str,
    expect_key: str,
    levels: list[int] | None = None,
    warmups_s: tuple[float, float] | None = None,
    duration_s: float | None = None,
) -> list:
    """Run ``bench.loadgen`` (locust, in its own process) against ``base_url + path``; return its levels.

    ``levels``, ``warmups_s`` (server warm-up, per-level warm-up) and ``duration_s`` default to the
    config's (a paired round passes one level, no server warm-up and its own window)."""
    out = workdir / f"load-{name}.json"
    levels = levels or config.levels
    server_warmup, warmup = warmups_s or (config.server_warmup_s, config.warmup_s)
    duration = config.duration_s if duration_s is None else duration_s
    cmd = [
        sys.executable, "-m", "bench.loadgen", "--host", base_url, "--path", path,
        "--photos", *map(str, config.photos), "--upload", config.upload if name == "service" else "raw",
        "--expect-key", expect_key, "--levels", *map(str, levels),
        "--server-warmup", str(server_warmup), "--warmup", str(warmup),
        "--duration", str(duration), "--out", str(out),
    ]  # fmt: skip
    budget = len(levels) * (warmup + duration + 90) + server_warmup + 60
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=budget, cwd=Path(__file__).parent.parent
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())["levels"]


@dataclass
class Rounds:
    """What paired rounds need: the model alone, already loaded, and the rounds' shape."""

    alone: model_alone.ModelAlone
    config: RoundsConfig


def paired(
    rounds: Rounds | None, config: RunConfig, server: ManagedProcess, url: tuple[str, str], workdir: Path,
    name: str, expect_key: str,
) -> dict:  # fmt: skip
    """``{"paired": run_rounds(...)}`` against the running ``server`` at ``url`` (base, path); ``{}``
    without rounds. Each model-alone timing waits for the server's processes to be idle."""
    if rounds is None:
        return {}
    shape = rounds.config

    def load() -> dict:
        warmups = (0.0, shape.warmup_s)
        levels = run_load(*url, config, workdir, f"{name}-round", expect_key, [shape.concurrency], warmups,
                          shape.duration_s)  # fmt: skip
        return levels[0]

    try:
        return {"paired": run_rounds(rounds.alone, shape, load, lambda: wait_idle(server.pid))}
    except (RuntimeError, subprocess.SubprocessError, OSError, psutil.Error) as error:  # levels stay
        return {"paired": {"error": f"{type(error).__name__}: {error}"[-3000:]}}


def bench_service(config: RunConfig, workdir: Path, rounds: Rounds | None = None) -> dict:
    """This service over HTTP: ``{"levels": [...], "rss_mib", "paired"?, ...}`` or ``{"error": why}``.
    RSS is read after the levels, before the paired rounds."""
    try:
        with run_service(config.service_module, config.model_file, config.labels_file, workdir) as (
            base,
            proc,
        ):
            levels = run_load(base, "/predict", config, workdir, "service", "predictions")
            result = {"levels": levels, "rss_mib": server_rss_mib(proc), "url": f"{base}/predict",
                      "stages": stages.scrape(proc.metrics_url)}
            more = paired(rounds, config, proc, (base, "/predict"), workdir, "service", "predictions")
            return {**result, **more, **_pids(proc)}
    except (ServerError, RuntimeError, subprocess.SubprocessError, OSError) as error:
        return {"error": f"{type(error).__name__}: {error}"[-3000:]}


def bench_torchserve(config: RunConfig, workdir: Path, rounds: Rounds | None = None) -> dict:
    """TorchServe under the same load, or ``{"error": why}`` / ``{"skipped": why}``."""
    if config.skip_torchserve:
        return {"skipped": "--skip-torchserve"}
    reason = unavailable_reason()
    if reason:
        return {"skipped": reason}
    try:
        with run_torchserve(
            config.model_file, config.labels_file, workdir / "torchserve", config.photos[0].read_bytes(),
            workers=config.torchserve_workers, batch_size=config.batch_size, delay_ms=round(config.delay_ms),
        ) as (url, proc):  # fmt: skip
            base, path = url.split("/predictions/", 1)
            path = f"/predictions/{path}"
            levels = run_load(base, path, config, workdir, "torchserve", "")
            rss = server_rss_mib(proc, skip_launcher=True)
            more = paired(rounds, config, proc, (base, path), workdir, "torchserve", "")
            return {"levels": levels, "rss_mib": rss, "url": url, **more, **_pids(proc)}
    except (ServerError, RuntimeError, subprocess.SubprocessError, OSError) as error:
        return {"error": f"{type(error).__name__}: {error}"[-3000:]}


def run(config: RunConfig) -> dict:
    """Run every target in turn (so they never compete for the cores) and return the raw results."""
    results: dict = {}
    rounds = None
    try:
        alone = model_alone.ModelAlone(config.model_file, config.labels_file, config.photos)
        sizes = batch_sizes_up_to(config.batch_size)
        measured = model_alone.measure(alone, sizes, config.model_seconds_per_batch)
        results["model_alone"] = measured.to_dict()
        if config.rounds > 0:  # the rounds time the model alone at the batch size of its ceiling
            shape = RoundsConfig(
                config.rounds,
                report.ratio_concurrency(config.levels),
                measured.ceiling_batch_size,
                config.round_model_seconds,
                config.round_warmup_s,
                config.round_duration_s,
            )
            rounds = Rounds(alone, shape)
    except Exception as error:
        results["model_alone"] = {"error": "".join(traceback.format_exception_only(error)).strip()}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        results["service"] = bench_service(config, Path(tmp), rounds)
        results["torchserve"] = bench_torchserve(config, Path(tmp), rounds)
    return results
