"""``python -m bench.model_startup``: start-up time of the service, model from the repository vs a local file.

Start-up time = from starting ``python -m service`` to the first ``GET /readyz`` answering 200 (model
fetched and verified when it comes from ``MODEL_URI``, then loaded and warmed). The same model file is
served both ways: uploaded to Azurite (``MODEL_URI`` + ``MODEL_SHA256``, a fresh empty ``MODEL_CACHE_DIR``
each run, as a new pod's ``emptyDir``) and as ``MODEL_PATH`` (the file baked into the image). Runs
alternate between the two so a change in machine load affects both alike. Prints one line per run and a
summary (median, min, max in seconds), and the fetch's own duration from the service log.

Usage: ``python -m bench.model_startup --arch resnet50 --runs 5``
"""

from __future__ import annotations

import argparse
import hashlib
import http.client
import os
import re
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from tests.harness.emulator import free_port, start_azurite, stop_azurite

ROOT = Path(__file__).resolve().parent.parent
CACHE = ROOT / "build" / "bench" / "startup"
_FETCHED = re.compile(r"model fetched: \S+ \((\d+) bytes, sha256 [0-9a-f]+, ([0-9.]+) s\)")


def model_file(arch: str) -> Path:
    """A seeded random-weight TorchScript ``arch`` in build/bench/startup/ (made once)."""
    from tools.make_model import build_model, save_model

    path = CACHE / f"{arch}.pt"
    if not path.exists():
        CACHE.mkdir(parents=True, exist_ok=True)
        save_model(build_model(arch, seed=0), path, "torchscript")
    return path


def time_to_ready(env: dict[str, str], timeout_s: float = 300) -> tuple[float, str]:
    """Start ``python -m service`` with ``env``; return (seconds until /readyz is 200, its log)."""
    port = free_port()
    started = time.perf_counter()
    process = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT,
                               env=os.environ | env | {"HOST": "127.0.0.1", "PORT": str(port)},
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        while True:
            if process.poll() is not None:
                raise RuntimeError(f"service exited with {process.returncode}: {process.stdout.read()}")
            try:
                conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
                conn.request("GET", "/readyz")
                if conn.getresponse().status == 200:
                    return time.perf_counter() - started, _stop(process)
            except OSError:
                pass
            if time.perf_counter() - started > timeout_s:
                raise RuntimeError(f"not ready after {timeout_s} s")
            time.sleep(0.02)  # readiness poll interval: the resolution of the measurement
    finally:
        if process.poll() is None:
            _stop(process)


def _stop(process: subprocess.Popen) -> str:
    process.terminate()
    output, _ = process.communicate(timeout=60)
    return output


def _summary(name: str, values: list[float]) -> str:
    return (f"{name:<10} median {statistics.median(values):6.2f} s  min {min(values):6.2f}  "
            f"max {max(values):6.2f}  (n={len(values)})")


def main(argv: list[str] | None = None) -> int:
    """Run the comparison; print per-run lines and the summary. Returns 0."""
    parser = argparse.ArgumentParser(prog="python -m bench.model_startup", description=__doc__.split("\n")[0])
    parser.add_argument("--arch", default="resnet50", help="torchvision architecture (default resnet50)")
    parser.add_argument("--runs", type=int, default=5, help="runs per source (default 5)")
    parser.add_argument("--torch-threads", default="2", help="TORCH_THREADS of the service (default 2)")
    args = parser.parse_args(argv)
    from azure.storage.blob import BlobServiceClient

    path = model_file(args.arch)
    data = path.read_bytes()
    digest = hashlib.sha256(data).hexdigest()
    emulator = start_azurite()
    common = {"MODEL_NAME": args.arch, "TORCH_THREADS": args.torch_threads, "LOG_LEVEL": "info"}
    results: dict[str, list[float]] = {"emulator": [], "local": []}
    fetches: list[float] = []
    try:
        container = BlobServiceClient.from_connection_string(emulator.connection_string()).create_container(
            "models")
        container.upload_blob(f"{args.arch}/1/model.pt", data)
        uri = emulator.url("models", f"{args.arch}/1/model.pt")
        print(f"{args.arch}: {len(data) / 2**20:.1f} MiB TorchScript, sha256 {digest}")
        for run in range(1, args.runs + 1):
            with tempfile.TemporaryDirectory() as cache:
                seconds, log = time_to_ready(common | {
                    "MODEL_URI": uri, "MODEL_SHA256": digest, "MODEL_CACHE_DIR": cache,
                    "AZURE_STORAGE_CONNECTION_STRING": emulator.connection_string()})
            fetch = _FETCHED.search(log)
            fetches.append(float(fetch.group(2)) if fetch else float("nan"))
            results["emulator"].append(seconds)
            local_seconds, _ = time_to_ready(common | {"MODEL_PATH": str(path)})
            results["local"].append(local_seconds)
            print(f"run {run}: emulator {seconds:6.2f} s (fetch {fetches[-1]:.2f} s)   local file "
                  f"{local_seconds:6.2f} s", flush=True)
    finally:
        stop_azurite(emulator)
    print(_summary("emulator", results["emulator"]))
    print(_summary("local", results["local"]))
    print(_summary("fetch", fetches))
    deltas = [a - b for a, b in zip(results["emulator"], results["local"], strict=True)]
    print(f"emulator - local, paired: median {statistics.median(deltas):+.2f} s "
          f"(min {min(deltas):+.2f}, max {max(deltas):+.2f})")
    return 0


if __name__ == "__main__":
    sys.exit(main())
