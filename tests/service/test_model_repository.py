"""MODEL_URI against a real Blob API (Azurite): serve a fetched model; each failure's line and exit status."""

from __future__ import annotations

import hashlib
import http.client
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
from azure.core.exceptions import HttpResponseError
from azure.storage.blob import BlobServiceClient
from pydantic import ValidationError

from service.model_repository import READER_ROLE, AccessDenied, fetch_blob, translate
from service.settings import Settings, describe_error
from tests.azurite import ACCOUNT, azurite, free_port  # noqa: F401 (azurite is a fixture)
from tests.service.serving import wait_ready

ROOT = Path(__file__).resolve().parents[2]
BOUNDARY = "----model-repository-test"


@pytest.fixture(scope="module")
def published(azurite, model_files, labels_file):  # noqa: F811
    """The test model (TorchScript) and its labels uploaded to `models/small/1/` in the emulator."""
    service = BlobServiceClient.from_connection_string(azurite.connection_string())
    container = service.create_container("models")
    model = model_files("torchscript").read_bytes()
    container.upload_blob("small/1/model.pt", model)
    container.upload_blob("small/1/labels.txt", labels_file.read_bytes())
    return {"model": azurite.url("models", "small/1/model.pt"),
            "labels": azurite.url("models", "small/1/labels.txt"),
            "sha256": hashlib.sha256(model).hexdigest()}


def _env(azurite, tmp_path, **extra) -> dict[str, str]:  # noqa: F811
    return {"AZURE_STORAGE_CONNECTION_STRING": azurite.connection_string(), "MODEL_CACHE_DIR": str(tmp_path),
            "HOST": "127.0.0.1", "PORT": str(free_port()), "TORCH_THREADS": "1", "MODEL_PATH": "",
            "MODEL_FETCH_RETRIES": "1", "MODEL_FETCH_BACKOFF_S": "0"} | extra


def _start_up_failure(env: dict[str, str]) -> tuple[int, list[str]]:
    result = subprocess.run([sys.executable, "-m", "service"], cwd=ROOT, env=os.environ | env,
                            capture_output=True, text=True, timeout=120)
    assert "Traceback" not in result.stderr, result.stderr
    assert result.stderr.strip().count("\n") == 0, result.stderr  # one line, nothing else
    return result.returncode, [line for line in result.stderr.splitlines() if line.startswith("error:")]


def _predict(port: int, jpeg: bytes) -> dict:
    body = (f"--{BOUNDARY}\r\nContent-Disposition: form-data; name=\"file\"; filename=\"cat.jpg\"\r\n"
            "Content-Type: image/jpeg\r\n\r\n").encode() + jpeg + f"\r\n--{BOUNDARY}--\r\n".encode()
    conn = http.client.HTTPConnection("127.0.0.1", port, timeout=60)
    conn.request("POST", "/predict", body=body,
                 headers={"Content-Type": f"multipart/form-data; boundary={BOUNDARY}"})
    response = conn.getresponse()
    assert response.status == 200
    return json.loads(response.read())


