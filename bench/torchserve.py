"""TorchServe (PyPI ``torchserve`` + ``torch-model-archiver``, Java 17) serving the same TorchScript file.

The model is archived with the stock ``image_classifier`` handler (Resize 256, CenterCrop 224,
ImageNet normalisation, softmax, top-5) and an ``index_to_name.json`` built from the same labels file,
then served from a temporary model store with a generated ``config.properties``:

- token authorization off (``disable_token_authorization``), so plain ``POST /predictions/<name>`` works;
- inference, management and metrics APIs bound to 127.0.0.1 on free ports;
- ``workers`` backend workers and TorchServe's own server-side batching at the service's batch size
  and delay (``batchSize``, ``maxBatchDelay``), so both servers may form the same batches.

Everything (pid file, logs, model store) lives in one work directory, so it never touches another
TorchServe on the machine; ``stop`` runs ``torchserve --stop`` and then kills whatever is left.
"""

from __future__ import annotations

import contextlib
import json
import os
import shutil
import subprocess
from collections.abc import Iterator
from pathlib import Path

from bench.servers import LOCALHOST, ManagedProcess, ServerError, free_port, http_ok, wait_until

MODEL_NAME = "classifier"


def unavailable_reason() -> str | None:
    """Why TorchServe cannot run here (no ``java`` / ``torchserve`` / ``torch-model-archiver``), or None."""
    for tool in ("java", "torchserve", "torch-model-archiver"):
        if shutil.which(tool) is None and not _venv_tool(tool).exists():
            return f"{tool} not found on PATH"
    return None


def _venv_tool(name: str) -> Path:
    import sys

    return Path(sys.executable).parent / name


def _tool(name: str) -> str:
    return str(_venv_tool(name)) if _venv_tool(name).exists() else name


def archive(model_file: Path, labels_file: Path, store: Path, version: str = "1.0") -> Path:
    """Package ``model_file`` as ``<store>/classifier.mar`` with the stock ``image_classifier`` handler.

    ``index_to_name.json`` maps class index (str) to the label on that line of ``labels_file``.
    Raises ``ServerError`` with the archiver's output if it fails.
    """
    store.mkdir(parents=True, exist_ok=True)
    labels = [line.strip() for line in labels_file.read_text().splitlines() if line.strip()]
    index = store.parent / "index_to_name.json"
    index.write_text(json.dumps({str(i): label for i, label in enumerate(labels)}))
    cmd = [
        _tool("torch-model-archiver"),
        "--model-name", MODEL_NAME,
        "--version", version,
        "--serialized-file", str(model_file),
        "--handler", "image_classifier",
        "--extra-files", str(index),
        "--export-path", str(store),
        "--force",
    ]  # fmt: skip
    done = subprocess.run(cmd, capture_output=True, text=True, timeout=300)
    if done.returncode != 0:
        raise ServerError(f"torch-model-archiver failed:\n{done.stdout[-1000:]}{done.stderr[-2000:]}")
    return store / f"{MODEL_NAME}.mar"


def write_config(
    workdir: Path, store: Path, ports: tuple[int, int, int], workers: int, batch_size: int, delay_ms: int
) -> Path:
    """Write ``<workdir>/config.properties`` (TorchServe's configuration file) and return its path."""
    inference, management, metrics = ports
    model = {
        MODEL_NAME: {
            "1.0": {
                "defaultVersion": True,
                "marName": f"{MODEL_NAME}.mar",
                "minWorkers": workers,
                "maxWorkers": workers,
                "batchSize": batch_size,
                "maxBatchDelay": delay_ms,
                "responseTimeout": 120,
            }
        }
    }
    lines = [
        f"inference_address=http://{LOCALHOST}:{inference}",
        f"management_address=http://{LOCALHOST}:{management}",
        f"metrics_address=http://{LOCALHOST}:{metrics}",
        f"model_store={store}",
        f"load_models={MODEL_NAME}.mar",
        f"models={json.dumps(model)}",
        "disable_token_authorization=true",
        "install_py_dep_per_model=false",
        "job_queue_size=1000",
    ]
    path = workdir / "config.properties"
    path.write_text("\n".join(lines) + "\n")
    return path


@contextlib.contextmanager
def run_torchserve(
    model_file: Path,
    labels_file: Path,
    workdir: Path,
    probe_photo: bytes,
    workers: int,
    batch_size: int,
    delay_ms: int,
    ready_timeout_s: float = 300.0,
) -> Iterator[tuple[str, ManagedProcess]]:
    """Run TorchServe on ``model_file`` until the block exits; yield ``(predictions_url, process)``.

    Ready means a ``POST /predictions/classifier`` of ``probe_photo`` (JPEG bytes) answered 200, i.e.
    the workers loaded the model. Raises ``ServerError`` if it exits or is not ready in time.
    """
    workdir.mkdir(parents=True, exist_ok=True)
    store = workdir / "model_store"
    archive(model_file, labels_file, store)
    ports = (free_port(), free_port(), free_port())
    config = write_config(workdir, store, ports, workers, batch_size, delay_ms)
    env = {**os.environ, "TMPDIR": str(workdir), "LOG_LOCATION": str(workdir / "logs")}
    env["METRICS_LOCATION"] = env["LOG_LOCATION"]
    cmd = [
        _tool("torchserve"), "--start", "--foreground", "--ncs", "--disable-token-auth",
        "--model-store", str(store), "--ts-config", str(config),
    ]  # fmt: skip
    proc = ManagedProcess(cmd, env, workdir, workdir / "torchserve.log")
    url = f"http://{LOCALHOST}:{ports[0]}/predictions/{MODEL_NAME}"
    try:
        headers = {"Content-Type": "image/jpeg"}
        wait_until(lambda: http_ok(url, probe_photo, headers), proc, ready_timeout_s, "TorchServe")
        yield url, proc
    finally:
        with contextlib.suppress(OSError, subprocess.SubprocessError):
            subprocess.run(
                [_tool("torchserve"), "--stop", "--foreground"], env=env, cwd=workdir,
                capture_output=True, timeout=90,
            )  # fmt: skip
        proc.stop()
