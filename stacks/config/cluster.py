"""AKS cluster settings (target `azure`): Kubernetes version, tier, upgrade channel, node pools and the VM
facts they are checked against."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pulumi_azure_native import containerservice

from stacks.config.reader import ConfigError, Reader

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

#: Oldest minor accepted. AKS creates clusters only on minors in standard support (about 12 months each;
#: upstream end of life 1.33 2026-06-28, 1.34 2026-10-27, per kubernetes.io/releases), and the program needs
#: the preStop sleep hook (GA in 1.30) and autoscaling/v2. `az aks get-versions -l <region>` is the authority.
MIN_K8S_MINOR = 34

_K8S_VERSION = re.compile(r"^1\.(\d{1,2})(\.\d{1,3})?$")
_VM_SIZE = re.compile(r"^Standard_[A-Za-z][A-Za-z0-9_-]*$")

_ZONE = re.compile(r"^[1-3]$")

OS_DISK_TYPES = ("Ephemeral", "Managed")
#: Local disk of VM sizes an ephemeral OS disk can live on, GiB. v5 (Microsoft Learn, "Ddsv5 and Ddv5 sizes" /
#: "Dadsv5 sizes": temp storage): one temp disk, where AKS puts the OS disk. v6 ("Ddsv6 sizes series" /
#: "Dadsv6 sizes series", Local Storage tab: 110 GiB per 2 vCPUs up to 440 GiB a disk, then 2 or 4 disks):
#: local NVMe disks, where Azure places an ephemeral OS disk on as many disks as it needs ("Ephemeral OS disks
#: for Azure VMs": NVMe disk placement, final NVMe size = (disks - disks used for OS) x size), so the figure
#: is the disks' total. AKS has no placement setting and picks the one the size supports (Azure/AKS#2672;
#: AKS "Best practices for ephemeral NVMe data disks"). The Dsv5 / Dsv6 sizes have no local disk (0).
#: Sizes not listed are left to Azure's own validation.
_V6_LOCAL_GIB = {2: 110, 4: 220, 8: 440, 16: 2 * 440, 32: 4 * 440}
LOCAL_DISK_GIB = {
    **{f"Standard_D{n}s_v5": 0 for n in (2, 4, 8, 16, 32)},
    **{f"Standard_D{n}ds_v5": 75 * n // 2 for n in (2, 4, 8, 16, 32)},
    **{f"Standard_D{n}ads_v5": 75 * n // 2 for n in (2, 4, 8, 16, 32)},
    **{f"Standard_D{n}s_v6": 0 for n in _V6_LOCAL_GIB},
    **{f"Standard_D{n}ds_v6": gib for n, gib in _V6_LOCAL_GIB.items()},
    **{f"Standard_D{n}ads_v6": gib for n, gib in _V6_LOCAL_GIB.items()},
}


#: The CPU tier (service/hostcpu.py `TIERS`) every host of a VM family has, for the image build's
#: `MODEL_TARGET_CPU` (the baked model is quantized and gated for the nodes, not the builder). Ddsv6 / Dsv6:
#: 5th Gen Xeon Platinum 8573C with AMX (Microsoft Learn, "Ddsv6 sizes series"). Ddsv5 / Dsv5: Xeon 8370C
#: (Ice Lake) or 8573C, both with AVX-512 VNNI, only the second with AMX ("Ddsv5 and Ddv5 sizes"). Dadsv6 /
#: Dasv6: AMD EPYC 9004 (Genoa, Zen 4: AVX-512 VNNI and BF16, no AMX; "Dadsv6 sizes series"). Dadsv5 / Dasv5:
#: EPYC 7763v (Milan: AVX2, no AVX-512) or 9004 ("Dadsv5 sizes series"). Other families: None (the
#: Dockerfile's default).
FAMILY_CPU_TIER = {"Ddsv6": "amx", "Dsv6": "amx", "Ddsv5": "avx512_vnni", "Dsv5": "avx512_vnni",
                   "Dadsv6": "avx512_vnni", "Dasv6": "avx512_vnni", "Dadsv5": "avx2", "Dasv5": "avx2"}
_SIZE_NAME = re.compile(r"^Standard_([A-Z])(\d+)([a-z]*)_v(\d+)$")


def vm_size_family(vm_size: str) -> tuple[str, int] | None:
    """(family, vCPUs) of a VM size name: Standard_D4ds_v6 -> ("Ddsv6", 4); None for a name of another form
    (Azure "Virtual machine size naming conventions": family letter, vCPUs, additive features, version)."""
    match = _SIZE_NAME.match(vm_size)
    if not match:
        return None
    letter, vcpus, features, version = match.groups()
    return f"{letter}{features}v{version}", int(vcpus)


def node_cpu_tier(vm_size: str) -> str | None:
    """The CPU tier all hosts of `vm_size`'s family have (`FAMILY_CPU_TIER`): Standard_D4ds_v6 -> "amx",
    Standard_D4ads_v5 -> "avx2"; None for a family not listed."""
    family = vm_size_family(vm_size)
    return FAMILY_CPU_TIER.get(family[0]) if family else None


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


def read_kubernetes_version(r: Reader) -> str | None:
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


def cluster_settings(r: Reader, kubernetes_version: str | None) -> ClusterSettings:
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
