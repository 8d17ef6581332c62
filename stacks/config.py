"""Stack configuration: read once from `pulumi.Config`, validated into a typed, frozen object.

Every check runs before any resource is declared, so a mistake fails `pulumi preview` / `pulumi up`
immediately with a `ConfigError` whose message starts with the full key, e.g.
`aks-image-classifier:minReplicas (5) must be <= aks-image-classifier:maxReplicas (3)`.
Components receive the parts they need and never call `pulumi.Config` themselves.
"""

from __future__ import annotations

import functools
import ipaddress
import json
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml
from pulumi_azure_native import containerregistry, containerservice

PROJECT = "aks-image-classifier"
TARGETS = ("azure", "local")
# Config strings map to the SDK's enum types here, in one place (a typo is a ConfigError naming the key,
# a wrong enum member an import error, never an Azure 400). Classic is a retired ACR SKU: not offered.
REGISTRY_SKUS = {
    sku.value: sku
    for sku in (
        containerregistry.SkuName.BASIC,
        containerregistry.SkuName.STANDARD,
        containerregistry.SkuName.PREMIUM,
    )
}
CLUSTER_TIERS = {tier.value: tier for tier in containerservice.ManagedClusterSKUTier}
# ManagedClusterAutoUpgradeProfile.upgradeChannel values (containerservice.UpgradeChannel).
UPGRADE_CHANNELS = {channel.value: channel for channel in containerservice.UpgradeChannel}
#: Channels that move the cluster's Kubernetes version (AKS "Automatically upgrade an AKS cluster":
#: `node-image` only renews node images, `none` nothing): a pinned version must be ignored after creation.
VERSION_UPGRADE_CHANNELS = frozenset(
    {
        containerservice.UpgradeChannel.PATCH,
        containerservice.UpgradeChannel.STABLE,
        containerservice.UpgradeChannel.RAPID,
    }
)
#: `localCluster` (target local): how the built image reaches the cluster's nodes.
LOCAL_CLUSTERS = ("kind", "minikube", "docker-desktop")

#: Oldest minor accepted. AKS creates clusters only on minors in standard support (about 12 months each;
#: upstream end of life 1.33 2026-06-28, 1.34 2026-10-27, per kubernetes.io/releases), and the program needs
#: the preStop sleep hook (GA in 1.30) and autoscaling/v2. `az aks get-versions -l <region>` is the authority.
MIN_K8S_MINOR = 34
#: The project file whose `config:` block holds every default (the one source of truth; the Pulumi CLI
#: applies the same defaults to the stack before the program runs).
PROJECT_FILE = Path(__file__).resolve().parent.parent / "Pulumi.yaml"
MIN_API_KEY_LENGTH = 16
_K8S_VERSION = re.compile(r"^1\.(\d{1,2})(\.\d{1,3})?$")
_VM_SIZE = re.compile(r"^Standard_[A-Za-z][A-Za-z0-9_-]*$")
_REGISTRY_NAME = re.compile(r"^[a-zA-Z0-9]{5,50}$")
_DNS_LABEL = re.compile(r"^[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?$")
_ZONE = re.compile(r"^[1-3]$")
# Kubernetes resource.Quantity for CPU ("500m", "1", "1.5") and memory ("512Mi", "2Gi", "1G").
_CPU = re.compile(r"^(\d+(\.\d+)?|\d+m)$")
_MEMORY = re.compile(r"^\d+(\.\d+)?(Ki|Mi|Gi|Ti|k|M|G|T)?$")
_MEMORY_FACTOR = {
    "": 1,
    "k": 10**3,
    "M": 10**6,
    "G": 10**9,
    "T": 10**12,
    "Ki": 2**10,
    "Mi": 2**20,
    "Gi": 2**30,
    "Ti": 2**40,
}


#: Seconds the pod's preStop hook sleeps so endpoints and the Azure load balancer stop routing to it
#: before SIGTERM (Kubernetes "Pod termination" docs: endpoint removal races the signal).
PRE_STOP_SLEEP_S = 5
#: Seconds the service needs after its last request drains (uvicorn shutdown, interpreter exit). The service
#: has its own copy (service/server.py `DRAIN_MARGIN_S`, its uvicorn graceful-shutdown margin);
#: tests/stacks/test_deploy_path.py keeps the two equal.
DRAIN_MARGIN_S = 5


