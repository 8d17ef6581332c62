"""Model repository: fetch ``MODEL_URI`` (and ``MODEL_LABELS_URI``) from Azure Blob Storage at start-up.

URL forms (what ``azure-storage-blob``'s ``BlobClient.from_blob_url`` parses):
- ``https://<account>.blob.core.windows.net/<container>/<path>`` (an Azure storage account);
- ``http://127.0.0.1:10000/devstoreaccount1/<container>/<path>`` (Azurite, the emulator: path-style).

Authentication: ``AZURE_STORAGE_CONNECTION_STRING`` when set (the emulator's well-known key), else
``azure-identity``'s ``DefaultAzureCredential``: workload identity in an AKS pod (the webhook injects
``AZURE_CLIENT_ID``, ``AZURE_TENANT_ID``, ``AZURE_FEDERATED_TOKEN_FILE``), ``az login`` on a laptop.

The blob is downloaded once (parallel range requests) into ``MODEL_CACHE_DIR/<account>/<container>/<path>``
(an ``emptyDir`` in the pod: the root file system stays read-only), then hashed; with ``MODEL_SHA256`` a file
already there with that digest (a restarted container keeps its ``emptyDir``) is reused. The service
then loads the local file as it loads ``MODEL_PATH``. ``CALIBRATION_URI`` (``service.calibration_repository``)
lists and downloads a prefix's images with the same clients, cache and errors.

Failures raise a ``ModelFetchError`` subclass whose ``exit_status`` ``python -m service`` returns:
4 not found, 5 access denied, 6 digest mismatch, 7 unreachable after the retries. Retries: the storage
SDK's own ``ExponentialRetry`` policy (connect, read and 408/429/5xx answers), ``MODEL_FETCH_RETRIES``
attempts after the first, retry n waiting ``MODEL_FETCH_BACKOFF_S + 2**n`` s (defaults: 3, 5, 9, 17, 33 s).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import quote

from azure.core.exceptions import (
    AzureError,
    ClientAuthenticationError,
    HttpResponseError,
    ResourceNotFoundError,
    ServiceRequestError,
    ServiceResponseError,
)
from azure.storage.blob import BlobClient, BlobServiceClient, ContainerClient, ExponentialRetry

from service.errors import ModelLoadError
from service.settings import Settings

logger = logging.getLogger("service")

#: Built-in role the identity needs on the container (Azure built-in roles, "Storage Blob Data Reader").
READER_ROLE = "Storage Blob Data Reader"
CHUNK_BYTES = 4 * 1024 * 1024  # read size when hashing a file
#: Parallel range requests per download: 98 MiB from Azurite took 3.6 s with 4 against 5.0-5.6 s streamed
#: with 1 and hashed on the fly (2 CPUs under load); writes come out of order, so the file is hashed after.
FETCH_CONCURRENCY = 4
#: End of a not-found line for ``MODEL_URI`` (``CALIBRATION_URI`` has its own).
PUBLISH_HINT = "check the URL, or publish it with python -m tools.publish_model"


class ModelFetchError(ModelLoadError):
    """The model could not be fetched from the repository; ``exit_status`` for ``python -m service``."""

    exit_status = 3


class BlobNotFound(ModelFetchError):
    """The container or the blob does not exist (HTTP 404); the message names the URL."""

    exit_status = 4


class AccessDenied(ModelFetchError):
    """No credential, or the identity lacks Storage Blob Data Reader on the container (HTTP 401/403)."""

    exit_status = 5


class DigestMismatch(ModelFetchError):
    """The downloaded bytes' SHA-256 differs from ``MODEL_SHA256``; the message gives both."""

    exit_status = 6


class RepositoryUnreachable(ModelFetchError):
    """Network errors (or 5xx answers) persisted through every retry."""

    exit_status = 7


@dataclass(frozen=True)
class Fetched:
    """A blob fetched into the cache: local ``path``, ``size`` (bytes), ``sha256`` (hex), ``seconds``."""

    path: Path
    size: int
    sha256: str
    seconds: float
    cached: bool = False


def fetch_model(settings: Settings) -> Settings:
    """Fetch ``MODEL_URI`` (verified against ``MODEL_SHA256``) and ``MODEL_LABELS_URI`` into
    ``MODEL_CACHE_DIR``; return settings whose ``model_path`` / ``model_labels`` name the local files.

    Raises a ``ModelFetchError`` subclass (one line; ``exit_status`` 4-7).
    """
    assert settings.model_uri is not None
    quiet_sdk_logs(settings)
    model = fetch_blob(settings.model_uri, settings, expected_sha256=settings.model_sha256)
    logger.info("model %s: %s (%d bytes, sha256 %s, %.2f s)", "reused" if model.cached else "fetched",
                settings.model_uri, model.size, model.sha256, model.seconds)
    update: dict[str, object] = {"model_path": model.path}
    if settings.model_labels_uri:
        labels = fetch_blob(settings.model_labels_uri, settings)
        update["model_labels"] = labels.path
    return settings.model_copy(update=update)


