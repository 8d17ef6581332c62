"""CALIBRATION_URI against a real Blob API (Azurite): real photos under a prefix are fetched, capped and dealt
as a folder's; each failure has MODEL_URI's exit status and one line; the compile tools take
--calibration-uri."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest
import torch
from azure.storage.blob import BlobServiceClient
from PIL import Image

from service import calibration
from service.calibration_repository import TooFewImages
from service.model_repository import AccessDenied, BlobNotFound, RepositoryUnreachable
from service.preprocess import Preprocessor
from service.settings import Settings
from tests.azurite import ACCOUNT, azurite, free_port  # noqa: F401 (azurite is a fixture)
from tests.service.conftest import encode
from tests.service.tiny import LABELS, save_tiny_torchscript

ROOT = Path(__file__).resolve().parents[2]
CONTAINER = "calibration-test"
#: Blob name -> format: four photos under `photos/` (a PNG among them), plus what the prefix must skip.
PHOTOS = {"photos/a-chelsea.jpg": "JPEG", "photos/b-coffee.jpg": "JPEG", "photos/c-astronaut.png": "PNG",
          "photos/d-rocket.jpg": "JPEG"}
PRE = Preprocessor(32, 32, (0.485, 0.456, 0.406), (0.229, 0.224, 0.225))


@pytest.fixture(scope="module")
def uploaded(azurite, photos) -> dict[str, bytes]:  # noqa: F811
    """The photos (downscaled to 160 px) under `photos/`; a text file there, an image under `photos-old/`
    (the prefix `photos/` must not take it) and one image alone under `one/`. Returns name -> bytes."""
    service = BlobServiceClient.from_connection_string(azurite.connection_string())
    container = service.create_container(CONTAINER)
    data = {}
    for (name, fmt), pixels in zip(PHOTOS.items(), photos.values(), strict=True):
        image = Image.fromarray(pixels)
        image.thumbnail((160, 160))
        data[name] = encode(image, fmt)
        container.upload_blob(name, data[name])
    container.upload_blob("photos/notes.txt", b"not an image")
    container.upload_blob("photos-old/z-old.jpg", data["photos/a-chelsea.jpg"])
    container.upload_blob("one/only.jpg", data["photos/b-coffee.jpg"])
    return data


def _settings(azurite, tmp_path, prefix: str = "photos/", **overrides) -> Settings:  # noqa: F811
    values = {"calibration_uri": azurite.url(CONTAINER, prefix), "model_cache_dir": tmp_path,
              "azure_storage_connection_string": azurite.connection_string(), "calibration_images": 4,
              "model_fetch_retries": 0, "model_fetch_backoff_s": 0}
    return Settings(**(values | overrides))


def test_a_prefix_is_dealt_as_a_folder_of_the_same_files(azurite, uploaded, tmp_path):  # noqa: F811
    images = calibration.from_settings(_settings(azurite, tmp_path / "cache"), PRE)
    assert images.source == azurite.url(CONTAINER, "photos/") and images.files == len(PHOTOS)
    cached = tmp_path / "cache" / ACCOUNT / CONTAINER
    assert sorted(str(p.relative_to(cached)) for p in cached.rglob("*.*")) == sorted(PHOTOS)
    folder = tmp_path / "folder"
    folder.mkdir()
    for name, data in uploaded.items():
        (folder / Path(name).name).write_bytes(data)
    local = calibration.load(folder, PRE, 4)
    assert images.calibration.shape == (4, 3, 32, 32)
    assert torch.equal(images.calibration, local.calibration) and torch.equal(images.held_out, local.held_out)


@pytest.mark.parametrize(("cap", "files"), [("calibration_max_files", 3), ("calibration_max_bytes", 2)])
def test_the_caps_keep_the_first_images_by_name(azurite, uploaded, tmp_path, cap, files):  # noqa: F811
    first_two = len(uploaded["photos/a-chelsea.jpg"]) + len(uploaded["photos/b-coffee.jpg"])
    caps = {cap: 3 if cap == "calibration_max_files" else first_two}
    images = calibration.from_settings(_settings(azurite, tmp_path, **caps), PRE)
    assert images.files == files
    fetched = sorted(p.name for p in (tmp_path / ACCOUNT / CONTAINER / "photos").iterdir())
    assert fetched == [Path(name).name for name in sorted(PHOTOS)[:files]]


def test_fewer_than_two_images_under_the_prefix(azurite, uploaded, tmp_path):  # noqa: F811
    url = azurite.url(CONTAINER, "one/")
    with pytest.raises(TooFewImages) as caught:
        calibration.from_settings(_settings(azurite, tmp_path, "one/"), PRE)
    assert caught.value.exit_status == 4
    defaults = Settings.model_fields
    caps = (f"CALIBRATION_MAX_FILES={defaults['calibration_max_files'].default} / "
            f"CALIBRATION_MAX_BYTES={defaults['calibration_max_bytes'].default}")
    assert str(caught.value).startswith(f"{url}: fewer than 2 images under the prefix (1 image blob(s) "
                                        f"found, 1 within {caps}; suffixes .bmp, .gif, .jpeg, .jpg")
    tight = _settings(azurite, tmp_path, calibration_max_bytes=len(uploaded["photos/a-chelsea.jpg"]))
    with pytest.raises(TooFewImages, match=r"4 image blob\(s\) found, 1 within"):
        calibration.from_settings(tight, PRE)


def test_fetch_errors_are_the_model_repository_ones(azurite, uploaded, tmp_path):  # noqa: F811
    missing = azurite.url("no-such-container", "photos/")
    with pytest.raises(BlobNotFound) as caught:
        calibration.from_settings(_settings(azurite, tmp_path, calibration_uri=missing), PRE)
    assert caught.value.exit_status == 4
    assert str(caught.value) == (f"{missing}: container not found (ContainerNotFound); check "
                                 "CALIBRATION_URI, or upload the images under that prefix")
    other_key = azurite.connection_string("QUJD" * 22)  # valid base64, not the account's key: 403
    wrong_key = _settings(azurite, tmp_path, azure_storage_connection_string=other_key)
    with pytest.raises(AccessDenied, match="access denied") as denied:
        calibration.from_settings(wrong_key, PRE)
    assert denied.value.exit_status == 5
    port = free_port()  # nothing listens there
    closed = azurite.connection_string().replace(f":{azurite.port}/", f":{port}/")
    with pytest.raises(RepositoryUnreachable, match="unreachable after 0 retries") as unreachable:
        calibration.from_settings(_settings(azurite, tmp_path, azure_storage_connection_string=closed), PRE)
    assert unreachable.value.exit_status == 7


def _service(env: dict[str, str]) -> subprocess.CompletedProcess:
    return subprocess.run([sys.executable, "-m", "service"], cwd=ROOT, env=os.environ | env,
                          capture_output=True, text=True, timeout=180)


def test_the_service_exits_with_the_fetch_status(azurite, uploaded, tmp_path):  # noqa: F811
    labels = tmp_path / "labels.txt"
    labels.write_text("".join(f"{label}\n" for label in LABELS))
    env = {"MODEL_PATH": str(save_tiny_torchscript(tmp_path / "tiny.pt")), "MODEL_LABELS": str(labels),
           "RESIZE_SIZE": "32", "CROP_SIZE": "32", "MODEL_RUNTIME": "openvino", "TORCH_THREADS": "1",
           "CALIBRATION_URI": azurite.url(CONTAINER, "one/"), "MODEL_CACHE_DIR": str(tmp_path / "cache"),
           "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string(), "PORT": str(free_port()),
           "METRICS_PORT": "0", "LOG_FORMAT": "json"}
    result = _service(env)
    assert result.returncode == 4, [line[:300] for line in result.stderr.splitlines()]
    failures = [json.loads(line)["message"] for line in result.stderr.splitlines()
                if line.startswith("{") and "model load failed" in line]
    assert len(failures) == 1 and "fewer than 2 images under the prefix" in failures[0]
    assert "Traceback" not in result.stderr
    both = _service(env | {"CALIBRATION_DIR": str(tmp_path)})
    assert both.returncode == 2
    assert "CALIBRATION_URI and CALIBRATION_DIR are both set; set one calibration source" in both.stderr


def test_compile_and_publish_take_a_calibration_prefix(azurite, uploaded, tmp_path, monkeypatch):  # noqa: F811
    """tools.compile_model --calibration-uri writes an archive whose report names the prefix and the counts;
    tools.publish_model --compile --calibration-uri publishes that report next to the archive."""
    from tools import compile_model, publish_model

    for name, value in {"RESIZE_SIZE": "32", "CROP_SIZE": "32", "CALIBRATION_IMAGES": "4",
                        "TORCH_THREADS": "1", "MODEL_CACHE_DIR": str(tmp_path / "cache"),
                        "MODEL_FETCH_RETRIES": "0",
                        "AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string()}.items():
        monkeypatch.setenv(name, value)
    model, archive = save_tiny_torchscript(tmp_path / "tiny.pt"), tmp_path / "tiny.openvino.zip"
    prefix = azurite.url(CONTAINER, "photos/")
    assert compile_model.main(["--file", str(model), "--out", str(archive), "--calibration-uri", prefix]) == 0
    with zipfile.ZipFile(archive) as stored:
        report = json.loads(stored.read("openvino/report.json"))
    assert report["calibration_source"] == prefix and report["calibration_files"] == len(PHOTOS)
    assert (report["calibration_images"], report["held_out_images"]) == (4, 4)
    assert publish_model.main(["--container", CONTAINER, "--file", str(model), "--name", "tiny", "--version",
                               "1", "--compile", "--calibration-uri", prefix]) == 0
    container = BlobServiceClient.from_connection_string(azurite.connection_string()).get_container_client(
        CONTAINER)
    published = json.loads(container.download_blob("tiny/1/tiny.calibration.json").readall())
    assert published["calibration_source"] == prefix and published["calibration_files"] == len(PHOTOS)


@pytest.mark.parametrize(("url", "container_url", "prefix"), [
    ("https://acct.blob.core.windows.net/models/calibration/", "https://acct.blob.core.windows.net/models",
     "calibration/"),
    ("https://acct.blob.core.windows.net/models/cal/photos%201", "https://acct.blob.core.windows.net/models",
     "cal/photos 1"),
])
def test_a_prefix_url_names_its_container_and_prefix(url, container_url, prefix):
    from service.model_repository import container_client

    client, parsed = container_client(url, Settings())  # DefaultAzureCredential: nothing is requested yet
    assert (client.url, client.container_name, parsed) == (container_url, "models", prefix)


def test_the_documented_defaults_are_the_settings_defaults():
    from service.hostcpu import TIERS

    fields = Settings.model_fields
    text = (ROOT / "docs" / "configuration.md").read_text()
    files, size = fields["calibration_max_files"].default, fields["calibration_max_bytes"].default
    assert f"| `CALIBRATION_MAX_FILES` | `{files}` |" in text
    assert f"| `CALIBRATION_MAX_BYTES` | `{size}` ({size // 2**20} MiB) |" in text
    tiers = ", ".join(f"`{tier}`" for tier in TIERS)
    target = fields["model_target_cpu"].default
    assert (f"| `MODEL_TARGET_CPU` | `{target}` | Plan the precisions for a CPU of this tier instead of this "
            f"host's: {tiers} (") in text
