"""One benchmark run: the model alone, then this service, then TorchServe, one after the other."""

from __future__ import annotations

import json
import subprocess
import sys
import tempfile
import traceback
from dataclasses import dataclass
from pathlib import Path

import psutil

from bench import model_alone
from bench.servers import ManagedProcess, ServerError, run_service, tree_rss_mib
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


def run_load(base_url: str, path: str, config: RunConfig, workdir: Path, name: str, expect_key: str) -> list:
    """Run ``bench.loadgen`` (locust, in its own process) against ``base_url + path``; return its levels."""
    out = workdir / f"load-{name}.json"
    cmd = [
        sys.executable, "-m", "bench.loadgen", "--host", base_url, "--path", path,
        "--photos", *map(str, config.photos), "--upload", config.upload if name == "service" else "raw",
        "--expect-key", expect_key, "--levels", *map(str, config.levels),
        "--server-warmup", str(config.server_warmup_s), "--warmup", str(config.warmup_s),
        "--duration", str(config.duration_s), "--out", str(out),
    ]  # fmt: skip
    budget = len(config.levels) * (config.warmup_s + config.duration_s + 90) + config.server_warmup_s + 60
    done = subprocess.run(
        cmd, capture_output=True, text=True, timeout=budget, cwd=Path(__file__).parent.parent
    )
    if done.returncode != 0:
        raise RuntimeError(f"load generator failed ({done.returncode}):\n{done.stderr[-3000:]}")
    return json.loads(out.read_text())["levels"]


def bench_service(config: RunConfig, workdir: Path) -> dict:
    """This service over HTTP: ``{"levels": [...], "rss_mib", "startup_s"}`` or ``{"error": why}``."""
    try:
        with run_service(config.service_module, config.model_file, config.labels_file, workdir) as (
            base,
            proc,
        ):
            levels = run_load(base, "/predict", config, workdir, "service", "predictions")
            return {
                "levels": levels,
                "rss_mib": server_rss_mib(proc),
                "url": f"{base}/predict",
                **_pids(proc),
            }
    except (ServerError, RuntimeError, subprocess.SubprocessError, OSError) as error:
        return {"error": f"{type(error).__name__}: {error}"[-3000:]}


def bench_torchserve(config: RunConfig, workdir: Path) -> dict:
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
            levels = run_load(base, f"/predictions/{path}", config, workdir, "torchserve", "")
            rss = server_rss_mib(proc, skip_launcher=True)
            return {"levels": levels, "rss_mib": rss, "url": url, **_pids(proc)}
    except (ServerError, RuntimeError, subprocess.SubprocessError, OSError) as error:
        return {"error": f"{type(error).__name__}: {error}"[-3000:]}


def run(config: RunConfig) -> dict:
    """Run every target in turn (so they never compete for the cores) and return the raw results."""
    results: dict = {}
    try:
        results["model_alone"] = model_alone.measure(
            config.model_file, config.labels_file, config.photos, batch_sizes_up_to(config.batch_size),
            config.model_seconds_per_batch,
        ).to_dict()  # fmt: skip
    except Exception as error:
        results["model_alone"] = {"error": "".join(traceback.format_exception_only(error)).strip()}
    with tempfile.TemporaryDirectory(prefix="bench-") as tmp:
        results["service"] = bench_service(config, Path(tmp))
        results["torchserve"] = bench_torchserve(config, Path(tmp))
    return results