def quiet_sdk_logs(settings: Settings) -> None:
    """Below ``LOG_LEVEL=debug``, silence the Azure SDKs' own logs (each request at INFO, each failed
    credential of the chain at WARNING): the fetch logs one line, a failure raises one."""
    if settings.log_level != "debug":
        logging.getLogger("azure").setLevel(logging.ERROR)


def _client_options(settings: Settings) -> dict:
    """Keyword arguments of every storage client: ``ExponentialRetry`` with the settings' retries and
    backoff, a 10 s connect and 60 s read timeout."""
    retry = ExponentialRetry(initial_backoff=settings.model_fetch_backoff_s, increment_base=2,
                             retry_total=settings.model_fetch_retries, random_jitter_range=0,
                             retry_connect=settings.model_fetch_retries,
                             retry_read=settings.model_fetch_retries,
                             retry_status=settings.model_fetch_retries)
    return {"retry_policy": retry, "connection_timeout": 10, "read_timeout": 60}


def blob_client(url: str, settings: Settings) -> BlobClient:
    """A ``BlobClient`` for ``url`` with the retry policy of ``settings``; the connection string (when
    set) supplies endpoint and key, the URL the container and blob path."""
    options = _client_options(settings)
    parsed = BlobClient.from_blob_url(url)
    if settings.azure_storage_connection_string is not None:
        service = BlobServiceClient.from_connection_string(
            settings.azure_storage_connection_string.get_secret_value(), **options)
        return service.get_blob_client(parsed.container_name, parsed.blob_name)
    from azure.identity import DefaultAzureCredential

    try:
        return BlobClient.from_blob_url(url, credential=DefaultAzureCredential(), **options)
    except ValueError as exc:  # "Token credential is only supported with HTTPS."
        raise ModelFetchError(f"{url}: {exc} (an emulator needs AZURE_STORAGE_CONNECTION_STRING)") from None


def container_client(url: str, settings: Settings) -> tuple[ContainerClient, str]:
    """The container of the blob or prefix ``url`` (one credential and connection pool for all its blobs)
    and the path after the container: ``https://a.blob.core.windows.net/models/calibration/`` ->
    (client of ``models``, ``"calibration/"``; a trailing slash is kept, so the prefix matches a folder)."""
    options = _client_options(settings)
    parsed = BlobClient.from_blob_url(url)
    prefix = parsed.blob_name + ("/" if url.endswith("/") and parsed.blob_name else "")
    if settings.azure_storage_connection_string is not None:
        service = BlobServiceClient.from_connection_string(
            settings.azure_storage_connection_string.get_secret_value(), **options)
        return service.get_container_client(parsed.container_name), prefix
    from azure.identity import DefaultAzureCredential

    quoted = quote(parsed.blob_name, safe="~/")  # how the SDK writes the blob part of its URL
    container_url = parsed.url.removesuffix("/" + quoted)
    try:
        return ContainerClient.from_container_url(container_url, credential=DefaultAzureCredential(),
                                                  **options), prefix
    except ValueError as exc:  # "Token credential is only supported with HTTPS."
        raise ModelFetchError(f"{url}: {exc} (an emulator needs AZURE_STORAGE_CONNECTION_STRING)") from None


def fetch_blob(url: str, settings: Settings, expected_sha256: str | None = None) -> Fetched:
    """Download ``url`` into the cache (atomically: a temporary file renamed when complete).

    Raises ``BlobNotFound``, ``AccessDenied``, ``DigestMismatch`` or ``RepositoryUnreachable``.
    """
    return download(blob_client(url, settings), url, settings, expected_sha256)


