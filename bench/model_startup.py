"""``python -m bench.model_startup``: start-up time of the service, model from the repository vs a local file.

Start-up time = from starting ``python -m service`` to the first ``GET /readyz`` answering 200 (model
fetched and verified when it comes from ``MODEL_URI``, then loaded and warmed). The same model file is
served both ways: uploaded to Azurite (``MODEL_URI`` + ``MODEL_SHA256``, a fresh empty ``MODEL_CACHE_DIR``
each run, as a new pod's ``emptyDir``) and as ``MODEL_PATH`` (the file baked into the image). Runs
alternate between the two so a change in machine load affects both alike. Prints one line per run and a
summary (median, min, max in seconds), the CPU seconds the service used until ready (which, unlike wall time,
other processes on the machine do not inflate), the fetch's and the load + warm-up's own durations from the
service log, and the first ``POST /predict`` after ready (what the request that woke a scaled-to-zero
app waits for on top of the start).

``--cpu-quota 0.5,1,2,none`` repeats everything with the service in a CPU-quota cgroup of each size
(``bench.cgroup``; Container Apps' consumption sizes are 0.25 to 4 vCPU), needs root; ``none`` and no
``--cpu-quota`` give the service the whole machine. ``TORCH_THREADS`` follows the quota (whole CPUs, at
least 1) unless ``--torch-threads`` is given. The last lines give the startup probe each size needs
(twice the slowest start seen: the machine-load swing, docs/cold-start.md).

Usage: ``python -m bench.model_startup --arch resnet50 --runs 5 [--cpu-quota 0.5,1,2]``
"""

from __future__ import annotations

import argparse
import contextlib
import hashlib
import http.client
import io
import math
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass, field
from pathlib import Path

from bench.cgroup import CgroupUnavailable, QuotaGroup, find_cpu_root
from tests.harness.emulator import free_port, start_azurite, stop_azurite

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "bench" / "startup"
_FETCHED = re.compile(r"model fetched: \S+ \((\d+) bytes, sha256 [0-9a-f]+, ([0-9.]+) s\)")
_LOADED = re.compile(r"model \S+ v\S+ ready: .*, ([0-9.]+) s")
#: Container Apps probe limits (ARM ``Microsoft.App`` ``ContainerAppProbe``, pulumi-azure-native ``app``
#: docstrings): ``periodSeconds`` 1..240, ``failureThreshold`` 1..10, ``initialDelaySeconds`` up to 60.
PROBE_PERIOD_S = 10
MAX_FAILURES = 10


def model_file(arch: str) -> Path:
    """A seeded random-weight TorchScript ``arch`` in build/bench/startup/ (made once)."""
    from tools.make_model import build_model, save_model

    path = CACHE / f"{arch}.pt"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        save_model(build_model(arch, seed=0), path, "torchscript")
    return path


def photo_jpeg() -> bytes:
    """A real photo (skimage.data ``chelsea``, 451x300) as JPEG: the first request's image."""
    from PIL import Image
    from skimage import data as skdata

    buffer = io.BytesIO()
    Image.fromarray(skdata.chelsea()).save(buffer, "JPEG", quality=90)
    return buffer.getvalue()


@dataclass
class Start:
    """One start: seconds to /readyz 200, the CPU seconds the service used until then, seconds of the
    first /predict after it, the service log."""

    ready_s: float
    cpu_s: float
    first_predict_s: float
    log: str

    def logged(self, pattern: re.Pattern[str], group: int) -> float:
        match = pattern.search(self.log)
        return float(match.group(group)) if match else math.nan


def cpu_seconds(pid: int) -> float:
    """User + system CPU time (s) of process ``pid`` so far (``/proc/<pid>/stat`` utime + stime, proc(5)):
    unlike wall time, it does not grow when other processes share the CPUs."""
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def _get(port: int, method: str, path: str, body: bytes | None = None) -> int:
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    try:
        conn.request(method, path, body=body, headers={"Content-Type": "image/jpeg"} if body else {})
        response = conn.getresponse()
        response.read()
        return response.status
    finally:
        conn.close()


