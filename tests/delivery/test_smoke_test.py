"""tools/smoke_test.py, the container workflow's smoke test, against `python -m service` started as
`make serve` starts it (no Docker engine here: the same script, the same service code, no image)."""

from __future__ import annotations

import http.server
import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path

import pytest
import torch
from PIL import Image
from torchvision.transforms import v2

from tools import smoke_test

ROOT = Path(__file__).resolve().parents[2]
SCRIPT = [sys.executable, str(ROOT / "tools/smoke_test.py")]


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


@pytest.fixture(scope="module")
def service(model_files, labels_file) -> Iterator[str]:
    """`python -m service` (what `make serve` runs) on 127.0.0.1:<free port>; yields its base URL.
    Not waited on here: the smoke test's own readiness wait is under test."""
    port = _free_port()
    env = os.environ | {"MODEL_PATH": str(model_files("torchscript")), "MODEL_LABELS": str(labels_file),
                        "MODEL_NAME": "small", "HOST": "127.0.0.1", "PORT": str(port), "TORCH_THREADS": "1"}
    process = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        process.send_signal(signal.SIGTERM)
        process.communicate(timeout=60)


def expected_top1(eager_model, labels_file) -> str:
    """The label the seeded model gives the photo the script sends (skimage chelsea as JPEG), computed
    in-process with torchvision's reference ImageNet preprocessing (resize 256, centre crop 224)."""
    _, body, _ = smoke_test.load_image("skimage:chelsea")
    import io

    transform = v2.Compose([v2.PILToTensor(), v2.Resize(256, antialias=True), v2.CenterCrop(224),
                            v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    with torch.no_grad():
        logits = eager_model(transform(Image.open(io.BytesIO(body)).convert("RGB")).unsqueeze(0))
    return labels_file.read_text().splitlines()[int(logits.argmax())]


def test_script_passes_against_the_service_with_the_expected_label(service, eager_model, labels_file):
    label = expected_top1(eager_model, labels_file)
    result = subprocess.run([*SCRIPT, "--url", service, "--image", "skimage:chelsea", "--expect", label,
                             "--timeout", "120"], capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr
    assert f"-> {label!r}" in result.stdout and "small v1" in result.stdout


def test_script_fails_when_the_top1_is_not_expected(service, eager_model, labels_file):
    label = expected_top1(eager_model, labels_file)
    wrong = "class_999" if label != "class_999" else "class_000"
    result = subprocess.run([*SCRIPT, "--url", service, "--expect", wrong, "--timeout", "120"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 1
    assert f"top-1 is {label!r}" in result.stderr and wrong in result.stderr


def test_script_accepts_a_photo_file(service, tmp_path):
    path = tmp_path / "coffee.png"
    _, body, _ = smoke_test.load_image("skimage:coffee")
    path.write_bytes(body)  # JPEG bytes under a .png name: the server sniffs content, not the name
    result = subprocess.run([*SCRIPT, "--url", service, "--image", str(path), "--timeout", "120"],
                            capture_output=True, text=True, timeout=180)
    assert result.returncode == 0, result.stderr


def test_not_ready_within_the_timeout_is_exit_2_and_bounded():
    started = time.monotonic()
    result = subprocess.run([*SCRIPT, "--url", f"http://127.0.0.1:{_free_port()}", "--timeout", "2"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2
    assert "not ready within 2 s" in result.stderr
    assert time.monotonic() - started < 30


def test_missing_image_is_exit_2(tmp_path):
    result = subprocess.run([*SCRIPT, "--image", str(tmp_path / "none.jpg"), "--timeout", "1"],
                            capture_output=True, text=True, timeout=60)
    assert result.returncode == 2 and "no such file" in result.stderr


class _FakeServer(http.server.BaseHTTPRequestHandler):
    """Ready at once; answers /predict with whatever the test put in `answer`."""

    answer: object = None

    def do_GET(self):
        self.send_response(200)
        self.end_headers()

    def do_POST(self):
        self.rfile.read(int(self.headers["Content-Length"]))
        body = json.dumps(self.answer).encode()
        self.send_response(200)
        self.send_header("Content-Type", "application/json")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, *args):
        pass


GOOD = {"model": "m", "version": "1", "predictions": [{"label": "cat", "index": 3, "score": 0.7},
                                                       {"label": "dog", "index": 1, "score": 0.2}]}


@pytest.mark.parametrize(("answer", "words"), [
    ({"predictions": GOOD["predictions"]}, "model/version"),
    ({**GOOD, "predictions": []}, "no predictions"),
    ({**GOOD, "predictions": [{"label": "cat", "index": -1, "score": 0.5}]}, "malformed"),
    ({**GOOD, "predictions": [{"label": "cat", "index": 1, "score": 1.5}]}, "malformed"),
    ({**GOOD, "predictions": GOOD["predictions"][::-1]}, "descending"),
    ({**GOOD, "predictions": [{"label": "a", "index": 0, "score": 0.8},
                              {"label": "b", "index": 1, "score": 0.7}]}, "sum"),
    (["not", "an", "object"], "model/version"),
])
def test_script_rejects_a_malformed_answer(answer, words, capsys):
    _FakeServer.answer = answer
    server = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _FakeServer)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        url = f"http://127.0.0.1:{server.server_address[1]}"
        assert smoke_test.run(["--url", url, "--timeout", "5"]) == 1
        assert words in capsys.readouterr().err
        _FakeServer.answer = GOOD
        assert smoke_test.run(["--url", url, "--timeout", "5", "--expect", "cat"]) == 0
    finally:
        server.shutdown()
        server.server_close()