class ConfigError(ValueError):
    """A stack setting is missing or invalid; the message starts with the full config key."""


def cpu_millicores(value: str) -> int:
    """Parse a Kubernetes CPU quantity ("250m", "1", "1.5") into millicores (int)."""
    if value.endswith("m"):
        return int(value[:-1])
    return round(float(value) * 1000)


def memory_bytes(value: str) -> int:
    """Parse a Kubernetes memory quantity ("512Mi", "2Gi", "1G", "1048576") into bytes."""
    match = re.match(r"^(\d+(?:\.\d+)?)([A-Za-z]*)$", value)
    if not match or match.group(2) not in _MEMORY_FACTOR:
        raise ValueError(f"not a memory quantity: {value!r}")
    return round(float(match.group(1)) * _MEMORY_FACTOR[match.group(2)])


@dataclass(frozen=True)
class ClusterSettings:
    """AKS settings (target `azure` only). VM sizes are Azure SKU names, counts are nodes."""

    kubernetes_version: str | None  # None: AKS's default for new clusters
    tier: containerservice.ManagedClusterSKUTier
    upgrade_channel: containerservice.UpgradeChannel
    system_vm_size: str
    system_node_count: int
    node_vm_size: str
    node_min_count: int
    node_max_count: int
    zones: tuple[str, ...]
    log_retention_days: int

    @property
    def upgrades_versions(self) -> bool:
        """True when the upgrade channel moves the Kubernetes version (patch, stable, rapid): the cluster's
        `kubernetesVersion` and the pool's `orchestratorVersion` then belong to AKS after creation."""
        return self.upgrade_channel in VERSION_UPGRADE_CHANNELS