def test_serves_the_model_from_the_emulator(azurite, published, tmp_path, client, jpeg):  # noqa: F811
    env = _env(azurite, tmp_path, MODEL_URI=published["model"], MODEL_LABELS_URI=published["labels"],
               MODEL_SHA256=published["sha256"].upper(), MODEL_NAME="small", MODEL_VERSION="1")
    process = subprocess.Popen([sys.executable, "-m", "service"], cwd=ROOT, env=os.environ | env,
                               stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        wait_ready(process, int(env["PORT"]))
        served = _predict(int(env["PORT"]), jpeg)
    finally:
        process.send_signal(signal.SIGTERM)
        output, _ = process.communicate(timeout=60)
    assert process.returncode == 0, output
    assert f"model fetched: {published['model']}" in output
    cached = tmp_path / ACCOUNT / "models" / "small" / "1" / "model.pt"
    assert hashlib.sha256(cached.read_bytes()).hexdigest() == published["sha256"]
    # The same file loaded from a local path (the shared test app) gives the same answer for the photo.
    local = client.post("/predict", files={"file": ("cat.jpg", jpeg, "image/jpeg")}).json()
    assert [p["label"] for p in served["predictions"]] == [p["label"] for p in local["predictions"]]
    assert served["model"] == "small" and len(served["predictions"]) == 5


def test_digest_mismatch_names_both_digests(azurite, published, tmp_path):  # noqa: F811
    wrong = "0" * 64
    status, errors = _start_up_failure(_env(azurite, tmp_path, MODEL_URI=published["model"],
                                            MODEL_SHA256=wrong))
    assert status == 6
    assert len(errors) == 1 and wrong in errors[0] and published["sha256"] in errors[0], errors
    assert not list(tmp_path.rglob("model.pt")), "a file that failed verification must not stay in the cache"


def test_missing_blob_names_the_url(azurite, published, tmp_path):  # noqa: F811
    url = azurite.url("models", "small/9/model.pt")
    status, errors = _start_up_failure(_env(azurite, tmp_path, MODEL_URI=url))
    assert status == 4
    assert errors == [f"error: {url}: blob not found (BlobNotFound); check the URL, or publish it with "
                      "python -m tools.publish_model"]


def test_wrong_container_says_container(azurite, published, tmp_path):  # noqa: F811
    url = azurite.url("modles", "small/1/model.pt")
    status, errors = _start_up_failure(_env(azurite, tmp_path, MODEL_URI=url))
    assert status == 4
    assert len(errors) == 1 and errors[0].startswith(f"error: {url}: container not found"), errors


def test_wrong_key_is_access_denied(azurite, published, tmp_path):  # noqa: F811
    other_key = "QUJD" * 22  # valid base64, not the account's key: Azurite rejects the signature (403)
    env = _env(azurite, tmp_path, MODEL_URI=published["model"],
               AZURE_STORAGE_CONNECTION_STRING=azurite.connection_string(other_key))
    status, errors = _start_up_failure(env)
    assert status == 5
    assert len(errors) == 1 and "access denied" in errors[0] and published["model"] in errors[0], errors


def test_unreachable_repository_retries_then_stops(tmp_path, azurite):  # noqa: F811
    port = free_port()  # nothing listens there
    url = f"http://127.0.0.1:{port}/{ACCOUNT}/models/small/1/model.pt"
    closed = azurite.connection_string().replace(f":{azurite.port}/", f":{port}/")
    env = _env(azurite, tmp_path, MODEL_URI=url, MODEL_FETCH_RETRIES="2",
               AZURE_STORAGE_CONNECTION_STRING=closed)
    started = time.monotonic()
    status, errors = _start_up_failure(env)
    assert status == 7
    assert len(errors) == 1 and errors[0].startswith(f"error: {url}: unreachable after 2 retries"), errors
    # Backoff 0 + 2**1 + 0 + 2**2 s between the three attempts (ExponentialRetry, increment_base 2).
    assert time.monotonic() - started >= 6


def test_a_verified_file_in_the_cache_is_reused(azurite, published, tmp_path):  # noqa: F811
    settings = Settings(model_uri=published["model"], model_sha256=published["sha256"],
                        model_cache_dir=tmp_path, azure_storage_connection_string=azurite.connection_string())
    first = fetch_blob(published["model"], settings, published["sha256"])
    second = fetch_blob(published["model"], settings, published["sha256"])
    assert (first.cached, second.cached) == (False, True) and first.path == second.path
    first.path.write_bytes(b"tampered")  # a damaged cache entry is downloaded again, not trusted
    third = fetch_blob(published["model"], settings, published["sha256"])
    assert not third.cached and third.sha256 == published["sha256"]


class _Response:
    """The parts of an HTTP response `HttpResponseError` reads."""

    status_code = 403
    reason = "This request is not authorized to perform this operation using this permission."
    def __init__(self) -> None:
        self.headers = {"x-ms-error-code": "AuthorizationPermissionMismatch"}

    def text(self) -> str:
        return ""


def test_missing_role_names_the_identity_and_the_role(monkeypatch):
    # What Blob Storage answers a token whose identity has no data-plane role (Azure Storage error codes:
    # AuthorizationPermissionMismatch, 403).
    monkeypatch.setenv("AZURE_CLIENT_ID", "11111111-2222-3333-4444-555555555555")
    error = HttpResponseError(response=_Response())
    error.error_code = "AuthorizationPermissionMismatch"
    url = "https://aicdev.blob.core.windows.net/models/small/1/model.pt"
    translated = translate(error, url, Settings(model_uri=url))
    assert isinstance(translated, AccessDenied) and translated.exit_status == 5
    assert str(translated) == (f"{url}: access denied (AuthorizationPermissionMismatch) for identity "
                               f"11111111-2222-3333-4444-555555555555 (AZURE_CLIENT_ID): it needs the "
                               f"{READER_ROLE} role on the container")


def test_model_uri_and_model_path_together_is_a_setting_error(tmp_path):
    result = subprocess.run([sys.executable, "-m", "service"], cwd=ROOT, capture_output=True, text=True,
                            env=os.environ | {"MODEL_URI": "https://a.blob.core.windows.net/models/m.pt",
                                              "MODEL_PATH": str(tmp_path / "m.pt"), "PORT": "1"}, timeout=60)
    assert result.returncode == 2 and "MODEL_URI" in result.stderr and "set one model source" in result.stderr


@pytest.mark.parametrize(("env", "needle"), [
    ({"MODEL_URI": "https://a.blob.core.windows.net/models/m.pt", "MODEL_SHA256": "ab"}, "MODEL_SHA256='ab'"),
    ({"MODEL_SHA256": "a" * 64}, f"MODEL_SHA256={'a' * 64!r}: Value error, only valid with MODEL_URI"),
    ({"MODEL_LABELS_URI": "https://a.blob.core.windows.net/models/l.txt"}, "only valid with MODEL_URI"),
    ({"MODEL_URI": "ftp://a/models/m.pt"}, "MODEL_URI='ftp://a/models/m.pt'"),
])
def test_repository_settings_are_checked(monkeypatch, env, needle):
    for name in ("MODEL_URI", "MODEL_LABELS_URI", "MODEL_SHA256", "MODEL_PATH"):
        monkeypatch.delenv(name, raising=False)
    for name, value in env.items():
        monkeypatch.setenv(name, value)
    with pytest.raises(ValidationError) as error:
        Settings()
    assert needle in describe_error(error.value)


def test_workload_identity_without_a_token_names_the_identity_and_the_failing_credential(tmp_path):
    # What a pod sees when Entra ID cannot be reached or refuses the federated token: the webhook's variables
    # are set (AZURE_CLIENT_ID, AZURE_TENANT_ID, AZURE_FEDERATED_TOKEN_FILE, AZURE_AUTHORITY_HOST), and
    # DefaultAzureCredential's WorkloadIdentityCredential fails. Here the authority is a closed local port.
    token = tmp_path / "token"
    token.write_text("header.payload.signature")
    client_id = "11111111-2222-3333-4444-555555555555"
    url = "https://aicmdev123456.blob.core.windows.net/models/small/1/model.pt"
    env = {"MODEL_URI": url, "MODEL_PATH": "", "MODEL_CACHE_DIR": str(tmp_path), "MODEL_FETCH_RETRIES": "0",
           "AZURE_CLIENT_ID": client_id, "AZURE_TENANT_ID": "99999999-8888-7777-6666-555555555555",
           "AZURE_FEDERATED_TOKEN_FILE": str(token), "AZURE_AUTHORITY_HOST": f"https://127.0.0.1:{free_port()}/",
           "AZURE_STORAGE_CONNECTION_STRING": "", "PORT": "1"}
    status, errors = _start_up_failure(env)
    assert status == 5
    assert len(errors) == 1, errors
    expected = f"error: {url}: no Azure credential for identity {client_id} (AZURE_CLIENT_ID): "
    assert errors[0].startswith(expected + "WorkloadIdentityCredential: "), errors
