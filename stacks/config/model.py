"""Where the model comes from: a file baked into the image, or the model repository (Blob Storage read with
workload identity)."""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

from stacks.config.reader import ConfigError, Reader


@dataclass(frozen=True)
class ModelSettings:
    """Where the model comes from, and the model repository (Blob Storage + workload identity).

    `repository`: declare the storage account, `models` container and its reader (Azure targets only;
    the local target never declares Azure resources). `uri` / `labels_uri` / `sha256`: MODEL_URI,
    MODEL_LABELS_URI, MODEL_SHA256 of the pod (None: not set). `file` / `labels_file`: names under
    `service/model-store/` baked into the image (MODEL_FILE / MODEL_LABELS_FILE build arguments).
    `calibration_uri`: CALIBRATION_URI, a blob prefix of calibration images for a pod that quantizes the
    model it fetches (service/calibration_repository.py).
    """

    repository: bool
    storage_sku: str
    uri: str | None = None
    labels_uri: str | None = None
    sha256: str | None = None
    file: str | None = None
    labels_file: str | None = None
    calibration_uri: str | None = None


#: Storage account SKUs offered for the model repository (azure-native storage.SkuName); LRS is the cheapest.
STORAGE_SKUS = ("Standard_LRS", "Standard_ZRS", "Standard_GRS", "Standard_GZRS")

MODEL_STORE = Path(__file__).resolve().parents[2] / "service" / "model-store"
# Blob URLs the service accepts (service/model_repository.py): an Azure account, or an emulator (path-style:
# http(s)://host:port/<account>/...); then a container (3-63 lower-case letters, digits, dashes) and a path.
_BLOB_URL = re.compile(
    r"^(https://[a-z0-9]{3,24}\.blob\.core\.windows\.net|https?://[A-Za-z0-9.-]+:\d{1,5}/[a-z0-9]{3,24})"
    r"/[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])/\S+$"
)
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_STORE_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _store_file(r: Reader, name: str) -> str | None:
    """A file name under service/model-store/ that exists (the Docker build copies it into the image)."""
    value = r.str(name)
    if value is None:
        return None
    if not _STORE_FILE.match(value) or not (MODEL_STORE / value).is_file():
        raise ConfigError(f"{r.key(name)} must name a file in service/model-store/, got {value!r}")
    return value


def model_settings(r: Reader, target: str) -> ModelSettings:
    """`modelRepository`, `modelStorageSku`, `modelUri`, `modelLabelsUri`,
    `modelSha256`, `modelFile`, `modelLabelsFile`: one model source, each value checked."""
    uri, labels_uri = r.str("modelUri"), r.str("modelLabelsUri")
    for key, value in (("modelUri", uri), ("modelLabelsUri", labels_uri)):
        if value is not None and not _BLOB_URL.match(value):
            raise ConfigError(
                f"{r.key(key)} is not a blob URL (https://<account>.blob.core.windows.net/"
                f"<container>/<path>, or an emulator's http://host:port/<account>/..."
                f"): {value!r}"
            )
    sha256 = r.str("modelSha256")
    if sha256 is not None and not _SHA256.match(sha256):
        raise ConfigError(f"{r.key('modelSha256')} must be 64 hexadecimal digits (SHA-256), got {sha256!r}")
    for key, value in (("modelLabelsUri", labels_uri), ("modelSha256", sha256)):
        if value is not None and uri is None:
            raise ConfigError(f"{r.key(key)} needs {r.key('modelUri')}")
    calibration_uri = _calibration_uri(r, uri)
    model_file, labels_file = _store_file(r, "modelFile"), _store_file(r, "modelLabelsFile")
    if model_file is not None and uri is not None:
        raise ConfigError(
            f"{r.key('modelFile')} and {r.key('modelUri')} are both set: choose one model source"
        )
    if labels_file is not None and model_file is None:
        raise ConfigError(f"{r.key('modelLabelsFile')} needs {r.key('modelFile')}")
    return ModelSettings(
        repository=r.bool("modelRepository") and target in ("azure", "containerapps"),
        storage_sku=r.choice("modelStorageSku", STORAGE_SKUS),
        uri=uri,
        labels_uri=labels_uri,
        sha256=sha256.lower() if sha256 else None,
        file=model_file,
        labels_file=labels_file,
        calibration_uri=calibration_uri,
    )


def _calibration_uri(r: Reader, model_uri: str | None) -> str | None:
    """`calibrationUri`: a blob prefix ending in `/`, for a model fetched from `modelUri` (a baked model is
    compiled at the image build, so no pod of it calibrates; the pod reads the prefix with the identity
    that reads the model)."""
    value = r.str("calibrationUri")
    if value is None:
        return None
    if not _BLOB_URL.match(value) or not value.endswith("/"):
        raise ConfigError(f"{r.key('calibrationUri')} is not a blob prefix ending in '/' (https://<account>"
                          f".blob.core.windows.net/<container>/<prefix>/): {value!r}")
    if model_uri is None:
        raise ConfigError(f"{r.key('calibrationUri')} needs {r.key('modelUri')}: only a pod that fetches an "
                          "uncompiled model calibrates")
    return value