@dataclass(frozen=True)
class WorkloadSettings:
    """The Kubernetes workload: replica bounds, container resources, HPA and service settings."""

    app_name: str
    namespace: str
    replicas: int
    min_replicas: int
    max_replicas: int
    target_cpu_utilization: int  # percent of the CPU request, which equals the limit (what the pod can use)
    scale_down_stabilization_s: int
    cpu_request: str
    cpu_limit: str
    memory_request: str
    memory_limit: str
    model_name: str
    model_version: str
    model_arch: str
    max_batch_size: int
    max_batch_delay_ms: int
    max_queue: int
    request_timeout_ms: int
    termination_grace_s: int
    allowed_source_ranges: tuple[str, ...] = ()

    @property
    def torch_threads(self) -> int:
        """TORCH_THREADS: the CPU limit in whole cores, rounded up (at least 1)."""
        return max(1, -(-cpu_millicores(self.cpu_limit) // 1000))


@dataclass(frozen=True)
class StackConfig:
    """Everything the program needs, validated. `location` is `azure-native:location` (azure only)."""

    stack: str
    target: str
    location: str | None
    kubernetes_version: str | None  # None: AKS's default (azure); the manifests target MIN_K8S_MINOR
    registry_sku: containerregistry.SkuName
    registry_name: str | None
    image_repository: str
    kube_context: str | None
    cluster: ClusterSettings | None
    workload: WorkloadSettings
    deploy: DeploySettings  # image delivery: buildOnPreview, localCluster
    api_key: Any = None  # pulumi.Output[str] marked secret, or None (no API key: endpoints open)
    model: ModelSettings | None = None  # None only for callers that build a StackConfig by hand
    security: SecuritySettings | None = None  # always set by load_config

    @property
    def is_azure(self) -> bool:
        return self.target == "azure"

    @property
    def manifest_minor(self) -> int:
        """Kubernetes minor the workload's manifests must be valid for: the pinned one, else the oldest
        the program accepts (AKS's default is at least that)."""
        if self.kubernetes_version is None:
            return MIN_K8S_MINOR
        return int(self.kubernetes_version.split(".")[1])


Getter = Callable[[str], Any]


@functools.cache
def project_defaults(path: Path = PROJECT_FILE) -> dict[str, Any]:
    """`{full key: default}` from the `config:` block of `Pulumi.yaml` (YAML-typed: int, str, list)."""
    document = yaml.safe_load(path.read_text())
    return {
        (key if ":" in key else f"{PROJECT}:{key}"): spec.get("default")
        for key, spec in (document.get("config") or {}).items()
        if isinstance(spec, dict)
    }


class _Reader:
    """Typed access to raw config values that names the key on error.

    A value is the stack's (text, as Pulumi stores it) or else the key's default in `Pulumi.yaml`; an empty
    string means "not set" (e.g. `kubernetesVersion: ""` lets AKS choose).
    """

    def __init__(self, get: Getter, defaults: dict[str, Any]):
        self._get = get
        self._defaults = defaults

    def key(self, name: str) -> str:
        return name if ":" in name else f"{PROJECT}:{name}"

    def raw(self, name: str) -> Any:
        key = self.key(name)
        value = self._get(key)
        if value is None:
            if key.startswith(f"{PROJECT}:") and key not in self._defaults:
                raise ConfigError(f"{key} is not declared in Pulumi.yaml (a typo, or a key to declare there)")
            value = self._defaults.get(key)
        return value

    def str(self, name: str) -> str | None:
        value = self.raw(name)
        if value is None or value == "":
            return None
        return str(value)

    def required(self, name: str) -> str:
        value = self.str(name)
        if value is None:
            raise ConfigError(f"{self.key(name)} must be set (declare a default in Pulumi.yaml)")
        return value

    def int(self, name: str, minimum: int | None = None, maximum: int | None = None) -> int:
        value = self.raw(name)
        try:
            result = int(str(value))
        except ValueError:
            raise ConfigError(f"{self.key(name)} must be an integer, got {value!r}") from None
        if minimum is not None and result < minimum:
            raise ConfigError(f"{self.key(name)} must be >= {minimum}, got {result}")
        if maximum is not None and result > maximum:
            raise ConfigError(f"{self.key(name)} must be <= {maximum}, got {result}")
        return result

    def bool(self, name: str) -> bool:
        """A `boolean` key: YAML true/false (a default) or the text "true"/"false" (a stack value)."""
        value = self.raw(name)
        if isinstance(value, bool):
            return value
        if str(value).lower() in ("true", "false"):
            return str(value).lower() == "true"
        raise ConfigError(f"{self.key(name)} must be true or false, got {value!r}")

    def list(self, name: str) -> tuple[str, ...]:
        value = self.raw(name)
        if value is None or value == "":
            return ()
        if isinstance(value, str):
            try:
                value = json.loads(value)
            except json.JSONDecodeError:
                raise ConfigError(f"{self.key(name)} must be a list, got {value!r}") from None
        if not isinstance(value, list) or not all(isinstance(v, str | int) for v in value):
            raise ConfigError(f"{self.key(name)} must be a list of strings, got {value!r}")
        return tuple(str(v) for v in value)

    def choice(self, name: str, choices: tuple[str, ...] | dict[str, Any]) -> str:
        value = self.str(name)
        if value not in choices:
            raise ConfigError(f"{self.key(name)} must be one of {', '.join(choices)}; got {value!r}")
        return value

    def match(self, name: str, pattern: re.Pattern[str], what: str) -> str:
        value = self.required(name)
        if not pattern.match(value):
            raise ConfigError(f"{self.key(name)} is not a valid {what}: {value!r}")
        return value


def _cluster_settings(r: _Reader, kubernetes_version: str | None) -> ClusterSettings:
    node_min = r.int("nodeMinCount", minimum=0, maximum=1000)
    node_max = r.int("nodeMaxCount", minimum=1, maximum=1000)
    if node_min > node_max:
        raise ConfigError(
            f"{r.key('nodeMinCount')} ({node_min}) must be <= {r.key('nodeMaxCount')} ({node_max})"
        )
    zones = r.list("availabilityZones")
    for zone in zones:
        if not _ZONE.match(zone):
            raise ConfigError(f"{r.key('availabilityZones')} entries must be 1, 2 or 3; got {zone!r}")
    return ClusterSettings(
        kubernetes_version=kubernetes_version,
        tier=CLUSTER_TIERS[r.choice("clusterTier", CLUSTER_TIERS)],
        upgrade_channel=UPGRADE_CHANNELS[r.choice("upgradeChannel", UPGRADE_CHANNELS)],
        system_vm_size=r.match("systemNodeVmSize", _VM_SIZE, "Azure VM size"),
        system_node_count=r.int("systemNodeCount", minimum=1, maximum=100),
        node_vm_size=r.match("nodeVmSize", _VM_SIZE, "Azure VM size"),
        node_min_count=node_min,
        node_max_count=node_max,
        zones=zones,
        log_retention_days=r.int("logRetentionDays", minimum=30, maximum=730),
    )


def _request_and_limit(
    r: _Reader,
    kind: str,
    pattern: re.Pattern,
    what: str,
    amount: Callable[[str], float],
    why: str = "",
) -> tuple[str, str]:
    """`<kind>Request` and `<kind>Limit`: request > 0, limit >= request (compared by `amount`)."""
    request_key, limit_key = f"{kind}Request", f"{kind}Limit"
    request = r.match(request_key, pattern, what)
    limit = r.match(limit_key, pattern, what)
    if amount(request) <= 0:
        raise ConfigError(f"{r.key(request_key)} must be > 0{why}, got {request!r}")
    if amount(limit) < amount(request):
        raise ConfigError(f"{r.key(limit_key)} ({limit}) must be >= {r.key(request_key)} ({request})")
    return request, limit


def _resources(r: _Reader) -> tuple[str, str, str, str]:
    """CPU and memory request/limit. The CPU limit must equal the request: the HPA's utilisation is a
    percentage of the request (Kubernetes "Horizontal Pod Autoscaling": resource metrics), so with a 1-CPU
    request and a 2-CPU limit a 70 % target scales out at 0.7 CPU, a third of what one pod can use. With
    request = limit the target is a share of the pod's real capacity, and the CFS quota the service sizes its
    threads from is the same number."""
    cpu = _request_and_limit(
        r, "cpu", _CPU, "CPU quantity (e.g. 500m, 1, 1.5)", cpu_millicores, " (the HPA scales on it)"
    )
    if cpu_millicores(cpu[1]) != cpu_millicores(cpu[0]):
        raise ConfigError(
            f"{r.key('cpuLimit')} ({cpu[1]}) must equal {r.key('cpuRequest')} ({cpu[0]}): the HPA's "
            f"{r.key('targetCpuUtilization')} is a percentage of the request, so a higher limit makes it "
            "scale out before a pod is busy"
        )
    memory = _request_and_limit(r, "memory", _MEMORY, "memory quantity (e.g. 512Mi, 2Gi)", memory_bytes)
    return (*cpu, *memory)


def _cidrs(r: _Reader, name: str) -> tuple[str, ...]:
    """A list of CIDRs (IPv4 or IPv6, host bits zero), checked by `ipaddress.ip_network(strict=True)`."""
    ranges = r.list(name)
    for cidr in ranges:
        try:
            ipaddress.ip_network(cidr, strict=True)
        except ValueError as exc:
            raise ConfigError(f"{r.key(name)} has an invalid CIDR {cidr!r}: {exc}") from None
    return ranges


def _source_ranges(r: _Reader) -> tuple[str, ...]:
    """`allowedSourceRanges`: CIDRs the load balancer admits; empty admits everyone."""
    return _cidrs(r, "allowedSourceRanges")


def _api_key(r: _Reader, is_secret: Callable[[str], bool]) -> Any:
    """`apiKey` (optional, default ""): at least 16 characters, stored encrypted in the stack (`pulumi config
    set --secret`); returned wrapped as a Pulumi secret Output.

    `Pulumi.yaml` cannot declare it `secret: true`: the CLI then demands an encrypted value in every stack,
    since a default is plaintext (pulumi/pulumi workspace `validateStackConfigValue`), so the program makes
    the check itself: a plaintext value is refused, naming the key.
    """
    value = r.str("apiKey")
    if value is None:
        return None
    if not is_secret(r.key("apiKey")):
        raise ConfigError(
            f"{r.key('apiKey')} is stored in plain text in the stack file: set it with "
            "`pulumi config set --secret apiKey <key>`"
        )
    if len(value) < MIN_API_KEY_LENGTH or value != value.strip():
        raise ConfigError(
            f"{r.key('apiKey')} must be at least {MIN_API_KEY_LENGTH} characters without surrounding spaces "
            f"(set it with `pulumi config set --secret apiKey <key>`)"
        )
    import pulumi

    return pulumi.Output.secret(value)


def _workload_settings(r: _Reader) -> WorkloadSettings:
    min_replicas = r.int("minReplicas", minimum=1, maximum=1000)
    max_replicas = r.int("maxReplicas", minimum=1, maximum=1000)
    if min_replicas > max_replicas:
        raise ConfigError(
            f"{r.key('minReplicas')} ({min_replicas}) must be <= {r.key('maxReplicas')} ({max_replicas})"
        )
    replicas = r.int("replicas", minimum=0) or min_replicas
    if not min_replicas <= replicas <= max_replicas:
        raise ConfigError(
            f"{r.key('replicas')} ({replicas}) must lie within "
            f"[{r.key('minReplicas')}, {r.key('maxReplicas')}] = [{min_replicas}, {max_replicas}]"
        )
    cpu_request, cpu_limit, memory_request, memory_limit = _resources(r)
    request_timeout_ms = r.int("requestTimeoutMs", minimum=1, maximum=600_000)
    termination_grace_s = r.int("terminationGracePeriodSeconds", minimum=10, maximum=600)
    drain_s = PRE_STOP_SLEEP_S + math.ceil(request_timeout_ms / 1000) + DRAIN_MARGIN_S
    if termination_grace_s < drain_s:
        raise ConfigError(
            f"{r.key('terminationGracePeriodSeconds')} ({termination_grace_s}) must be >= {drain_s}: "
            f"preStop {PRE_STOP_SLEEP_S} s + {r.key('requestTimeoutMs')} ({request_timeout_ms} ms) + "
            f"{DRAIN_MARGIN_S} s, or Kubernetes kills the pod while requests are still draining"
        )
    return WorkloadSettings(
        app_name=r.match("appName", _DNS_LABEL, "DNS label (RFC 1123)"),
        namespace=r.match("namespace", _DNS_LABEL, "namespace name (RFC 1123 label)"),
        replicas=replicas,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        target_cpu_utilization=r.int("targetCpuUtilization", minimum=1, maximum=100),
        scale_down_stabilization_s=r.int("scaleDownStabilizationSeconds", minimum=0, maximum=3600),
        cpu_request=cpu_request,
        cpu_limit=cpu_limit,
        memory_request=memory_request,
        memory_limit=memory_limit,
        model_name=r.required("modelName"),
        model_version=r.required("modelVersion"),
        model_arch=r.required("modelArch"),
        max_batch_size=r.int("maxBatchSize", minimum=1, maximum=1024),
        max_batch_delay_ms=r.int("maxBatchDelayMs", minimum=0, maximum=10_000),
        max_queue=r.int("maxQueue", minimum=1, maximum=100_000),
        request_timeout_ms=request_timeout_ms,
        termination_grace_s=termination_grace_s,
        allowed_source_ranges=_source_ranges(r),
    )


def _kubernetes_version(r: _Reader) -> str | None:
    """`kubernetesVersion`: `1.MINOR[.PATCH]`, 1.MIN_K8S_MINOR or newer; None (the default "") lets AKS
    pick its default version for new clusters."""
    version = r.str("kubernetesVersion")
    if version is None:
        return None
    match = _K8S_VERSION.match(version)
    if not match:
        raise ConfigError(
            f"{r.key('kubernetesVersion')} is not a valid Kubernetes version (e.g. 1.34): {version!r}"
        )
    if int(match.group(1)) < MIN_K8S_MINOR:
        raise ConfigError(
            f"{r.key('kubernetesVersion')} must be 1.{MIN_K8S_MINOR} or newer (older minors are out of AKS "
            f"standard support; see `az aks get-versions -l <region>`), got {version!r}"
        )
    return version


@dataclass(frozen=True)
class ModelSettings:
    """Where the model comes from, and the model repository (Blob Storage + workload identity).

    `repository`: declare the storage account, `models` container and identity (target `azure` only; the
    local target never declares Azure resources). `uri` / `labels_uri` / `sha256`: MODEL_URI,
    MODEL_LABELS_URI, MODEL_SHA256 of the pod (None: not set). `file` / `labels_file`: names under
    `service/model-store/` baked into the image (MODEL_FILE / MODEL_LABELS_FILE build arguments).
    """

    repository: bool
    storage_sku: str
    deployer_principal_type: str
    uri: str | None = None
    labels_uri: str | None = None
    sha256: str | None = None
    file: str | None = None
    labels_file: str | None = None


#: Storage account SKUs offered for the model repository (azure-native storage.SkuName); LRS is the cheapest.
STORAGE_SKUS = ("Standard_LRS", "Standard_ZRS", "Standard_GRS", "Standard_GZRS")
#: Principal types of the deployer's data-plane RoleAssignment (azure-native authorization.PrincipalType).
PRINCIPAL_TYPES = ("User", "ServicePrincipal", "Group")
#: Folder baked into the image (service/Dockerfile copies it to /opt/model-store/).
MODEL_STORE = Path(__file__).resolve().parent.parent / "service" / "model-store"
# Blob URLs the service accepts (service/model_repository.py): an Azure account, or an emulator (path-style:
# http(s)://host:port/<account>/...); then a container (3-63 lower-case letters, digits, dashes) and a path.
_BLOB_URL = re.compile(
    r"^(https://[a-z0-9]{3,24}\.blob\.core\.windows\.net|https?://[A-Za-z0-9.-]+:\d{1,5}/[a-z0-9]{3,24})"
    r"/[a-z0-9](?:[a-z0-9-]{1,61}[a-z0-9])/\S+$"
)
_SHA256 = re.compile(r"^[0-9a-fA-F]{64}$")
_STORE_FILE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9_.-]*$")


def _store_file(r: _Reader, name: str) -> str | None:
    """A file name under service/model-store/ that exists (the Docker build copies it into the image)."""
    value = r.str(name)
    if value is None:
        return None
    if not _STORE_FILE.match(value) or not (MODEL_STORE / value).is_file():
        raise ConfigError(f"{r.key(name)} must name a file in service/model-store/, got {value!r}")
    return value


def _model_settings(r: _Reader, target: str) -> ModelSettings:
    """`modelRepository`, `modelStorageSku`, `deployerPrincipalType`, `modelUri`, `modelLabelsUri`,
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
    model_file, labels_file = _store_file(r, "modelFile"), _store_file(r, "modelLabelsFile")
    if model_file is not None and uri is not None:
        raise ConfigError(
            f"{r.key('modelFile')} and {r.key('modelUri')} are both set: choose one model source"
        )
    if labels_file is not None and model_file is None:
        raise ConfigError(f"{r.key('modelLabelsFile')} needs {r.key('modelFile')}")
    return ModelSettings(
        repository=r.bool("modelRepository") and target == "azure",
        storage_sku=r.choice("modelStorageSku", STORAGE_SKUS),
        deployer_principal_type=r.choice("deployerPrincipalType", PRINCIPAL_TYPES),
        uri=uri,
        labels_uri=labels_uri,
        sha256=sha256.lower() if sha256 else None,
        file=model_file,
        labels_file=labels_file,
    )


@dataclass(frozen=True)
class DeploySettings:
    """How `pulumi preview` / `pulumi up` deliver the image (issue 10).

    `build_on_preview`: docker-build's `buildOnPreview` (a preview builds the image, never pushes it; false
    for a CI preview without Docker). `local_cluster` (target local): kind | minikube | docker-desktop, how
    the built image reaches the cluster. `local_cluster_name`: the kind cluster name or minikube profile the
    image is loaded into, from `kubeContext` (`kind-<name>` → `<name>`, a minikube context is the profile
    name), else the tools' defaults `kind` / `minikube`.
    """

    build_on_preview: bool
    local_cluster: str
    local_cluster_name: str


def _deploy_settings(r: _Reader, kube_context: str | None) -> DeploySettings:
    build_on_preview = r.bool("buildOnPreview")
    local_cluster = r.choice("localCluster", LOCAL_CLUSTERS)
    if local_cluster == "kind":
        name = kube_context.removeprefix("kind-") if kube_context else "kind"
    elif local_cluster == "minikube":
        name = kube_context or "minikube"
    else:
        name = kube_context or "docker-desktop"
    return DeploySettings(
        build_on_preview=build_on_preview, local_cluster=local_cluster, local_cluster_name=name
    )


#: `kubelogin get-token --login` modes that work without a browser (Azure/kubelogin README, "Login modes").
KUBELOGIN_MODES = ("azurecli", "workloadidentity", "spn", "msi", "azd")
OS_DISK_TYPES = ("Ephemeral", "Managed")
#: Local (temp) disk of VM sizes an ephemeral OS disk can live on, GiB (Microsoft Learn, "Ddsv5 and Ddv5
#: sizes" / "Dadsv5 sizes": temp storage); the Dsv5 sizes have no local disk (0). Sizes not listed are
#: left to Azure's own validation.
LOCAL_DISK_GIB = {
    **{f"Standard_D{n}s_v5": 0 for n in (2, 4, 8, 16, 32)},
    **{f"Standard_D{n}ds_v5": 75 * n // 2 for n in (2, 4, 8, 16, 32)},
    **{f"Standard_D{n}ads_v5": 75 * n // 2 for n in (2, 4, 8, 16, 32)},
}
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}$")
#: Domains Let's Encrypt refuses as an account contact ("invalid contact domain"): RFC 2606 / 6761 names.
_FORBIDDEN_CONTACT = re.compile(r"(^|\.)(example\.(com|net|org)|example|test|invalid|localhost)$")


@dataclass(frozen=True)
class SecuritySettings:
    """Access and hardening (issue 11). Cluster fields apply to target azure only.

    `authorized_ip_ranges`: CIDRs for the API server (empty: public). `os_disk_size_gb`: GB.
    `tls`: HTTPS at https://<dns_label>.<region>.cloudapp.azure.com with a Let's Encrypt certificate.
    """

    local_accounts: bool
    kubelogin_mode: str
    deployer_principal_type: str
    authorized_ip_ranges: tuple[str, ...]
    os_disk_type: str
    os_disk_size_gb: int
    max_pods: int
    encryption_at_host: bool
    untagged_retention_days: int
    tls: bool
    dns_label: str | None
    tls_contact_email: str | None


def _os_disk(r: _Reader, vm_sizes: tuple[str, ...]) -> tuple[str, int]:
    """`osDiskType` and `osDiskSizeGb`; an ephemeral disk must fit every pool's local disk."""
    disk_type = r.choice("osDiskType", OS_DISK_TYPES)
    size = r.int("osDiskSizeGb", minimum=30, maximum=2048)
    if disk_type == "Ephemeral":
        for vm_size in vm_sizes:
            local = LOCAL_DISK_GIB.get(vm_size)
            if local is not None and size > local:
                raise ConfigError(
                    f"{r.key('osDiskSizeGb')} ({size}) does not fit the {local} GiB local disk of {vm_size} "
                    f"for an ephemeral OS disk (sizes without a local disk, e.g. Dsv5, need the Ddsv5 "
                    f"variant, or {r.key('osDiskType')}: Managed)"
                )
    return disk_type, size


