"""The classifier pod template: probes, resources, hardening. Pure builders used by `Workload`."""

from __future__ import annotations

import pulumi
import pulumi_kubernetes as k8s

from stacks.config import PRE_STOP_SLEEP_S, WorkloadSettings

CONTAINER_PORT = 8080
RUN_AS_UID = 10001  # the non-root user of service/Dockerfile
STARTUP_PERIOD_S = 5
STARTUP_FAILURES = 36  # 36 x 5 s = 180 s for model load + warm-up before liveness takes over


def service_env(s: WorkloadSettings) -> list[k8s.core.v1.EnvVarArgs]:
    """Environment the service reads (see service/ settings). TORCH_THREADS = CPU limit in whole cores."""
    values = {
        "MODEL_NAME": s.model_name,
        "MODEL_VERSION": s.model_version,
        "MODEL_ARCH": s.model_arch,
        "MAX_BATCH_SIZE": str(s.max_batch_size),
        "MAX_BATCH_DELAY_MS": str(s.max_batch_delay_ms),
        "MAX_QUEUE": str(s.max_queue),
        "REQUEST_TIMEOUT_MS": str(s.request_timeout_ms),
        "TORCH_THREADS": str(s.torch_threads),
        "PORT": str(CONTAINER_PORT),
    }
    return [k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in values.items()]


def _probe(path: str, period_s: int, failures: int, timeout_s: int = 2) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=path, port="http"),
        period_seconds=period_s,
        timeout_seconds=timeout_s,
        failure_threshold=failures,
    )


def container(
    s: WorkloadSettings,
    image: pulumi.Input[str],
    image_pull_policy: str,
    extra_env: list[k8s.core.v1.EnvVarArgs] | None = None,
) -> k8s.core.v1.ContainerArgs:
    """The classifier container: port `http` 8080, /healthz + /readyz probes, non-root, read-only root."""
    return k8s.core.v1.ContainerArgs(
        name=s.app_name,
        image=image,
        image_pull_policy=image_pull_policy,
        ports=[k8s.core.v1.ContainerPortArgs(name="http", container_port=CONTAINER_PORT, protocol="TCP")],
        env=service_env(s) + (extra_env or []),
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": s.cpu_request, "memory": s.memory_request},
            limits={"cpu": s.cpu_limit, "memory": s.memory_limit},
        ),
        startup_probe=_probe("/healthz", STARTUP_PERIOD_S, STARTUP_FAILURES),
        liveness_probe=_probe("/healthz", 10, 3),
        readiness_probe=_probe("/readyz", 5, 2),
        lifecycle=k8s.core.v1.LifecycleArgs(
            pre_stop=k8s.core.v1.LifecycleHandlerArgs(
                sleep=k8s.core.v1.SleepActionArgs(seconds=PRE_STOP_SLEEP_S)
            )
        ),
        security_context=k8s.core.v1.SecurityContextArgs(
            run_as_non_root=True,
            run_as_user=RUN_AS_UID,
            run_as_group=RUN_AS_UID,
            allow_privilege_escalation=False,
            read_only_root_filesystem=True,
            privileged=False,
            capabilities=k8s.core.v1.CapabilitiesArgs(drop=["ALL"]),
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        ),
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")],
    )


def spread(labels: dict[str, str]) -> list[k8s.core.v1.TopologySpreadConstraintArgs]:
    """Spread replicas over nodes and zones; `ScheduleAnyway` so a single-zone dev cluster still schedules."""
    return [
        k8s.core.v1.TopologySpreadConstraintArgs(
            max_skew=1,
            topology_key=key,
            when_unsatisfiable="ScheduleAnyway",
            label_selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
        )
        for key in ("kubernetes.io/hostname", "topology.kubernetes.io/zone")
    ]


def pod_spec(
    s: WorkloadSettings,
    container_args: k8s.core.v1.ContainerArgs,
    labels: dict[str, str],
    service_account: str,
    node_selector: dict[str, str] | None = None,
) -> k8s.core.v1.PodSpecArgs:
    """Pod: runs as UID 10001 with seccomp RuntimeDefault, a 512 MiB emptyDir at /tmp, no API token;
    `node_selector` (node labels) pins it to a node pool."""
    return k8s.core.v1.PodSpecArgs(
        containers=[container_args],
        node_selector=node_selector or None,
        service_account_name=service_account,
        automount_service_account_token=False,
        termination_grace_period_seconds=s.termination_grace_s,
        security_context=k8s.core.v1.PodSecurityContextArgs(
            run_as_non_root=True,
            run_as_user=RUN_AS_UID,
            run_as_group=RUN_AS_UID,
            fs_group=RUN_AS_UID,
            seccomp_profile=k8s.core.v1.SeccompProfileArgs(type="RuntimeDefault"),
        ),
        volumes=[
            k8s.core.v1.VolumeArgs(
                name="tmp", empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit="512Mi")
            )
        ],
        topology_spread_constraints=spread(labels),
    )
