"""Shared fixtures: real photos (skimage.data) encoded in every format, model files made on the fly,
an app with a small model (TestClient), and a real uvicorn server on 127.0.0.1 (ephemeral port)."""

from __future__ import annotations

import asyncio
import io
import os
import threading
import time
import warnings
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pytest
import torch
import uvicorn
from PIL import Image
from prometheus_client import generate_latest
from prometheus_client.parser import text_string_to_metric_families
from skimage import data as skdata
from torchvision.transforms import v2

from service.app import create_app
from service.preprocess import Preprocessor
from service.settings import Settings
from tools.make_model import build_model, save_model, write_labels

with warnings.catch_warnings():  # starlette's TestClient nags about httpx2, which is not a dependency
    warnings.simplefilter("ignore")
    from fastapi.testclient import TestClient

# The tests of the request path run PyTorch's float32 path (MODEL_RUNTIME=auto / MODEL_DTYPE=auto would
# convert, calibrate and gate every app's model: seconds each); tests of the runtime choice say theirs.
os.environ.setdefault("MODEL_RUNTIME", "torch")
os.environ.setdefault("MODEL_DTYPE", "float32")

SMALL_ARCH = "mobilenet_v3_small"  # ~2.5 M parameters: a few ms per image on one core
NUM_CLASSES = 1000


async def until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """Wait (polling every 5 ms, on the running event loop) until ``condition()`` is true; fail after
    ``timeout`` s. For tests: wait for an event instead of sleeping a fixed time."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        await asyncio.sleep(0.005)


def wait_until(condition: Callable[[], bool], timeout: float = 10.0) -> None:
    """``until`` for plain threads (polling every 20 ms)."""
    deadline = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < deadline, "condition not met in time"
        time.sleep(0.02)


def metric(text: str, name: str, **labels: str) -> float:
    """Sum of the samples named ``name`` whose labels include ``labels``, in a Prometheus text
    exposition (0 when there is none)."""
    return sum(sample.value for family in text_string_to_metric_families(text) for sample in family.samples
               if sample.name == name and labels.items() <= sample.labels.items())


def scrape(app) -> str:
    """What the app's metrics port serves (``service.metrics.serve_metrics``): its registry in the
    Prometheus text format, read in-process."""
    return generate_latest(app.state.metrics.registry).decode()


def encode(array: np.ndarray | Image.Image, fmt: str, **kwargs) -> bytes:
    """Encode an image (uint8 array or PIL image) with Pillow into ``fmt`` (JPEG, PNG, WEBP, GIF, BMP)."""
    image = array if isinstance(array, Image.Image) else Image.fromarray(array)
    buffer = io.BytesIO()
    image.save(buffer, fmt, **kwargs)
    return buffer.getvalue()


@pytest.fixture(scope="session")
def photos() -> dict[str, np.ndarray]:
    """Real RGB photos from scikit-image: name -> uint8 ``[H, W, 3]``."""
    return {name: getattr(skdata, name)() for name in ("chelsea", "coffee", "astronaut", "rocket")}


@pytest.fixture(scope="session")
def photo_batch(photos) -> torch.Tensor:
    """The real photos, preprocessed by the service (ImageNet defaults): ``[P, 3, 224, 224]`` float32."""
    preprocessor = Preprocessor.from_settings(Settings())
    return torch.stack([preprocessor(Image.fromarray(p)) for p in photos.values()])


@pytest.fixture(scope="session")
def jpeg(photos) -> bytes:
    """Chelsea the cat as a JPEG (451x300)."""
    return encode(photos["chelsea"], "JPEG", quality=90)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory) -> Path:
    return tmp_path_factory.mktemp("models")


@pytest.fixture(scope="session")
def eager_model(photos) -> torch.nn.Module:
    """The seeded eager model that every saved format below comes from.

    A freshly initialised MobileNetV3 answers a uniform 1/1000 for every image (its batch-norm
    statistics and classifier init make the logits ~1e-9 apart), which would let a test pass with
    the wrong image's answer. So its batch-norm statistics are computed on the photos (as training
    would) and the last layer is scaled up: different photos now get clearly different answers.
    """
    model = build_model(SMALL_ARCH, seed=0, num_classes=NUM_CLASSES)
    transform = v2.Compose([v2.PILToTensor(), v2.Resize(256, antialias=True), v2.CenterCrop(224),
                            v2.ToDtype(torch.float32, scale=True),
                            v2.Normalize([0.485, 0.456, 0.406], [0.229, 0.224, 0.225])])
    batch = torch.stack([transform(Image.fromarray(p)) for p in photos.values()])
    for module in model.modules():
        if isinstance(module, torch.nn.BatchNorm2d):
            module.reset_running_stats()
            module.momentum = None  # cumulative average over the calibration batch
    model.train()
    with torch.no_grad():
        model(batch)
        model.classifier[-1].weight.mul_(300)
    return model.eval()


@pytest.fixture(scope="session")
def model_files(model_dir, eager_model) -> Callable[[str], Path]:
    """``model_files(fmt)`` -> path of the eager model saved as ``fmt`` (made once per session)."""
    cache: dict[str, Path] = {}

    def make(fmt: str) -> Path:
        if fmt not in cache:
            cache[fmt] = save_model(eager_model, model_dir / f"small-{fmt}.bin", fmt)
        return cache[fmt]

    return make


@pytest.fixture(scope="session")
def labels_file(model_dir) -> Path:
    return write_labels(model_dir / "labels.txt", NUM_CLASSES)


@pytest.fixture(scope="session")
def app_settings(model_files, labels_file) -> Settings:
    """Settings for the shared test app: small TorchScript model, generous batching window."""
    return Settings(model_path=model_files("torchscript"), model_labels=labels_file, model_name="small",
                    model_version="7", max_batch_size=8, max_batch_delay_ms=20, torch_threads=2,
                    decode_threads=2, max_body_bytes=4_000_000, max_image_pixels=4_000_000)


@pytest.fixture(scope="session")
def client(app_settings) -> Iterator[TestClient]:
    """A started app (lifespan run: model loaded and warmed) behind FastAPI's TestClient."""
    with TestClient(create_app(app_settings)) as test_client:
        yield test_client


