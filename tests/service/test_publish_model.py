"""`python -m tools.publish_model` against Azurite: uploads, prints the rollout, refuses overwrites."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys
from pathlib import Path

import pytest
from azure.storage.blob import BlobServiceClient

from service.model_repository import fetch_model
from service.settings import Settings
from tests.azurite import azurite  # noqa: F401 (a fixture)
from tools import publish_model

ROOT = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def container(azurite):  # noqa: F811
    return BlobServiceClient.from_connection_string(azurite.connection_string()).create_container("publish")


def _publish(azurite, *args: str) -> subprocess.CompletedProcess:  # noqa: F811
    return subprocess.run([sys.executable, "-m", "tools.publish_model", "--container", "publish", *args],
                          cwd=ROOT, capture_output=True, text=True, timeout=120,
                          env=os.environ | {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string()})


def test_publishes_a_version_and_prints_its_rollout(azurite, container, model_files, labels_file, tmp_path):  # noqa: F811
    model = model_files("torchscript")
    result = _publish(azurite, "--file", str(model), "--labels", str(labels_file), "--name", "small",
                      "--version", "2")
    assert result.returncode == 0, result.stderr
    digest = hashlib.sha256(model.read_bytes()).hexdigest()
    base = azurite.url("publish", "small/2")
    assert result.stdout.splitlines() == [
        f"pulumi config set modelUri {base}/{model.name}",
        f"pulumi config set modelSha256 {digest}",
        "pulumi config set modelVersion 2",
        f"pulumi config set modelLabelsUri {base}/{labels_file.name}",
        "pulumi up",
    ]
    blob = container.get_blob_client(f"small/2/{model.name}")
    assert blob.download_blob().readall() == model.read_bytes()
    assert blob.get_blob_properties().metadata == {"sha256": digest, "role": "model"}
    # What it printed is what the service fetches and verifies.
    config = dict(line.split()[3:5] for line in result.stdout.splitlines()[:4])
    settings = fetch_model(Settings(model_uri=config["modelUri"], model_sha256=config["modelSha256"],
                                    model_labels_uri=config["modelLabelsUri"], model_cache_dir=tmp_path,
                                    azure_storage_connection_string=azurite.connection_string()))
    assert settings.model_path.read_bytes() == model.read_bytes()
    assert settings.model_labels.read_text() == labels_file.read_text()


def test_show_prints_the_rollout_of_a_published_version(azurite, container, model_files, labels_file):  # noqa: F811
    args = ["--file", str(model_files("torchscript")), "--labels", str(labels_file), "--name", "back"]
    assert _publish(azurite, *args, "--version", "1").returncode == 0
    published = _publish(azurite, *args, "--version", "2")
    shown = _publish(azurite, "--show", "--name", "back", "--version", "2")
    assert shown.returncode == 0 and shown.stdout == published.stdout
    one = _publish(azurite, "--show", "--name", "back", "--version", "1").stdout
    assert "back/1/" in one and "modelVersion 1" in one and "back/2/" not in one
    missing = _publish(azurite, "--show", "--name", "back", "--version", "9")
    assert missing.returncode == 2 and "holds no model" in missing.stderr


def test_refuses_to_overwrite_a_version(azurite, container, model_files, tmp_path):  # noqa: F811
    first = _publish(azurite, "--file", str(model_files("torchscript")), "--name", "small", "--version", "3")
    assert first.returncode == 0, first.stderr
    other = tmp_path / model_files("torchscript").name
    other.write_bytes(b"a different model")
    second = _publish(azurite, "--file", str(other), "--name", "small", "--version", "3")
    assert second.returncode == 1 and second.stdout == ""
    assert second.stderr.startswith("error: ") and "already holds" in second.stderr
    kept = container.get_blob_client(f"small/3/{other.name}").download_blob().readall()
    assert kept == model_files("torchscript").read_bytes()


def test_the_refusal_is_atomic(azurite, container, tmp_path):  # noqa: F811
    # A publisher that passed the listing check still cannot replace a blob written meanwhile:
    # upload_blob(overwrite=False) sends If-None-Match: * and the service answers 409 BlobAlreadyExists.
    model = tmp_path / "model.pt"
    model.write_bytes(b"late")
    container.upload_blob("race/1/model.pt", b"first")
    with pytest.raises(publish_model.VersionExists, match="already exists"):
        publish_model.upload(container, "race/1/model.pt", model, "0" * 64)
    assert container.get_blob_client("race/1/model.pt").download_blob().readall() == b"first"


def test_stack_without_the_pulumi_cli_says_what_to_pass(monkeypatch):
    monkeypatch.setattr(publish_model.shutil, "which", lambda name: None)
    with pytest.raises(publish_model.PublishError, match="--account-url"):
        publish_model.stack_container_url("dev")


def test_usage_errors(tmp_path):
    model = tmp_path / "m.pt"
    model.write_bytes(b"x")
    env = {k: v for k, v in os.environ.items() if k != "AZURE_STORAGE_CONNECTION_STRING"}
    for args, needle in [(["--file", str(model), "--name", "a/b", "--version", "1", "--account-url", "x"],
                          "--name must be"),
                         (["--file", str(model), "--name", "a", "--version", "1"], "say where to publish"),
                         (["--file", str(tmp_path / "none"), "--name", "a", "--version", "1",
                           "--stack", "dev"], "no such file")]:
        result = subprocess.run([sys.executable, "-m", "tools.publish_model", *args], cwd=ROOT, env=env,
                                capture_output=True, text=True, timeout=60)
        assert result.returncode == 2 and needle in result.stderr, result.stderr