def _tls(r: _Reader, target: str) -> tuple[bool, str | None, str | None]:
    """`tls`, `dnsLabel`, `tlsContactEmail`: both names are required when TLS is on (azure only)."""
    if not r.bool("tls"):
        return False, None, None
    if target != "azure":
        raise ConfigError(f"{r.key('tls')} needs target azure (the name is an Azure cloudapp DNS label)")
    label = r.str("dnsLabel")
    if label is None:
        raise ConfigError(f"{r.key('dnsLabel')} must be set when {r.key('tls')} is true")
    if not _DNS_LABEL.match(label):
        raise ConfigError(f"{r.key('dnsLabel')} is not a valid DNS label (RFC 1123): {label!r}")
    email = r.str("tlsContactEmail")
    if email is None:
        raise ConfigError(f"{r.key('tlsContactEmail')} must be set when {r.key('tls')} is true")
    if not _EMAIL.match(email) or _FORBIDDEN_CONTACT.search(email.rsplit("@", 1)[-1].lower()):
        raise ConfigError(
            f"{r.key('tlsContactEmail')} must be a deliverable e-mail address (Let's Encrypt refuses "
            f"reserved domains such as example.com), got {email!r}"
        )
    return True, label, email


def _security_settings(r: _Reader, target: str, vm_sizes: tuple[str, ...]) -> SecuritySettings:
    ranges = _cidrs(r, "apiServerAuthorizedIpRanges")
    if target == "azure" and r.bool("requireAuthorizedIpRanges") and not ranges:
        raise ConfigError(
            f"{r.key('apiServerAuthorizedIpRanges')} must list the CIDRs allowed to reach the API server: "
            f"{r.key('requireAuthorizedIpRanges')} is true for this stack"
        )
    disk_type, disk_size = _os_disk(r, vm_sizes)
    tls, dns_label, email = _tls(r, target)
    return SecuritySettings(
        local_accounts=r.bool("localAccounts"),
        kubelogin_mode=r.choice("kubeloginMode", KUBELOGIN_MODES),
        deployer_principal_type=r.choice("deployerPrincipalType", PRINCIPAL_TYPES),
        authorized_ip_ranges=ranges,
        os_disk_type=disk_type,
        os_disk_size_gb=disk_size,
        max_pods=r.int("maxPods", minimum=50, maximum=250),
        encryption_at_host=r.bool("encryptionAtHost"),
        untagged_retention_days=r.int("untaggedRetentionDays", minimum=0, maximum=365),
        tls=tls,
        dns_label=dns_label,
        tls_contact_email=email,
    )


