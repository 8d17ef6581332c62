"""Service configuration: environment variables (no prefix) read once by pydantic-settings.

Every field maps to the upper-case environment variable of the same name (``max_batch_size`` ->
``MAX_BATCH_SIZE``). The app receives one ``Settings`` object (``create_app(settings)``, kept in
``app.state.settings``) and route handlers get it through ``service.deps.SettingsDep``, so tests inject
their own. Every variable is listed in docs/configuration.md.
"""

from __future__ import annotations

import tempfile
from pathlib import Path
from typing import Annotated, Literal

from pydantic import Field, SecretStr, ValidationError, ValidationInfo, field_validator
from pydantic_settings import BaseSettings, NoDecode, SettingsConfigDict

from service import cpus, hostcpu
from service.url_policy import AllowList

#: ImageNet channel statistics used by every torchvision classification model (torchvision docs,
#: "ImageNet normalisation"): mean and std of the training set's RGB values scaled to [0, 1].
IMAGENET_MEAN = (0.485, 0.456, 0.406)
IMAGENET_STD = (0.229, 0.224, 0.225)

Triple = Annotated[tuple[float, float, float], NoDecode]
#: ``MODEL_TARGET_CPU`` values: this host's CPU, or one of ``service.hostcpu.TIERS``.
TargetCpu = Literal[("host", *hostcpu.TIERS)]


def available_cpus() -> int:
    """CPUs this process may use: the whole CPUs of its cgroup CPU quota (a pod's CPU limit), at least 1,
    capped by the scheduler affinity; the affinity when there is no quota (``service.cpus``,
    docs/cpu-quota.md)."""
    return cpus.cpu_budget().cpus