def time_to_ready(env: dict[str, str], photo: bytes, prefix: list[str] = (), timeout_s: float = 600) -> Start:
    """Start ``python -m service`` with ``env`` (behind the command ``prefix``, e.g. a quota group's);
    return the seconds until /readyz is 200, then the seconds of one ``POST /predict`` of ``photo``."""
    port = free_port()
    started = time.perf_counter()
    defaults = {"METRICS_PORT": "0"}  # any free port: the metrics are not read here
    process = subprocess.Popen([*prefix, sys.executable, "-m", "service"], cwd=ROOT,
                               env=os.environ | defaults | env | {"HOST": "127.0.0.1", "PORT": str(port),
                                                                  "LOG_FORMAT": "text"},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"service exited with {process.returncode}: {process.stdout.read()}")
            with contextlib.suppress(OSError):
                if _get(port, "GET", "/readyz") == 200:
                    break
            if time.perf_counter() - started > timeout_s:
                raise RuntimeError(f"not ready after {timeout_s} s")
            time.sleep(0.02)  # readiness poll interval: the resolution of the measurement
        ready = time.perf_counter() - started
        cpu = cpu_seconds(process.pid)
        request_started = time.perf_counter()
        status = _get(port, "POST", "/predict", photo)
        if status != 200:
            raise RuntimeError(f"first POST /predict answered {status}")
        return Start(ready, cpu, time.perf_counter() - request_started, _stop(process))
    finally:
        if process.poll() is None:
            _stop(process)


def _stop(process: subprocess.Popen) -> str:
    process.terminate()
    output, _ = process.communicate(timeout=60)
    return output


def _summary(name: str, values: list[float]) -> str:
    values = [v for v in values if not math.isnan(v)] or [math.nan]
    return (f"  {name:<22} median {statistics.median(values):6.2f} s  min {min(values):6.2f}  "
            f"max {max(values):6.2f}  (n={len(values)})")


def startup_budget(slowest_s: float) -> tuple[int, int]:
    """``(periodSeconds, failureThreshold)`` of a startup probe that allows twice ``slowest_s`` (s): period
    ``PROBE_PERIOD_S``, or longer where ``MAX_FAILURES`` probes would not cover it (Container Apps' limit)."""
    budget = 2 * slowest_s
    period = max(PROBE_PERIOD_S, math.ceil(budget / MAX_FAILURES))
    return period, max(1, math.ceil(budget / period))


@dataclass
class Sizing:
    """Results of one CPU size (``cpus`` None: the whole machine)."""

    cpus: float | None
    runs: dict[str, list[Start]] = field(default_factory=lambda: {"emulator": [], "local": []})

    @property
    def name(self) -> str:
        return "no quota" if self.cpus is None else f"{self.cpus:g} CPU"


def _threads(cpus: float | None, given: str | None) -> str:
    if given:
        return given
    return str(max(1, math.floor(cpus))) if cpus else str(os.cpu_count() or 1)


def run_sizing(sizing: Sizing, args: argparse.Namespace, emulator, uri: str, digest: str, path: Path,
               photo: bytes, cpu_root) -> None:
    """``args.runs`` pairs of starts (emulator, then local file) at ``sizing.cpus``; prints each pair."""
    common = {"MODEL_NAME": args.arch, "TORCH_THREADS": _threads(sizing.cpus, args.torch_threads),
              "LOG_LEVEL": "info"}
    for run in range(1, args.runs + 1):
        with contextlib.ExitStack() as stack:
            prefix: list[str] = []
            if sizing.cpus is not None:
                prefix = stack.enter_context(QuotaGroup(cpu_root, sizing.cpus, f"startup{run}")).prefix
            cache = stack.enter_context(tempfile.TemporaryDirectory())
            remote = time_to_ready(common | {
                "MODEL_URI": uri, "MODEL_SHA256": digest, "MODEL_CACHE_DIR": cache,
                "AZURE_STORAGE_CONNECTION_STRING": emulator.connection_string()}, photo, prefix)
            local = time_to_ready(common | {"MODEL_PATH": str(path)}, photo, prefix)
        sizing.runs["emulator"].append(remote)
        sizing.runs["local"].append(local)
        print(f"{sizing.name} run {run} (load {os.getloadavg()[0]:.1f}): emulator {remote.ready_s:6.2f} s "
              f"(CPU {remote.cpu_s:.1f} s, fetch "
              f"{remote.logged(_FETCHED, 2):.2f} s, load+warm {remote.logged(_LOADED, 1):.2f} s, "
              f"first predict {remote.first_predict_s:.2f} s)   local file {local.ready_s:6.2f} s (CPU "
              f"{local.cpu_s:.1f} s, load+warm "
              f"{local.logged(_LOADED, 1):.2f} s, first predict {local.first_predict_s:.2f} s)", flush=True)