class ServerThread:
    """uvicorn serving an app in a background thread on 127.0.0.1:<ephemeral port>."""

    def __init__(self, app) -> None:
        self.app = app
        self.server = uvicorn.Server(uvicorn.Config(app, host="127.0.0.1", port=0, log_level="warning",
                                                    lifespan="on"))
        self.thread = threading.Thread(target=self.server.run, daemon=True)

    def __enter__(self) -> ServerThread:
        self.thread.start()
        deadline = time.monotonic() + 120
        while not self.server.started:
            if not self.thread.is_alive() or time.monotonic() > deadline:
                raise RuntimeError("test server did not start")
            time.sleep(0.05)
        return self

    @property
    def port(self) -> int:
        return self.server.servers[0].sockets[0].getsockname()[1]

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def __exit__(self, *exc) -> None:
        self.server.should_exit = True
        self.thread.join(timeout=30)


@pytest.fixture(scope="session")
def live_server(app_settings) -> Iterator[ServerThread]:
    """The shared app served by a real uvicorn on 127.0.0.1 (ephemeral port)."""
    with ServerThread(create_app(app_settings)) as server:
        yield server


def pytest_configure(config) -> None:
    # torch deprecates TorchScript/quantized tensor APIs loudly; the tests use them on purpose.
    for line in ("ignore::FutureWarning:torch.*", "ignore::UserWarning:torch.*",
                 "ignore::torch.jit.TracerWarning", "ignore:Using `httpx` with `starlette.testclient`"):
        config.addinivalue_line("filterwarnings", line)
