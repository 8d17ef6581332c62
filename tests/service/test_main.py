"""``python -m service`` as a real process: serves, and fails start-up with one clear line."""

from __future__ import annotations

import http.client
import json
import os
import signal
import socket
import subprocess
import sys
from pathlib import Path

import pytest

from tests.service.serving import wait_ready

ROOT = Path(__file__).resolve().parents[2]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def _run(env: dict[str, str], timeout: float = 120) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service"], cwd=ROOT, env=os.environ | env,
                          capture_output=True, text=True, timeout=timeout)


def _error_lines(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if "error" in line.lower()]


def test_invalid_setting_fails_with_one_line_naming_it():
    result = _run({"MAX_BATCH_SIZE": "zero", "PORT": "1"})
    assert result.returncode == 2
    assert result.stderr.strip().count("\n") == 0, result.stderr
    assert "MAX_BATCH_SIZE" in result.stderr and "Traceback" not in result.stderr


@pytest.mark.parametrize(("env", "needle"), [
    ({"MODEL_PATH": "/nonexistent/model.pt"}, "MODEL_PATH=/nonexistent/model.pt: no such file"),
    ({"MODEL_LABELS": "/nonexistent/labels.txt"}, "MODEL_LABELS=/nonexistent/labels.txt: no such file"),
])
def test_model_load_failure_stops_start_up_with_one_clear_line(model_files, env, needle):
    result = _run({"MODEL_PATH": str(model_files("torchscript")), "HOST": "127.0.0.1",
                   "PORT": str(_free_port())} | env)
    assert result.returncode == 3
    assert "Traceback" not in result.stderr, result.stderr
    matching = [line for line in result.stderr.splitlines() if needle in line]
    assert len(matching) == 1, result.stderr


def test_label_mismatch_stops_start_up(model_files, tmp_path):
    labels = tmp_path / "labels.txt"
    labels.write_text("a\nb\n")
    result = _run({"MODEL_PATH": str(model_files("torchscript")), "MODEL_LABELS": str(labels),
                   "PORT": str(_free_port()), "HOST": "127.0.0.1"})
    assert result.returncode == 3
    assert "has 2 labels but the model outputs 1000 classes" in result.stderr
    assert "Traceback" not in result.stderr


def test_serves_a_model_file_until_sigterm(model_files, labels_file, jpeg):
    port, metrics_port = _free_port(), _free_port()
    env = os.environ | {"MODEL_PATH": str(model_files("export")), "MODEL_LABELS": str(labels_file),
                        "HOST": "127.0.0.1", "PORT": str(port), "TORCH_THREADS": "1",
                        "METRICS_PORT": str(metrics_port)}
    process = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_ready(process, port)
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        boundary = "----test"
        body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cat.jpg\"\r\n"
                f"Content-Type: image/jpeg\r\n\r\n").encode() + jpeg + f"\r\n--{boundary}--\r\n".encode()
        conn.request("POST", "/predict", body=body, headers={
            "Content-Type": f"multipart/form-data; boundary={boundary}", "X-Request-ID": "req-42"})
        response = conn.getresponse()
        result = json.loads(response.read())
        assert response.status == 200
        assert response.getheader("X-Request-ID") == "req-42"
        assert result["model"] == "small-export" and len(result["predictions"]) == 5

        # The metrics are on METRICS_PORT, labelled with the model; the API port has none.
        conn = http.client.HTTPConnection("127.0.0.1", metrics_port, timeout=30)
        conn.request("GET", "/metrics")
        response = conn.getresponse()
        text = response.read().decode()
        assert response.status == 200 and response.getheader("Content-Type").startswith("text/plain")
        assert 'inference_batch_size_count{model="small-export",version="1"} 1.0' in text
        assert 'http_requests_total{method="POST",route="/predict",status="200"} 1.0' in text
        conn = http.client.HTTPConnection("127.0.0.1", port, timeout=30)
        conn.request("GET", "/metrics")
        assert conn.getresponse().status == 404
    finally:
        process.send_signal(signal.SIGTERM)  # what Kubernetes sends
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    # Not a terminal: every line is one JSON object, uvicorn's lines included, and each request has
    # exactly one access-log line (uvicorn's own access log is off).
    lines = [json.loads(line) for line in output.splitlines()]
    assert any(line["message"].startswith("model small-export v1 ready") for line in lines)
    assert not [line for line in lines if line["logger"] == "uvicorn.access"]
    [access] = [line for line in lines if line.get("path") == "/predict"]
    assert access["logger"] == "service.access" and access["level"] == "INFO"
    assert access["request_id"] == "req-42" and access["status"] == 200 and access["method"] == "POST"
    assert (access["model"], access["images"], access["batch_size"]) == ("small-export", 1, 1)
    assert access["duration_ms"] > 0


def _prefetch(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service", "--prefetch"], cwd=ROOT, capture_output=True,
                          text=True, env=os.environ | env, timeout=120)


def test_prefetch_checks_the_model_and_exits(model_files):
    # The Dockerfile's build step: `python -m service --prefetch` loads the configured model, no server.
    state_dict = str(model_files("state_dict"))
    ok = _prefetch({"MODEL_PATH": state_dict, "MODEL_ARCH": "mobilenet_v3_small"})
    assert ok.returncode == 0, ok.stderr
    assert "model available" in ok.stderr
    bad = _prefetch({"MODEL_PATH": state_dict, "MODEL_ARCH": "resnet18"})
    assert bad.returncode == 3
    assert bad.stderr.strip().startswith("error: MODEL_PATH=")
    assert "does not fit MODEL_ARCH=resnet18" in bad.stderr and "Traceback" not in bad.stderr


def test_a_metrics_port_in_use_stops_start_up_with_exit_status_8(model_files):
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        busy = taken.getsockname()[1]
        result = _run({"MODEL_PATH": str(model_files("torchscript")), "HOST": "127.0.0.1",
                       "PORT": str(_free_port()), "METRICS_PORT": str(busy)})
    assert result.returncode == 8
    [line] = _error_lines(result.stderr)
    assert f"cannot serve metrics on 127.0.0.1:{busy} (METRICS_PORT)" in line
    assert "Traceback" not in result.stderr


def test_metrics_port_equal_to_the_api_port_is_a_setting_error():
    result = _run({"PORT": "8123", "METRICS_PORT": "8123"})
    assert result.returncode == 2
    assert "METRICS_PORT='8123'" in result.stderr or "METRICS_PORT=8123" in result.stderr
    assert "must differ from PORT" in result.stderr
