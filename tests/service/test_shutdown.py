"""Graceful shutdown of the real server (``python -m service`` in a subprocess on 127.0.0.1): on SIGTERM
/readyz turns 503 first, requests in flight all get their answer, then the process exits 0."""

from __future__ import annotations

import os
import signal
import socket
import subprocess
import sys
import time
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import httpx
import pytest

from tests.service.conftest import encode, metric, wait_until

ROOT = Path(__file__).resolve().parents[2]
BATCH_WINDOW_MS = 3000  # every request waits this long for its batch: "in flight" for seconds


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


class ServiceProcess:
    """``python -m service`` with ``env`` on a free 127.0.0.1 port; ``__enter__`` waits for /readyz 200.
    ``prefix`` goes before the command (e.g. ``bench.cgroup``'s, to start it in a cgroup)."""

    def __init__(self, env: dict[str, str], log_path: Path, prefix: list[str] | None = None) -> None:
        self.prefix = prefix or []
        self.port, metrics_port = free_port(), free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.metrics_url = f"http://127.0.0.1:{metrics_port}/metrics"
        self.env = os.environ | {"HOST": "127.0.0.1", "PORT": str(self.port), "LOG_LEVEL": "info",
                                 "METRICS_PORT": str(metrics_port)} | env
        self.log_path = log_path
        self.proc: subprocess.Popen | None = None

    def __enter__(self) -> ServiceProcess:
        self.log = self.log_path.open("wb")
        self.proc = subprocess.Popen([*self.prefix, sys.executable, "-m", "service"], cwd=ROOT, env=self.env,
                                     stdout=self.log, stderr=subprocess.STDOUT)
        deadline = time.monotonic() + 180
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                raise RuntimeError(f"service exited with {self.proc.returncode}:\n{self.output()}")
            try:
                if httpx.get(self.url + "/readyz", timeout=2).status_code == 200:
                    return self
            except httpx.TransportError:
                pass
            time.sleep(0.2)
        raise RuntimeError(f"service not ready in time:\n{self.output()}")

    def output(self) -> str:
        self.log.flush()
        return self.log_path.read_text(errors="replace")

    def __exit__(self, *exc) -> None:
        if self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(10)
        self.log.close()


@pytest.fixture(scope="module")
def service_env(model_files, labels_file) -> dict[str, str]:
    """The small TorchScript model, a long batching window, one thread each (CPU is shared)."""
    return {"MODEL_PATH": str(model_files("torchscript")), "MODEL_LABELS": str(labels_file),
            "MODEL_NAME": "small", "RESIZE_SIZE": "64", "CROP_SIZE": "64", "MAX_BATCH_SIZE": "64",
            "MAX_BATCH_DELAY_MS": str(BATCH_WINDOW_MS), "TORCH_THREADS": "1", "DECODE_THREADS": "1"}


@pytest.fixture(scope="module")
def small_jpeg(photos) -> bytes:
    from PIL import Image

    return encode(Image.fromarray(photos["chelsea"]).resize((96, 64)), "JPEG")


def _post(url: str, data: bytes) -> httpx.Response:
    return httpx.post(url + "/predict?top_k=3", content=data, headers={"Content-Type": "image/jpeg"},
                      timeout=60)


@pytest.mark.parametrize("delay_s", [1.5, 0.0])
def test_sigterm_turns_readiness_503_lets_in_flight_requests_finish_then_exits_0(
        service_env, small_jpeg, tmp_path, delay_s):
    env = service_env | {"SHUTDOWN_DELAY_S": str(delay_s)}
    with ServiceProcess(env, tmp_path / "service.log") as service, ThreadPoolExecutor(8) as pool:
        in_flight = [pool.submit(_post, service.url, small_jpeg) for _ in range(6)]
        # all six wait in the batcher's queue (the gauge is read at scrape time): in flight for seconds
        wait_until(lambda: metric(httpx.get(service.metrics_url, timeout=5).text,
                                  "inference_queue_depth") == 6)
        assert not any(f.done() for f in in_flight), "requests should still wait for their batch"

        service.proc.send_signal(signal.SIGTERM)
        signalled = time.monotonic()
        late = None
        if delay_s:
            # Readiness fails first, while the server still accepts and serves new requests.
            ready = httpx.get(service.url + "/readyz", timeout=5)
            assert ready.status_code == 503
            assert ready.json() == {"error": "not_ready", "detail": "shutting down"}
            assert httpx.get(service.url + "/v2/health/ready", timeout=5).status_code == 503
            assert httpx.get(service.url + "/healthz", timeout=5).status_code == 200
            late = pool.submit(_post, service.url, small_jpeg)

        answers = [f.result(timeout=30) for f in [*in_flight, *([late] if late else [])]]
        assert [a.status_code for a in answers] == [200] * len(answers)
        assert all(len(a.json()["predictions"]) == 3 for a in answers)

        status = service.proc.wait(timeout=30)
        took = time.monotonic() - signalled
        log = service.output()
        assert status == 0, log
        # exits once the batch is answered: far inside terminationGracePeriodSeconds (45 s by default)
        assert took < delay_s + BATCH_WINDOW_MS / 1000 + 10, log
        assert "Traceback" not in log, log
        with pytest.raises(httpx.TransportError):
            httpx.get(service.url + "/healthz", timeout=2)
