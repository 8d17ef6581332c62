"""Target `containerapps`: the Container App's allocation, scale rule, workload profile and canary split."""

from __future__ import annotations

from dataclasses import dataclass

from stacks import revisions
from stacks.config.quantities import cpu_millicores, memory_bytes
from stacks.config.reader import ConfigError, Reader
from stacks.config.workload import WorkloadSettings

#: Valid consumption allocations (Microsoft Learn, "Containers in Azure Container Apps", "Allocations"):
#: the container's vCPU must be 0.25-2.0 in steps of 0.25 in a Consumption-only environment, up to 4.0 on the
#: Consumption workload profile, with memory exactly twice the vCPU in GiB (0.25 / 0.5Gi ... 4.0 / 8.0Gi).
CONSUMPTION_ONLY_MAX_CPU = 2.0
CONSUMPTION_PROFILE_MAX_CPU = 4.0
CPU_STEP = 0.25
GIB_PER_CPU = 2.0
#: Dedicated workload profiles: vCPU and GiB of one instance (Microsoft Learn, "Workload profiles in Azure
#: Container Apps", profile types: General purpose D*, Memory optimized E*). A replica must fit one instance.
DEDICATED_PROFILES = {
    "D4": (4, 16),
    "D8": (8, 32),
    "D16": (16, 64),
    "D32": (32, 128),
    "E4": (4, 32),
    "E8": (8, 64),
    "E16": (16, 128),
    "E32": (32, 256),
}
WORKLOAD_PROFILES = ("Consumption", *DEDICATED_PROFILES)
#: Replicas of one revision: up to 1000 through the API and CLI (Microsoft Learn, "Quotas for Azure Container
#: Apps": "Maximum replicas configurable are 300 in Azure portal and 1000 in Azure CLI").
MAX_APP_REPLICAS = 1000


@dataclass(frozen=True)
class ContainerAppSettings:
    """Target `containerapps` only.

    `cpu` (vCPU) and `memory_gib` (GiB): `cpuLimit` and `memoryLimit`, a valid allocation. `min_replicas`
    (`containerAppMinReplicas`, 0 scales to zero) .. `max_replicas` (`maxReplicas`). `concurrency`
    (`containerAppConcurrency`): concurrent HTTP requests per replica before the scale rule adds one.
    `cooldown_s` (`scaleDownStabilizationSeconds`). `workload_profile`: None (Consumption-only environment),
    `Consumption` or a Dedicated type; `profile_min_count` / `profile_max_count` (`nodeMinCount` /
    `nodeMaxCount`) bound a Dedicated profile's instances. `canary_percent` of the traffic goes to this
    deployment's revision, the rest to `stable_revision` (`<appName>--<suffix>`, or None).
    `log_retention_days`: the Log Analytics workspace's.
    """

    cpu: float
    memory_gib: float
    min_replicas: int
    max_replicas: int
    concurrency: int
    cooldown_s: int
    workload_profile: str | None
    profile_min_count: int
    profile_max_count: int
    canary_percent: int
    stable_revision: str | None
    log_retention_days: int


def _allocation(r: Reader, workload_profile: str | None) -> tuple[float, float]:
    """`cpuLimit` (vCPU) and `memoryLimit` (GiB) as a Container Apps allocation; a ConfigError names the key
    that breaks the table (consumption) or the profile's size (Dedicated)."""
    cpu_key, memory_key = r.key("cpuLimit"), r.key("memoryLimit")
    cpu_value, memory_value = r.required("cpuLimit"), r.required("memoryLimit")
    millicores, gib = cpu_millicores(cpu_value), memory_bytes(memory_value) / 2**30
    cpu = millicores / 1000
    if workload_profile in DEDICATED_PROFILES:
        cores, profile_gib = DEDICATED_PROFILES[workload_profile]
        if cpu > cores or millicores % 10:
            raise ConfigError(
                f"{cpu_key} ({cpu_value}) must be at most {cores} vCPU with two decimals at most for the "
                f"{workload_profile} workload profile"
            )
        if gib > profile_gib or round(gib * 100) != gib * 100:
            raise ConfigError(
                f"{memory_key} ({memory_value}) must be at most {profile_gib}Gi with two decimals at most "
                f"for the {workload_profile} workload profile"
            )
        return cpu, gib
    max_cpu = CONSUMPTION_PROFILE_MAX_CPU if workload_profile else CONSUMPTION_ONLY_MAX_CPU
    step = round(CPU_STEP * 1000)
    if millicores % step or not step <= millicores <= max_cpu * 1000:
        where = "the Consumption workload profile" if workload_profile else "a Consumption-only environment"
        raise ConfigError(
            f"{cpu_key} ({cpu_value}) is not a Container Apps allocation in {where}: 0.25 to {max_cpu} "
            'vCPU in steps of 0.25 (Microsoft Learn, "Containers in Azure Container Apps", Allocations)'
        )
    if abs(gib - GIB_PER_CPU * cpu) > 1e-9:
        raise ConfigError(
            f"{memory_key} ({memory_value}) must be {GIB_PER_CPU * cpu:g}Gi for {cpu_key} {cpu:g}: "
            f"consumption allocations pair each vCPU with {GIB_PER_CPU:g} GiB (0.25 vCPU / 0.5Gi ... "
            f"{max_cpu:g} vCPU / {GIB_PER_CPU * max_cpu:g}Gi)"
        )
    return cpu, gib


