"""Fixtures of the monitoring tests: a small model file, the real service (``python -m service``) on
127.0.0.1 with its metrics port, and a real Prometheus (Debian's ``prometheus``) scraping it."""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.parse
import urllib.request
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import pytest
import yaml

from tools.make_model import build_model, save_model, write_labels

ROOT = Path(__file__).resolve().parents[2]
RULES = ROOT / "monitoring" / "rules.yaml"
PROMETHEUS = shutil.which("prometheus") or "/usr/bin/prometheus"
MODEL_NAME, NUM_CLASSES, SIDE = "scrape-test", 10, 64


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_for(condition: Callable[[], object], timeout: float, what: str, process=None) -> object:
    """Poll ``condition()`` (every 0.2 s) until it returns something truthy; return it. Fails after
    ``timeout`` s, or at once when ``process`` has exited."""
    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            pytest.fail(f"{what}: the process exited with {process.returncode}")
        try:
            if result := condition():
                return result
        except (OSError, urllib.error.URLError, ValueError):
            pass
        if time.monotonic() > deadline:
            pytest.fail(f"{what}: not within {timeout:.0f} s")
        time.sleep(0.2)


def get(url: str, timeout: float = 10) -> tuple[int, bytes]:
    try:
        with urllib.request.urlopen(url, timeout=timeout) as response:
            return response.status, response.read()
    except urllib.error.HTTPError as error:
        return error.code, error.read()


@dataclass
class Service:
    url: str
    metrics_url: str
    process: subprocess.Popen


@pytest.fixture(scope="session")
def service(tmp_path_factory) -> Iterator[Service]:
    """``python -m service`` with a seeded 10-class MobileNetV3 (64 px input) on free ports."""
    folder = tmp_path_factory.mktemp("scrape-model")
    model = save_model(build_model("mobilenet_v3_small", seed=0, num_classes=NUM_CLASSES).eval(),
                       folder / "model.pt", "torchscript", image_size=SIDE)
    labels = write_labels(folder / "labels.txt", NUM_CLASSES)
    port, metrics_port = free_port(), free_port()
    env = {"MODEL_PATH": str(model), "MODEL_LABELS": str(labels), "MODEL_NAME": MODEL_NAME,
           "MODEL_VERSION": "3", "RESIZE_SIZE": str(SIDE), "CROP_SIZE": str(SIDE), "TORCH_THREADS": "1",
           "DECODE_THREADS": "1", "HOST": "127.0.0.1", "PORT": str(port), "METRICS_PORT": str(metrics_port),
           "LOG_LEVEL": "warning"}
    log = (folder / "service.log").open("wb")
    process = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=os.environ | env, stdout=log,
                               stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: get(url + "/readyz", 2)[0] == 200, 180, "service ready", process)
        yield Service(url, f"http://127.0.0.1:{metrics_port}/metrics", process)
    finally:
        process.terminate()
        process.wait(30)
        log.close()


@dataclass
class Prometheus:
    url: str
    process: subprocess.Popen

    def query(self, expr: str) -> list[dict]:
        """Instant query (``/api/v1/query``): the result vector; raises on a PromQL error."""
        status, body = get(f"{self.url}/api/v1/query?" + urllib.parse.urlencode({"query": expr}))
        answer = json.loads(body)
        if status != 200 or answer["status"] != "success":
            raise AssertionError(f"{expr}: {answer.get('error', body[:200])}")
        return answer["data"]["result"]

    def api(self, path: str) -> dict:
        status, body = get(f"{self.url}/api/v1/{path}")
        assert status == 200, body[:200]
        return json.loads(body)["data"]


@pytest.fixture(scope="session")
def prometheus(service, tmp_path_factory) -> Iterator[Prometheus]:
    """A real Prometheus on 127.0.0.1:<free port>, scraping the service's metrics port every second
    (job ``classifier``) and evaluating monitoring/rules.yaml every second (the file's groups, their
    interval shortened from 1m: the expressions are the file's own)."""
    if not Path(PROMETHEUS).exists():
        pytest.skip("prometheus missing: apt-get install prometheus")
    folder = tmp_path_factory.mktemp("prometheus")
    rules = yaml.safe_load(RULES.read_text())
    for group in rules["groups"]:
        group["interval"] = "1s"
    (folder / "rules.yaml").write_text(yaml.safe_dump(rules))
    target = urllib.parse.urlsplit(service.metrics_url).netloc
    (folder / "prometheus.yml").write_text(yaml.safe_dump({
        "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
        "rule_files": [str(folder / "rules.yaml")],
        "scrape_configs": [{"job_name": "classifier", "metrics_path": "/metrics",
                            "static_configs": [{"targets": [target]}]}],
    }))
    port = free_port()
    log = (folder / "prometheus.log").open("wb")
    flags = [f"--config.file={folder / 'prometheus.yml'}", f"--storage.tsdb.path={folder / 'data'}",
             f"--web.listen-address=127.0.0.1:{port}", "--storage.tsdb.retention.time=1h"]
    process = subprocess.Popen([PROMETHEUS, *flags], stdout=log, stderr=subprocess.STDOUT)
    try:
        url = f"http://127.0.0.1:{port}"
        wait_for(lambda: get(url + "/-/ready", 2)[0] == 200, 60, "prometheus ready", process)
        yield Prometheus(url, process)
    finally:
        process.terminate()
        process.wait(30)
        log.close()