def load_config(
    get: Getter | None = None,
    stack: str | None = None,
    is_secret: Callable[[str], bool] | None = None,
    defaults: dict[str, Any] | None = None,
) -> StackConfig:
    """Read and validate the whole stack configuration.

    `get(full_key)` returns the raw value or None (then the key's default in `Pulumi.yaml` applies); by
    default it reads the running stack's config (`pulumi.Config`), which is the only place this project
    calls it. `is_secret(full_key)` says whether the stack stores the value encrypted (default
    `pulumi.runtime.is_config_secret`). `defaults`: `project_defaults()` unless given. Raises `ConfigError`.
    """
    if get is None:
        get = _pulumi_getter()
    if is_secret is None:
        import pulumi.runtime

        is_secret = pulumi.runtime.is_config_secret
    if stack is None:
        import pulumi

        stack = pulumi.get_stack()
    r = _Reader(get, project_defaults() if defaults is None else defaults)
    target = r.choice("target", TARGETS)
    kubernetes_version = _kubernetes_version(r)
    registry_name = r.str("registryName")
    if registry_name is not None and not _REGISTRY_NAME.match(registry_name):
        raise ConfigError(f"{r.key('registryName')} must be 5-50 letters or digits, got {registry_name!r}")
    location = r.str("azure-native:location")
    if target == "azure" and not location:
        raise ConfigError("azure-native:location must be set for target azure (e.g. westeurope)")
    repository = r.str("imageRepository") or ""
    if not re.match(r"^[a-z0-9]+([._/-][a-z0-9]+)*$", repository):
        raise ConfigError(f"{r.key('imageRepository')} is not a valid repository path: {repository!r}")
    kube_context = r.str("kubeContext")
    cluster = _cluster_settings(r, kubernetes_version) if target == "azure" else None
    vm_sizes = (cluster.system_vm_size, cluster.node_vm_size) if cluster else ()
    return StackConfig(
        stack=stack,
        target=target,
        location=location if target == "azure" else None,
        kubernetes_version=kubernetes_version,
        registry_sku=REGISTRY_SKUS[r.choice("registrySku", REGISTRY_SKUS)],
        registry_name=registry_name,
        image_repository=repository,
        kube_context=kube_context,
        cluster=cluster,
        workload=_workload_settings(r),
        api_key=_api_key(r, is_secret),
        model=_model_settings(r, target),
        deploy=_deploy_settings(r, kube_context),
        security=_security_settings(r, target, vm_sizes),
    )


def _pulumi_getter() -> Getter:
    import pulumi

    configs: dict[str, pulumi.Config] = {}

    def get(full_key: str) -> Any:
        namespace, _, name = full_key.partition(":")
        config = configs.setdefault(namespace, pulumi.Config(namespace))
        return config.get(name)

    return get