def _stable_revision(r: Reader, app_name: str, canary_percent: int) -> str | None:
    """`stableRevision`: `<appName>--<suffix>` (the `latest_revision` output of the deployment to keep), or
    None; needed whenever `canaryPercent` leaves it traffic."""
    stable = r.str("stableRevision")
    if stable is None:
        if canary_percent < 100:
            raise ConfigError(
                f"{r.key('canaryPercent')} ({canary_percent}) needs {r.key('stableRevision')}: the revision "
                f"that keeps the other {100 - canary_percent} % (`pulumi stack output latest_revision` "
                "before the change)"
            )
        return None
    prefix = f"{app_name}{revisions.SEPARATOR}"
    suffix = stable.removeprefix(prefix)
    if not stable.startswith(prefix) or not revisions.is_revision_suffix(suffix):
        raise ConfigError(
            f"{r.key('stableRevision')} must name a revision of this app, {prefix}<suffix> (lower-case "
            f"letters, digits and single dashes), got {stable!r}"
        )
    if len(stable) > revisions.MAX_REVISION_NAME:
        raise ConfigError(
            f"{r.key('stableRevision')} is longer than {revisions.MAX_REVISION_NAME} characters: {stable!r}"
        )
    return stable


def container_app_settings(r: Reader, workload: WorkloadSettings) -> ContainerAppSettings:
    """Read and check the `containerapps` target's keys (see `ContainerAppSettings`)."""
    if not revisions.is_app_name(workload.app_name):
        raise ConfigError(
            f"{r.key('appName')} must be a container app name for target containerapps: "
            f"2-{revisions.MAX_APP_NAME} lower-case letters, digits and single dashes, from a letter; "
            f"got {workload.app_name!r}"
        )
    profile = r.str("workloadProfile")
    if profile is not None and profile not in WORKLOAD_PROFILES:
        raise ConfigError(
            f"{r.key('workloadProfile')} must be empty or one of {', '.join(WORKLOAD_PROFILES)}; "
            f"got {profile!r}"
        )
    cpu, gib = _allocation(r, profile)
    min_replicas = r.int("containerAppMinReplicas", minimum=0, maximum=MAX_APP_REPLICAS)
    max_replicas = r.int("maxReplicas", minimum=1, maximum=MAX_APP_REPLICAS)
    if min_replicas > max_replicas:
        raise ConfigError(
            f"{r.key('containerAppMinReplicas')} ({min_replicas}) must be <= {r.key('maxReplicas')} "
            f"({max_replicas})"
        )
    concurrency = r.int("containerAppConcurrency", minimum=1, maximum=10_000)
    if concurrency > workload.max_queue:
        raise ConfigError(
            f"{r.key('containerAppConcurrency')} ({concurrency}) must be <= {r.key('maxQueue')} "
            f"({workload.max_queue}): a replica would answer 503 (queue full) before the scale rule adds "
            "another"
        )
    profile_min = r.int("nodeMinCount", minimum=0, maximum=1000)
    profile_max = r.int("nodeMaxCount", minimum=1, maximum=1000)
    canary = r.int("canaryPercent", minimum=0, maximum=100)
    return ContainerAppSettings(
        cpu=cpu,
        memory_gib=gib,
        min_replicas=min_replicas,
        max_replicas=max_replicas,
        concurrency=concurrency,
        cooldown_s=workload.scale_down_stabilization_s,
        workload_profile=profile,
        profile_min_count=profile_min,
        profile_max_count=profile_max,
        canary_percent=canary,
        stable_revision=_stable_revision(r, workload.app_name, canary),
        log_retention_days=r.int("logRetentionDays", minimum=30, maximum=730),
    )
