"""Stack configuration: read once from `pulumi.Config`, validated into a typed, frozen object.

Every check runs before any resource is declared, so a mistake fails `pulumi preview` / `pulumi up`
immediately with a `ConfigError` whose message starts with the full key, e.g.
`aks-image-classifier:minReplicas (5) must be <= aks-image-classifier:maxReplicas (3)`.
Components receive the parts they need and never call `pulumi.Config` themselves.

One module per domain, all read through one `Reader` (`reader.py`): `cluster` (AKS, node pools, VM facts),
`workload` (the Deployment, HPA, resources), `model` (model source and repository), `security` (access,
hardening, TLS), `deploy` (image delivery), `monitoring` (alerting, KEDA's target), `containerapps` (the
Container Apps target); `quantities` parses
Kubernetes quantities.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from pulumi_azure_native import containerregistry

from stacks.config.access import AccessSettings, Principal, access_settings
from stacks.config.cluster import (
    CLUSTER_TIERS,
    LOCAL_DISK_GIB,
    MIN_K8S_MINOR,
    OS_DISK_TYPES,
    UPGRADE_CHANNELS,
    VERSION_UPGRADE_CHANNELS,
    ClusterSettings,
    cluster_settings,
    read_kubernetes_version,
)
from stacks.config.containerapps import WORKLOAD_PROFILES, ContainerAppSettings, container_app_settings
from stacks.config.deploy import LOCAL_CLUSTERS, DeploySettings, deploy_settings
from stacks.config.maintenance import WEEK_DAYS, MaintenanceSettings, maintenance_settings
from stacks.config.model import MODEL_STORE, STORAGE_SKUS, ModelSettings, model_settings
from stacks.config.monitoring import MonitoringSettings, monitoring_settings
from stacks.config.quantities import cpu_millicores, memory_bytes
from stacks.config.reader import (
    PRINCIPAL_TYPES,
    PROJECT,
    PROJECT_FILE,
    ConfigError,
    Getter,
    Reader,
    project_defaults,
)
from stacks.config.security import KUBELOGIN_MODES, SecuritySettings, security_settings
from stacks.config.workload import (
    DRAIN_MARGIN_S,
    MIN_API_KEY_LENGTH,
    PRE_STOP_SLEEP_S,
    WorkloadSettings,
    api_key,
    workload_settings,
)

__all__ = [
    "AZURE_TARGETS",
    "CLUSTER_TIERS",
    "DRAIN_MARGIN_S",
    "KUBELOGIN_MODES",
    "LOCAL_CLUSTERS",
    "LOCAL_DISK_GIB",
    "MIN_API_KEY_LENGTH",
    "MIN_K8S_MINOR",
    "MODEL_STORE",
    "OS_DISK_TYPES",
    "PRE_STOP_SLEEP_S",
    "PRINCIPAL_TYPES",
    "PROJECT",
    "PROJECT_FILE",
    "REGISTRY_SKUS",
    "STORAGE_SKUS",
    "TARGETS",
    "UPGRADE_CHANNELS",
    "VERSION_UPGRADE_CHANNELS",
    "WEEK_DAYS",
    "WORKLOAD_PROFILES",
    "AccessSettings",
    "ClusterSettings",
    "ConfigError",
    "ContainerAppSettings",
    "DeploySettings",
    "Getter",
    "MaintenanceSettings",
    "ModelSettings",
    "MonitoringSettings",
    "Principal",
    "Reader",
    "SecuritySettings",
    "StackConfig",
    "WorkloadSettings",
    "cpu_millicores",
    "load_config",
    "memory_bytes",
    "project_defaults",
]

TARGETS = ("azure", "containerapps", "local")
#: Targets that deploy to Azure (a resource group in `azure-native:location`): AKS and Container Apps.
AZURE_TARGETS = ("azure", "containerapps")
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

_REGISTRY_NAME = re.compile(r"^[a-zA-Z0-9]{5,50}$")
#: Resource group names: 1-90 characters, letters, digits, underscores, hyphens, periods, parentheses, not
#: ending in a period (Microsoft Learn, "Naming rules and restrictions for Azure resources").
_RESOURCE_GROUP = re.compile(r"^[-\w.()]{0,89}[-\w()]$")


@dataclass(frozen=True)
class StackConfig:
    """Everything the program needs, validated. `location` is `azure-native:location` (Azure targets only);
    `container_app` is set for target containerapps only, `cluster` for target azure (AKS) only."""

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
    monitoring: MonitoringSettings | None = None  # target azure only (managed Prometheus, KEDA)
    container_app: ContainerAppSettings | None = None
    resource_group_name: str | None = None  # azure: the existing group the stack deploys into
    access: AccessSettings | None = None  # azure: who gets which role (always set by load_config)
    maintenance: MaintenanceSettings | None = None  # azure: planned maintenance window, None: none

    @property
    def is_azure(self) -> bool:
        """Target `azure`: AKS."""
        return self.target == "azure"

    @property
    def is_containerapps(self) -> bool:
        """Target `containerapps`: Azure Container Apps, no cluster."""
        return self.target == "containerapps"

    @property
    def manifest_minor(self) -> int:
        """Kubernetes minor the workload's manifests must be valid for: the pinned one, else the oldest
        the program accepts (AKS's default is at least that)."""
        if self.kubernetes_version is None:
            return MIN_K8S_MINOR
        return int(self.kubernetes_version.split(".")[1])


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
    r = Reader(get, project_defaults() if defaults is None else defaults)
    target = r.choice("target", TARGETS)
    kubernetes_version = read_kubernetes_version(r)
    registry_name = r.str("registryName")
    if registry_name is not None and not _REGISTRY_NAME.match(registry_name):
        raise ConfigError(f"{r.key('registryName')} must be 5-50 letters or digits, got {registry_name!r}")
    location = r.str("azure-native:location")
    if target in AZURE_TARGETS and not location:
        raise ConfigError(f"azure-native:location must be set for target {target} (e.g. westeurope)")
    repository = r.str("imageRepository") or ""
    if not re.match(r"^[a-z0-9]+([._/-][a-z0-9]+)*$", repository):
        raise ConfigError(f"{r.key('imageRepository')} is not a valid repository path: {repository!r}")
    kube_context = r.str("kubeContext")
    cluster = cluster_settings(r, kubernetes_version) if target == "azure" else None
    group = r.str("resourceGroupName")
    if group is not None and not _RESOURCE_GROUP.match(group):
        raise ConfigError(
            f"{r.key('resourceGroupName')} must be 1-90 letters, digits, '_', '-', '.', '(' or ')', "
            f"not ending in '.', got {group!r}"
        )
    if target == "azure" and group is None:
        raise ConfigError(
            f"{r.key('resourceGroupName')} must name the existing resource group of the stack (bootstrap/ "
            "creates it; the program never creates one at subscription scope)"
        )
    vm_sizes = (cluster.system_vm_size, cluster.node_vm_size) if cluster else ()
    workload = workload_settings(r)
    return StackConfig(
        stack=stack,
        target=target,
        location=location if target in AZURE_TARGETS else None,
        kubernetes_version=kubernetes_version,
        registry_sku=REGISTRY_SKUS[r.choice("registrySku", REGISTRY_SKUS)],
        registry_name=registry_name,
        image_repository=repository,
        kube_context=kube_context,
        cluster=cluster,
        workload=workload,
        api_key=api_key(r, is_secret),
        model=model_settings(r, target),
        deploy=deploy_settings(r, kube_context),
        security=security_settings(r, target, vm_sizes),
        monitoring=monitoring_settings(r, workload.max_queue) if target == "azure" else None,
        container_app=container_app_settings(r, workload) if target == "containerapps" else None,
        resource_group_name=group if target in AZURE_TARGETS else None,
        access=access_settings(r, target),
        maintenance=maintenance_settings(r) if target == "azure" else None,
    )


def _pulumi_getter() -> Getter:
    import pulumi

    configs: dict[str, pulumi.Config] = {}

    def get(full_key: str) -> Any:
        namespace, _, name = full_key.partition(":")
        config = configs.setdefault(namespace, pulumi.Config(namespace))
        return config.get(name)

    return get
