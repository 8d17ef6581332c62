"""Node pool shapes: what AKS cannot change in place, the versioned workload pool name derived from it, and
the check that the deployed system pool still has the shape the stack file asks for.

AKS fixes a pool's VM size, OS disk type and size, OS SKU, availability zones, max pods and encryption at
host when the pool is created ("Resize node pools in AKS": create a new pool, move the workloads, delete
the old one; `az aks nodepool update` offers none of them). A workload pool whose name is a short hash of
that shape turns a shape change into a new pool name. `agentPoolName` is a path parameter of the AgentPool
PUT, which azure-native treats as a replacement (its `diff` marks changed URL path parameters
`replaceOnChanges`), and Pulumi replaces create-before-delete unless `deleteBeforeReplace` is set: the new
pool is created, the rest of the stack updated, and the old pool deleted at the end of the update; AKS
drains its nodes honouring PodDisruptionBudgets (AKS "Delete a node pool": `--ignore-pod-disruption-budget`
is opt-in), so the workload's PDB keeps `minAvailable` pods serving while they move. The pods select the
pool by a node label that stays the same across versions (`POOL_LABEL`), so the Deployment does not change.

The system pool lives inline in the cluster (`agentPoolProfiles`), which azure-native cannot add to or
change (pulumi-azure-native#579, #2719) and which the program must ignore after creation (see
`stacks.cluster.cluster_ignore_changes`). Instead of dropping a change silently, `system_pool_drift` compares
the stack's system pool with the one Azure reports and `check_system_pool` fails naming the key and the
manual step.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from stacks.config import PROJECT, ConfigError

WORKLOAD_POOL_PREFIX = "work"
#: Linux agent pool names: 1-12 lower-case letters and digits, starting with a letter (AKS "Create node
#: pools": naming rules). `work` + 8 hex digits is 12.
POOL_NAME_MAX = 12
HASH_DIGITS = POOL_NAME_MAX - len(WORKLOAD_POOL_PREFIX)
#: Node label every workload pool carries, whatever its version; the workload's pods select it.
POOL_LABEL = f"{PROJECT}/pool"
WORKLOAD_POOL_ROLE = "workload"


@dataclass(frozen=True)
class PoolShape:
    """The properties AKS fixes at pool creation. `os_disk_size_gb`: GB; `zones`: e.g. ("1", "2", "3")."""

    vm_size: str
    os_sku: str
    os_disk_type: str
    os_disk_size_gb: int
    max_pods: int
    zones: tuple[str, ...]
    encryption_at_host: bool

    def digest(self) -> str:
        """`HASH_DIGITS` hex digits of the SHA-256 of the shape (JSON, sorted keys, zones sorted)."""
        body = json.dumps({**self.__dict__, "zones": sorted(self.zones)}, sort_keys=True)
        return hashlib.sha256(body.encode()).hexdigest()[:HASH_DIGITS]


def workload_pool_name(shape: PoolShape) -> str:
    """`work<8 hex>`: the agent pool name for this shape (a new shape is a new name, hence a new pool)."""
    return f"{WORKLOAD_POOL_PREFIX}{shape.digest()}"


#: Stack keys behind each system pool property, and what to do about a change (Azure CLI, `az aks nodepool`).
_NEW_POOL = (
    "add a System pool of the new shape (`az aks nodepool add --resource-group <group> --cluster-name "
    "<cluster> --name <new> --mode System --node-vm-size <size> ...`), delete the old one (`az aks nodepool "
    "delete ... --name <old>`, which drains it honouring PodDisruptionBudgets), then `pulumi refresh`"
)
SYSTEM_POOL_KEYS: dict[str, tuple[str, str]] = {
    "vm_size": ("systemNodeVmSize", _NEW_POOL),
    "zones": ("availabilityZones", _NEW_POOL),
    "os_disk_type": ("osDiskType", _NEW_POOL),
    "os_disk_size_gb": ("osDiskSizeGb", _NEW_POOL),
    "max_pods": ("maxPods", _NEW_POOL),
    "encryption_at_host": ("encryptionAtHost", _NEW_POOL),
    "count": (
        "systemNodeCount",
        "scale the pool (`az aks nodepool scale --resource-group <group> --cluster-name <cluster> --name "
        "<pool> --node-count <n>`), then `pulumi refresh`",
    ),
}


def _deployed(profile: Any) -> dict[str, Any]:
    """The comparable fields of one `ManagedClusterAgentPoolProfileResponse` (or its camelCase dict)."""

    def get(snake: str, camel: str) -> Any:
        if hasattr(type(profile), snake):  # the SDK's output type (a property per field)
            return getattr(profile, snake)
        return profile.get(camel) if isinstance(profile, Mapping) else None

    return {
        "name": get("name", "name"),
        "mode": get("mode", "mode"),
        "vm_size": get("vm_size", "vmSize"),
        "zones": tuple(sorted(get("availability_zones", "availabilityZones") or ())),
        "os_disk_type": get("os_disk_type", "osDiskType"),
        "os_disk_size_gb": get("os_disk_size_gb", "osDiskSizeGB"),
        "max_pods": get("max_pods", "maxPods"),
        "encryption_at_host": bool(get("enable_encryption_at_host", "enableEncryptionAtHost")),
        "count": get("count", "count"),
    }


def system_pool_drift(shape: PoolShape, count: int, profiles: Iterable[Any]) -> dict[str, tuple[Any, Any]]:
    """`{field: (deployed, configured)}` between the stack's system pool and the closest System-mode pool
    Azure reports (`ManagedCluster.agent_pool_profiles`); `{}` when one matches, or when Azure reports no
    System pool yet (a cluster being created)."""
    wanted = {**shape.__dict__, "zones": tuple(sorted(shape.zones)), "count": count}
    wanted.pop("os_sku")
    best: dict[str, tuple[Any, Any]] | None = None
    for profile in profiles or ():
        deployed = _deployed(profile)
        if str(deployed["mode"]) != "System":
            continue
        drift = {
            field: (deployed[field], value)
            for field, value in wanted.items()
            if deployed[field] is not None and deployed[field] != value
        }
        if best is None or len(drift) < len(best):
            best = drift
    return best or {}


def check_system_pool(shape: PoolShape, count: int, profiles: Iterable[Any]) -> dict[str, Any]:
    """The stack's system pool (`{"vmSize", "count", "zones", ...}`) if Azure runs it; else raise
    `ConfigError` naming each stack key whose value differs, with the manual step that applies it (the
    inline pool list is ignored after creation, so `pulumi up` cannot)."""
    drift = system_pool_drift(shape, count, profiles)
    if not drift:
        return {
            "vmSize": shape.vm_size,
            "count": count,
            "zones": list(shape.zones),
            "osDiskType": shape.os_disk_type,
            "osDiskSizeGB": shape.os_disk_size_gb,
        }
    lines = []
    for field, (deployed, configured) in drift.items():
        key, step = SYSTEM_POOL_KEYS[field]
        lines.append(f"{PROJECT}:{key} is {configured!r} but the system pool runs {deployed!r}: {step}")
    raise ConfigError(
        "; ".join(lines) + " (the system pool is declared inline in the cluster, which `pulumi up` cannot "
        "change after creation: pulumi-azure-native#579, #2719)"
    )
