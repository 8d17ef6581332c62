"""The classifier pod template: probes, resources, hardening. Pure builders used by `Workload`."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s

from stacks.config import PRE_STOP_SLEEP_S, ModelSettings, WorkloadSettings

CONTAINER_PORT = 8080
#: The service's Prometheus endpoint (`/metrics`) listens on its own port (METRICS_PORT), which no Service or
#: Ingress exposes; the NetworkPolicy admits it only from the managed Prometheus scraper (`stacks.workload`).
METRICS_PORT = 9090
METRICS_PORT_NAME = "metrics"
METRICS_PATH = "/metrics"
RUN_AS_UID = 10001  # the non-root user of service/Dockerfile
STARTUP_PERIOD_S = 5
STARTUP_FAILURES = 36  # 36 x 5 s = 180 s for model load + warm-up before liveness takes over
# Liveness restarts the container after LIVENESS_FAILURES probes in a row time out or fail (Kubernetes
# docs, "Configure Liveness, Readiness and Startup Probes"). At peak a pod throttled at its CPU limit
# can leave the event loop seconds behind although nothing is wrong, and a restart there drops every
# request in flight and moves the load to the other pods, which then fall behind too. So liveness is
# lenient: 6 x 10 s = 60 s without an answer (5 s each) before a restart; /healthz does no work
# (it never waits on the batcher or the model). Readiness stays quick: a pod whose event loop is more
# than 2 s behind leaves the Service's endpoints after 2 x 5 s, which is what relieves it.
LIVENESS_PERIOD_S, LIVENESS_TIMEOUT_S, LIVENESS_FAILURES = 10, 5, 6
READINESS_PERIOD_S, READINESS_TIMEOUT_S, READINESS_FAILURES = 5, 2, 2
STARTUP_TIMEOUT_S = 2
MODEL_CACHE_DIR = "/var/cache/models"  # MODEL_CACHE_DIR: an emptyDir, the root file system stays read-only
MODEL_CACHE_SIZE = "4Gi"  # emptyDir size limit (node ephemeral storage): room for a few GB of model
WORKLOAD_IDENTITY_LABEL = "azure.workload.identity/use"  # pods the AKS workload identity webhook mutates
WORKLOAD_IDENTITY_CLIENT_ID = "azure.workload.identity/client-id"  # service account annotation


@dataclass(frozen=True)
class ProbeSpec:
    """One HTTP probe of the service on CONTAINER_PORT: `path`, every `period_s` seconds, each attempt given
    `timeout_s` seconds, `failures` consecutive failures before it acts (restart, or out of rotation)."""

    path: str
    period_s: int
    timeout_s: int
    failures: int

    @property
    def budget_s(self) -> int:
        """Seconds of consecutive failures before the probe acts: `period_s` x `failures`."""
        return self.period_s * self.failures


#: The service's three probes, shared by the Kubernetes pods and the Container App (`stacks.container_app`).
STARTUP = ProbeSpec("/healthz", STARTUP_PERIOD_S, STARTUP_TIMEOUT_S, STARTUP_FAILURES)
LIVENESS = ProbeSpec("/healthz", LIVENESS_PERIOD_S, LIVENESS_TIMEOUT_S, LIVENESS_FAILURES)
READINESS = ProbeSpec("/readyz", READINESS_PERIOD_S, READINESS_TIMEOUT_S, READINESS_FAILURES)


def service_env_values(s: WorkloadSettings) -> dict[str, str]:
    """Environment the service reads (see service/ settings), name -> value. No TORCH_THREADS: the
    service sizes its threads from the container's CFS quota (service/cpus.py). IMAGE_URL_FETCH and
    IMAGE_URL_ALLOWED_HOSTS (comma-separated, as the service's other list settings) only when
    `imageUrlFetch` is on: the service fetches no URL otherwise."""
    url_fetch = {}
    if s.image_url_fetch:
        url_fetch["IMAGE_URL_FETCH"] = "true"
        if s.image_url_allowed_hosts:
            url_fetch["IMAGE_URL_ALLOWED_HOSTS"] = ",".join(s.image_url_allowed_hosts)
    return {
        "MODEL_NAME": s.model_name,
        "MODEL_VERSION": s.model_version,
        "MODEL_ARCH": s.model_arch,
        "MAX_BATCH_SIZE": str(s.max_batch_size),
        "MAX_BATCH_DELAY_MS": str(s.max_batch_delay_ms),
        "MAX_QUEUE": str(s.max_queue),
        "REQUEST_TIMEOUT_MS": str(s.request_timeout_ms),
        "PORT": str(CONTAINER_PORT),
        "METRICS_PORT": str(METRICS_PORT),
        **url_fetch,
    }


def service_env(s: WorkloadSettings) -> list[k8s.core.v1.EnvVarArgs]:
    """`service_env_values` as container env entries."""
    return [k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in service_env_values(s).items()]


def _probe(spec: ProbeSpec) -> k8s.core.v1.ProbeArgs:
    return k8s.core.v1.ProbeArgs(
        http_get=k8s.core.v1.HTTPGetActionArgs(path=spec.path, port="http"),
        period_seconds=spec.period_s,
        timeout_seconds=spec.timeout_s,
        failure_threshold=spec.failures,
    )


def container(
    s: WorkloadSettings,
    image: pulumi.Input[str],
    image_pull_policy: str,
    extra_env: list[k8s.core.v1.EnvVarArgs] | None = None,
    model_cache: bool = False,
) -> k8s.core.v1.ContainerArgs:
    """The classifier container: ports `http` 8080 (the API) and `metrics` 9090 (`/metrics`), /healthz +
    /readyz probes, non-root, read-only root.
    `model_cache`: mount the `model-cache` emptyDir at MODEL_CACHE_DIR (a model fetched from MODEL_URI)."""
    return k8s.core.v1.ContainerArgs(
        name=s.app_name,
        image=image,
        image_pull_policy=image_pull_policy,
        ports=[
            k8s.core.v1.ContainerPortArgs(name="http", container_port=CONTAINER_PORT, protocol="TCP"),
            k8s.core.v1.ContainerPortArgs(
                name=METRICS_PORT_NAME, container_port=METRICS_PORT, protocol="TCP"
            ),
        ],
        env=service_env(s) + (extra_env or []),
        resources=k8s.core.v1.ResourceRequirementsArgs(
            requests={"cpu": s.cpu_request, "memory": s.memory_request},
            limits={"cpu": s.cpu_limit, "memory": s.memory_limit},
        ),
        startup_probe=_probe(STARTUP),
        liveness_probe=_probe(LIVENESS),
        readiness_probe=_probe(READINESS),
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
        volume_mounts=[k8s.core.v1.VolumeMountArgs(name="tmp", mount_path="/tmp")]
        + (
            [k8s.core.v1.VolumeMountArgs(name="model-cache", mount_path=MODEL_CACHE_DIR)]
            if model_cache
            else []
        ),
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
    model_cache: bool = False,
    node_selector: dict[str, str] | None = None,
) -> k8s.core.v1.PodSpecArgs:
    """Pod: runs as UID 10001 with seccomp RuntimeDefault, a 512 MiB emptyDir at /tmp, no API token
    (workload identity's webhook projects its own token volume, see `stacks.workload`); with
    `model_cache`, a MODEL_CACHE_SIZE emptyDir `model-cache` for the fetched model; `node_selector`
    (node labels) pins it to a node pool."""
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
        ]
        + (
            [
                k8s.core.v1.VolumeArgs(
                    name="model-cache",
                    empty_dir=k8s.core.v1.EmptyDirVolumeSourceArgs(size_limit=MODEL_CACHE_SIZE),
                )
            ]
            if model_cache
            else []
        ),
        topology_spread_constraints=spread(labels),
    )


def model_env_values(model: ModelSettings | None) -> dict[str, str]:
    """MODEL_URI, MODEL_LABELS_URI, MODEL_SHA256, CALIBRATION_URI (those set) and MODEL_CACHE_DIR, name ->
    value, when the model comes from a repository (`service.model_repository`); empty otherwise."""
    if model is None or model.uri is None:
        return {}
    values = {
        "MODEL_URI": model.uri,
        "MODEL_LABELS_URI": model.labels_uri,
        "MODEL_SHA256": model.sha256,
        "CALIBRATION_URI": model.calibration_uri,
        "MODEL_CACHE_DIR": MODEL_CACHE_DIR,
    }
    return {k: v for k, v in values.items() if v is not None}


def model_env(
    model: ModelSettings | None, connection_secret: str | None = None
) -> list[k8s.core.v1.EnvVarArgs]:
    """MODEL_URI, MODEL_LABELS_URI, MODEL_SHA256, MODEL_CACHE_DIR when the model comes from a repository
    (`service.model_repository`); a changed value changes the pod template, so `pulumi up` rolls the
    Deployment. `connection_secret`: a Secret whose optional `connection-string` key becomes
    AZURE_STORAGE_CONNECTION_STRING (an emulator such as Azurite on the local target)."""
    values = model_env_values(model)
    if not values:
        return []
    env = [k8s.core.v1.EnvVarArgs(name=k, value=v) for k, v in values.items()]
    if connection_secret is not None:
        env.append(
            k8s.core.v1.EnvVarArgs(
                name="AZURE_STORAGE_CONNECTION_STRING",
                value_from=k8s.core.v1.EnvVarSourceArgs(
                    secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(
                        name=connection_secret, key="connection-string", optional=True
                    )
                ),
            )
        )
    return env