def download(client: BlobClient, url: str, settings: Settings, expected_sha256: str | None = None,
             hint: str = PUBLISH_HINT) -> Fetched:
    """``fetch_blob`` with a given ``client`` (e.g. one of a ``container_client``'s blobs) for ``url``;
    ``hint`` ends a not-found line."""
    started = time.perf_counter()
    target = cache_path(settings.model_cache_dir, client)
    expected = expected_sha256.lower() if expected_sha256 else None
    if expected and target.is_file():
        size, digest = file_sha256(target)
        if digest == expected:
            return Fetched(target, size, digest, time.perf_counter() - started, cached=True)
    target.parent.mkdir(parents=True, exist_ok=True)
    partial = target.with_name(f".{target.name}.{os.getpid()}.part")
    try:
        with client, partial.open("wb") as out:
            client.download_blob(max_concurrency=FETCH_CONCURRENCY).readinto(out)
        size, actual = file_sha256(partial)  # a second pass from the page cache: ~0.2 s per 100 MB
    except AzureError as exc:
        partial.unlink(missing_ok=True)
        raise translate(exc, url, settings, hint) from None
    except OSError as exc:
        partial.unlink(missing_ok=True)
        raise ModelFetchError(f"MODEL_CACHE_DIR={settings.model_cache_dir}: cannot write {url} "
                              f"({exc.strerror or exc})") from None
    if expected and actual != expected:
        partial.unlink(missing_ok=True)
        raise DigestMismatch(f"MODEL_SHA256 mismatch for {url}: expected {expected}, got {actual} "
                             f"({size} bytes); publish a new version or correct modelSha256")
    partial.replace(target)
    return Fetched(target, size, actual, time.perf_counter() - started)


def cache_path(cache_dir: Path, client: BlobClient) -> Path:
    """``<cache_dir>/<account>/<container>/<blob path>``; a blob name escaping the cache is refused."""
    root = cache_dir.resolve()
    path = (root / client.account_name / client.container_name / client.blob_name).resolve()
    if not path.is_relative_to(root) or path == root:
        raise ModelFetchError(f"blob name {client.blob_name!r} does not map to a file under {root}")
    return path


def file_sha256(path: Path) -> tuple[int, str]:
    """(size in bytes, SHA-256 hex digest) of the file at ``path``."""
    digest = hashlib.sha256()
    size = 0
    with path.open("rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
            size += len(chunk)
    return size, digest.hexdigest()


def sha256_file(path: Path) -> str:
    """SHA-256 hex digest of the file at ``path`` (``file_sha256`` without the size): what ``MODEL_SHA256``
    and a compiled archive's report record."""
    return file_sha256(path)[1]


def _identity(settings: Settings) -> str:
    if settings.azure_storage_connection_string is not None:
        return "the account key of AZURE_STORAGE_CONNECTION_STRING"
    client_id = os.environ.get("AZURE_CLIENT_ID")
    if client_id:
        return f"identity {client_id} (AZURE_CLIENT_ID)"
    return "the DefaultAzureCredential identity (az login user or managed identity)"


def translate(exc: AzureError, url: str, settings: Settings, hint: str = PUBLISH_HINT) -> ModelFetchError:
    """Map an Azure SDK error for ``url`` to one ``ModelFetchError`` line (see the module doc); ``hint``
    ends a not-found line."""
    code = getattr(exc, "error_code", None)
    status = getattr(exc, "status_code", None)
    if isinstance(exc, ResourceNotFoundError) or status == 404:
        what = "container" if code == "ContainerNotFound" else "blob"
        return BlobNotFound(f"{url}: {what} not found ({code or 404}); {hint}")
    if isinstance(exc, ClientAuthenticationError) and status is None:  # no token at all
        reason = _credential_failure(exc)
        return AccessDenied(f"{url}: no Azure credential for {_identity(settings)}: {reason}")
    if isinstance(exc, ClientAuthenticationError) or status in (401, 403):
        return AccessDenied(f"{url}: access denied ({code or status}) for {_identity(settings)}: it needs "
                            f"the {READER_ROLE} role on the container")
    if isinstance(exc, ServiceRequestError | ServiceResponseError) or (
            isinstance(exc, HttpResponseError) and (status or 0) >= 500):
        return RepositoryUnreachable(
            f"{url}: unreachable after {settings.model_fetch_retries} retries: {_first_line(exc)}")
    return ModelFetchError(f"{url}: download failed ({code or status}): {_first_line(exc)}")


def _credential_failure(exc: BaseException) -> str:
    """The credential that stopped `DefaultAzureCredential`'s chain and why (its message lists each attempted
    credential on a tab-indented line; the last one is where it stopped), else the first line."""
    text = str(getattr(exc, "message", None) or exc)
    attempts = [line.strip() for line in text.splitlines() if line.startswith("\t")]
    return attempts[-1][:300] if attempts else _first_line(exc)


def _first_line(exc: BaseException) -> str:
    text = str(getattr(exc, "message", None) or exc).strip() or type(exc).__name__
    return text.splitlines()[0][:300]