class Settings(BaseSettings):
    """Typed service settings; docs/configuration.md describes each variable."""

    model_config = SettingsConfigDict(env_prefix="", case_sensitive=False, extra="ignore",
                                      protected_namespaces=("settings_",))

    model_path: Path | None = Field(None, description="TorchScript, torch.export (.pt2) or state_dict file.")
    model_arch: str = Field("resnet50", description="torchvision architecture (weights or state_dict).")
    model_weights: str = Field("DEFAULT", description="torchvision weights enum member, e.g. IMAGENET1K_V2.")
    model_labels: Path | None = Field(None, description="Labels file, one per line (line i = class i).")
    model_name: str | None = Field(None, pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$",
                                   description="Name in responses and V2 URLs; default file stem or arch.")
    model_version: str = Field("1", pattern=r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")
    resize_size: int = Field(256, ge=1, le=4096, description="Shorter side after resize (px).")
    crop_size: int = Field(224, ge=1, le=4096, description="Centre-crop side (px).")
    norm_mean: Triple = IMAGENET_MEAN
    norm_std: Triple = IMAGENET_STD
    # Defaults measured with `python -m bench` (docs/performance.md): on 2 CPUs ResNet-50 is as fast
    # per image at 8 as at 16 alone, and 8 pipelines better under load (decode overlaps the model).
    max_batch_size: int = Field(8, ge=1, le=1024, description="Images per forward pass, at most.")
    max_batch_delay_ms: float = Field(2.0, ge=0, le=10_000, description="Wait for a batch to fill (ms).")
    max_queue: int = Field(256, ge=1, description="Images admitted and not yet in or queued for a forward "
                           "pass (decoding or waiting) before 503 + Retry-After.")
    request_timeout_ms: float = Field(30_000, gt=0, description="Decode + queue + inference deadline (ms) "
                                      "-> 504.")
    max_body_bytes: int = Field(20 * 1024 * 1024, ge=1, description="Request body limit (bytes) -> 413.")
    max_image_pixels: int = Field(50_000_000, ge=1, description="Decoded width x height limit -> 413.")
    memory_limit_bytes: int | None = Field(None, ge=1, description="Memory the budget of request bodies "
                                           "is carved from (bytes); default: the cgroup memory limit, else "
                                           "physical memory (docs/memory.md).")
    max_connections: int = Field(512, ge=1, description="Open connections at most; more are answered 503 "
                                 "JSON and closed.")
    header_timeout_s: float = Field(20, gt=0, le=600, description="Seconds to receive a request's headers "
                                    "-> 408.")
    body_timeout_s: float = Field(20, gt=0, le=600, description="Seconds to receive a body, extended by "
                                  "1 s per MIN_UPLOAD_BYTES_PER_S bytes received -> 408.")
    min_upload_bytes_per_s: int = Field(65_536, ge=1, description="Slowest upload rate kept (bytes/s), "
                                        "after BODY_TIMEOUT_S.")
    torch_threads: int = Field(default_factory=available_cpus, ge=1, description="Intra-op threads.")
    decode_threads: int = Field(default_factory=lambda: min(4, available_cpus()), ge=1,
                                description="Threads decoding and preprocessing images.")
    model_runtime: Literal["auto", "torch", "openvino"] = Field(
        "auto", description="Inference runtime; auto: OpenVINO when installed, else PyTorch.")
    model_dtype: Literal["auto", "float32", "bfloat16", "int8"] = Field(
        "auto", description="Precision; auto: int8 -> bfloat16 -> float32, the first that passes the "
        "accuracy gate on this CPU; an explicit reduced precision that fails it stops the start-up.")
    calibration_dir: Path | None = Field(None, description="Images for int8 calibration and the accuracy "
                                         "gate's held-out set; default: the photos bundled with the service.")
    model_target_cpu: TargetCpu = Field(
        "host", description="Plan the precisions for a CPU of this tier instead of this host's (compiling an "
        "archive for other nodes, e.g. at image build); bfloat16 is left out on a host without it.")
    calibration_images: int = Field(64, ge=4, le=4096, description="Images in each of the calibration and "
                                    "held-out sets (crops of the files fill up a short folder).")
    gate_margin: float = Field(0.1, ge=0, le=1, description="float32 top-1 lead (probability) that makes a "
                               "held-out image confident.")
    gate_min_confident: float = Field(0.99, ge=0, le=1, description="Top-1 agreement with float32 needed "
                                      "on confident images (fraction).")
    gate_min_overall: float = Field(0.95, ge=0, le=1, description="Top-1 agreement with float32 needed on "
                                    "all held-out images (fraction).")
    channels_last: bool = Field(True, description="Run the model in channels_last memory format.")
    torchscript_freeze: bool = Field(
        True, description="TorchScript models: torch.jit.freeze + optimize_for_inference (BN folded).")
    api_key: SecretStr | None = Field(None, description="If set, /predict and V2 infer need "
                                      "`Authorization: Bearer <key>` (401 otherwise).")
    cors_origins: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated origins allowed by CORS; empty: CORS off.")
    shutdown_delay_s: float = Field(0, ge=0, le=300, description="After SIGTERM, seconds to keep serving "
                                    "with /readyz at 503 before closing the listener.")
    inference_stall_ms: float | None = Field(
        None, gt=0, description="Readiness turns 503 while the inference thread has had a forward pass for "
        "longer than this without finishing one (ms); default REQUEST_TIMEOUT_MS.")
    host: str = "0.0.0.0"
    port: int = Field(8080, ge=0, le=65535)
    metrics_port: int = Field(9090, ge=0, le=65535, description="Port of the Prometheus /metrics listener "
                              "(same HOST; never the API port; 0: any free port, logged).")
    access_log_probes: bool = Field(False, description="Also log the probes (/healthz, /readyz, "
                                    "/v2/health/*) in the access log.")
    log_level: Literal["critical", "error", "warning", "info", "debug"] = "info"
    log_format: Literal["auto", "json", "text"] = Field(
        "auto", description="json: one JSON object per line; text: plain; auto: text on a terminal.")
    docs_enabled: bool = Field(True, description="Serve Swagger UI at /docs (assets bundled, no CDN).")

    # Image URL input (service/url_fetch.py): POST /predict with {"url": ...}; docs/url-input.md.
    image_url_fetch: bool = Field(False, description="Accept JSON {\"url\": ...} on /predict and show the "
                                  "page's URL field; off: such a body is a 415.")
    image_url_allowed_hosts: Annotated[list[str], NoDecode] = Field(
        default_factory=list, description="Comma-separated host names, IP addresses or CIDRs fetched even "
        "when not public (loopback, private...); cloud metadata addresses never are.")
    image_url_timeout_s: float = Field(10.0, gt=0, le=300, description="Whole fetch of an image URL, "
                                       "redirects included (s) -> 504.")
    image_url_max_redirects: int = Field(3, ge=0, le=10, description="Redirects followed, each re-checked.")

    @field_validator("model_path", "model_labels", "api_key", "memory_limit_bytes", "calibration_dir",
                     mode="before")
    @classmethod
    def _empty_is_none(cls, value: object) -> object:
        """An empty variable (e.g. ``MODEL_PATH=`` from a Dockerfile default) means "not set"."""
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("cors_origins", mode="before")
    @classmethod
    def _split_origins(cls, value: object) -> object:
        """``https://a.example,https://b.example`` -> a list; blanks dropped."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("image_url_allowed_hosts", mode="before")
    @classmethod
    def _split_hosts(cls, value: object) -> object:
        """``images.internal,10.0.0.0/8`` -> a list; blanks dropped."""
        if isinstance(value, str):
            return [part.strip() for part in value.split(",") if part.strip()]
        return value

    @field_validator("image_url_allowed_hosts")
    @classmethod
    def _valid_hosts(cls, value: list[str]) -> list[str]:
        AllowList.parse(value)  # ValueError naming the entry that is no host, IP or CIDR
        return value

    @field_validator("log_level", "log_format", "model_runtime", "model_dtype", "model_target_cpu",
                     mode="before")
    @classmethod
    def _lower(cls, value: object) -> object:
        return value.lower() if isinstance(value, str) else value

    @field_validator("metrics_port")
    @classmethod
    def _own_metrics_port(cls, value: int, info: ValidationInfo) -> int:
        if value and value == info.data.get("port"):
            raise ValueError("must differ from PORT: /metrics is kept off the API port")
        return value

    @property
    def stall_s(self) -> float:
        """``INFERENCE_STALL_MS`` in seconds, ``REQUEST_TIMEOUT_MS`` when unset: past it a forward pass
        answers no request in time anyway."""
        return (self.inference_stall_ms or self.request_timeout_ms) / 1000

    @field_validator("norm_mean", "norm_std", mode="before")
    @classmethod
    def _split_triple(cls, value: object) -> object:
        """Accept ``0.5,0.5,0.5`` or ``[0.5, 0.5, 0.5]`` from the environment."""
        if isinstance(value, str):
            return [part for part in value.strip().strip("[]()").replace(",", " ").split() if part]
        return value

    @field_validator("norm_std")
    @classmethod
    def _positive_std(cls, value: tuple[float, float, float]) -> tuple[float, float, float]:
        if any(v <= 0 for v in value):
            raise ValueError("every std must be > 0")
        return value

    @property
    def resolved_model_name(self) -> str:
        """``MODEL_NAME``, else the model file's stem, else ``MODEL_ARCH``."""
        if self.model_name:
            return self.model_name
        return self.model_path.stem if self.model_path else self.model_arch

    def uses_default_preprocessing(self) -> bool:
        """True when none of RESIZE_SIZE / CROP_SIZE / NORM_MEAN / NORM_STD was set explicitly."""
        return not ({"resize_size", "crop_size", "norm_mean", "norm_std"} & self.model_fields_set)

    # Model repository (service/model_repository.py): MODEL_URI is fetched into MODEL_CACHE_DIR at start-up.
    model_uri: str | None = Field(None, pattern=r"^https?://[^/\s]+/[^/\s]+/\S+$", description="Blob URL "
                                  "of the model: https://<account>.blob.core.windows.net/<container>/<path>.")
    model_labels_uri: str | None = Field(None, pattern=r"^https?://[^/\s]+/[^/\s]+/\S+$",
                                         description="Blob URL of the labels file.")
    model_sha256: str | None = Field(None, pattern=r"^[0-9a-fA-F]{64}$",
                                     description="Expected SHA-256 (64 hex) of the MODEL_URI blob.")
    model_cache_dir: Path = Field(Path(tempfile.gettempdir()) / "model-cache",
                                  description="Where MODEL_URI is downloaded (an emptyDir in the pod).")
    model_fetch_retries: int = Field(5, ge=0, le=20, description="Retries of a failed download request.")
    model_fetch_backoff_s: float = Field(1.0, ge=0, le=60, description="First retry wait (s); retry n "
                                         "waits this + 2**n s.")
    azure_storage_connection_string: SecretStr | None = Field(
        None, description="Use this (e.g. Azurite's) instead of DefaultAzureCredential for MODEL_URI.")
    # Calibration images from a Blob prefix (service/calibration_repository.py), same clients as MODEL_URI.
    calibration_uri: str | None = Field(None, pattern=r"^https?://[^/\s]+/[^/\s]+/\S+$", description="Blob "
                                        "prefix of calibration images: https://<account>.blob.core.windows.net"
                                        "/<container>/<prefix>/; fetched into MODEL_CACHE_DIR.")
    calibration_max_files: int = Field(256, ge=2, le=100_000, description="Images fetched from "
                                       "CALIBRATION_URI at most (the first by name; beyond 2 x "
                                       "CALIBRATION_IMAGES none is used anyway).")
    calibration_max_bytes: int = Field(256 * 1024 * 1024, ge=1, description="Bytes fetched from "
                                       "CALIBRATION_URI at most (images in name order until the next would "
                                       "pass it).")

    @field_validator("model_uri", "model_labels_uri", "model_sha256", "azure_storage_connection_string",
                     "calibration_uri", mode="before")
    @classmethod
    def _unset_if_empty(cls, value: object) -> object:
        return None if isinstance(value, str) and not value.strip() else value

    @field_validator("model_uri")
    @classmethod
    def _one_model_source(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and info.data.get("model_path"):
            raise ValueError("MODEL_URI and MODEL_PATH are both set; set one model source")
        return value

    @field_validator("calibration_uri")
    @classmethod
    def _one_calibration_source(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and info.data.get("calibration_dir"):
            raise ValueError("CALIBRATION_URI and CALIBRATION_DIR are both set; set one calibration source")
        return value

    @field_validator("model_labels_uri", "model_sha256")
    @classmethod
    def _needs_model_uri(cls, value: str | None, info: ValidationInfo) -> str | None:
        if value and not info.data.get("model_uri"):
            raise ValueError("only valid with MODEL_URI")
        return value.lower() if value and info.field_name == "model_sha256" else value


def describe_error(error: ValidationError) -> str:
    """One line naming each invalid environment variable, e.g. ``MAX_BATCH_SIZE: Input should be ...``."""
    parts = []
    for item in error.errors():
        name = str(item["loc"][0]).upper() if item["loc"] else "settings"
        secret = any(word in name for word in ("KEY", "SECRET", "TOKEN", "PASSWORD"))
        shown = "<hidden>" if secret else repr(item.get("input"))  # never echo a secret into logs
        parts.append(f"{name}={shown}: {item['msg']}")
    return "invalid setting " + "; ".join(parts)