def report(sizing: Sizing) -> None:
    """Summary lines of one size and the startup probe it needs."""
    remote, local = sizing.runs["emulator"], sizing.runs["local"]
    print(f"{sizing.name} (TORCH_THREADS as run):")
    print(_summary("ready, emulator", [s.ready_s for s in remote]))
    print(_summary("ready, local file", [s.ready_s for s in local]))
    print(_summary("fetch (emulator)", [s.logged(_FETCHED, 2) for s in remote]))
    print(_summary("load+warm", [s.logged(_LOADED, 1) for s in remote + local]))
    print(_summary("start+imports (local)", [s.ready_s - s.logged(_LOADED, 1) for s in local]))
    print(_summary("first predict", [s.first_predict_s for s in remote + local]))
    print(_summary("CPU time to ready, emu", [s.cpu_s for s in remote]))
    print(_summary("CPU time to ready, file", [s.cpu_s for s in local]))
    deltas = [a.ready_s - b.ready_s for a, b in zip(remote, local, strict=True)]
    print(f"  emulator - local, paired: median {statistics.median(deltas):+.2f} s "
          f"(min {min(deltas):+.2f}, max {max(deltas):+.2f})")
    slowest = max(s.ready_s for s in remote + local)
    period, failures = startup_budget(slowest)
    print(f"  startup probe: periodSeconds {period} x failureThreshold {failures} = {period * failures} s "
          f"(2 x the slowest start, {slowest:.1f} s)")


def main(argv: list[str] | None = None) -> int:
    """Run the comparison at each size; print per-run lines and the summaries. Returns 0, or 4 when a
    ``--cpu-quota`` was asked for and no writable CPU cgroup exists."""
    parser = argparse.ArgumentParser(prog="python -m bench.model_startup", description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="resnet50", help="torchvision architecture (default resnet50)")
    parser.add_argument("--runs", type=int, default=5, help="runs per source and size (default 5)")
    parser.add_argument("--torch-threads", default=None, help="TORCH_THREADS of the service (default: the "
                        "quota's whole CPUs, at least 1; all CPUs without a quota)")
    parser.add_argument("--cpu-quota", default="", help="comma-separated CPU quotas, e.g. 0.5,1,2 (root); "
                        "'none' for the whole machine")
    args = parser.parse_args(argv)
    from azure.storage.blob import BlobServiceClient

    quotas = [None if q.strip() == "none" else float(q) for q in args.cpu_quota.split(",") if q.strip()]
    cpu_root = None
    if any(q is not None for q in quotas):
        try:
            cpu_root = find_cpu_root()
        except CgroupUnavailable as exc:
            print(f"no CPU quota possible here: {exc}", file=sys.stderr)
            return 4
    path = model_file(args.arch)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    photo = photo_jpeg()
    sizings = [Sizing(q) for q in quotas] or [Sizing(None)]
    emulator = start_azurite()
    try:
        container = BlobServiceClient.from_connection_string(emulator.connection_string()).create_container(
            "models")
        container.upload_blob(f"{args.arch}/1/model.pt", data)
        uri = emulator.url("models", f"{args.arch}/1/model.pt")
        print(f"{args.arch}: {len(data) / 2**20:.1f} MiB TorchScript, sha256 {digest}; {os.cpu_count()} CPUs")
        for sizing in sizings:
            run_sizing(sizing, args, emulator, uri, digest, path, photo, cpu_root)
    finally:
        stop_azurite(emulator)
    for sizing in sizings:
        report(sizing)
    return 0


if __name__ == "__main__":
    sys.exit(main())
