"""The Kubernetes workload's settings: replicas and HPA bounds, container resources, batching, timeouts, the
load balancer's source ranges and the API key."""

from __future__ import annotations

import ipaddress
import math
import re
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from service.memory import MIN_BODIES, minimum_limit
from stacks.config.quantities import CPU, MEMORY, cpu_millicores, memory_bytes
from stacks.config.reader import DNS_LABEL, ConfigError, Reader

MIN_API_KEY_LENGTH = 16

#: Seconds the pod's preStop hook sleeps so endpoints and the Azure load balancer stop routing to it
#: before SIGTERM (Kubernetes "Pod termination" docs: endpoint removal races the signal).
PRE_STOP_SLEEP_S = 5
#: Seconds the service needs after its last request drains (uvicorn shutdown, interpreter exit). The service
#: has its own copy (service/server.py `DRAIN_MARGIN_S`, its uvicorn graceful-shutdown margin);
#: tests/stacks/test_deploy_path.py keeps the two equal.
DRAIN_MARGIN_S = 5

#: What the pod's service runs with and the stack does not set: service/settings.py defaults of
#: MAX_BODY_BYTES, MAX_IMAGE_PIXELS, MAX_CONNECTIONS and CROP_SIZE (tests/stacks/test_memory_limit.py keeps
#: them equal; the stack's program cannot import the service's settings, which need pydantic-settings).
SERVICE_MAX_BODY_BYTES = 20 * 1024 * 1024
SERVICE_MAX_IMAGE_PIXELS = 50_000_000
SERVICE_MAX_CONNECTIONS = 512
SERVICE_CROP_SIZE = 224
#: Peak RSS of `python -m service` after loading and warming up the default model (bytes): a seeded ResNet-50
#: measured 1071 MiB, 700 MiB of it Python, torch and torchvision before any model (docs/memory.md). Smaller
#: architectures need less; a bigger model is caught at start-up, whose budget line warns.
MODEL_FOOTPRINT_BYTES = 1100 * 1024 * 1024


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
    image_url_fetch: bool = False  # IMAGE_URL_FETCH: POST /predict with {"url": ...}
    image_url_allowed_hosts: tuple[str, ...] = ()  # IMAGE_URL_ALLOWED_HOSTS: hosts, IPs or CIDRs let through


def _request_and_limit(
    r: Reader,
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


def _resources(r: Reader) -> tuple[str, str, str, str]:
    """CPU and memory request/limit. The CPU limit must equal the request: the HPA's utilisation is a
    percentage of the request (Kubernetes "Horizontal Pod Autoscaling": resource metrics), so with a 1-CPU
    request and a 2-CPU limit a 70 % target scales out at 0.7 CPU, a third of what one pod can use. With
    request = limit the target is a share of the pod's real capacity, and the CFS quota the service sizes its
    threads from is the same number."""
    cpu = _request_and_limit(
        r, "cpu", CPU, "CPU quantity (e.g. 500m, 1, 1.5)", cpu_millicores, " (the HPA scales on it)"
    )
    if cpu_millicores(cpu[1]) != cpu_millicores(cpu[0]):
        raise ConfigError(
            f"{r.key('cpuLimit')} ({cpu[1]}) must equal {r.key('cpuRequest')} ({cpu[0]}): the HPA's "
            f"{r.key('targetCpuUtilization')} is a percentage of the request, so a higher limit makes it "
            "scale out before a pod is busy"
        )
    memory = _request_and_limit(r, "memory", MEMORY, "memory quantity (e.g. 512Mi, 2Gi)", memory_bytes)
    return (*cpu, *memory)


def minimum_memory_limit(cpu_limit: str, max_batch_size: int, max_queue: int) -> int:
    """The smallest `memoryLimit` (bytes) that leaves the service room for the model, its batches, queue,
    decoding and connections and a few maximal request bodies (`service.memory.minimum_limit`, the same
    formula the pod sizes its body budget with). DECODE_THREADS is the service's default for the CPU limit:
    min(4, whole CPUs of the quota, at least 1) (service/cpus.py `effective_cpus`)."""
    decode_threads = min(4, max(1, cpu_millicores(cpu_limit) // 1000))
    return minimum_limit(footprint=MODEL_FOOTPRINT_BYTES, max_batch_size=max_batch_size,
                         crop_size=SERVICE_CROP_SIZE, max_queue=max_queue, decode_threads=decode_threads,
                         max_image_pixels=SERVICE_MAX_IMAGE_PIXELS, max_connections=SERVICE_MAX_CONNECTIONS,
                         max_body_bytes=SERVICE_MAX_BODY_BYTES)


def _check_memory_limit(r: Reader, memory_limit: str, cpu_limit: str, max_batch_size: int,
                        max_queue: int) -> None:
    """`memoryLimit` >= `minimum_memory_limit`, else a ConfigError naming the key and the minimum (MiB)."""
    minimum = minimum_memory_limit(cpu_limit, max_batch_size, max_queue)
    if memory_bytes(memory_limit) < minimum:
        raise ConfigError(
            f"{r.key('memoryLimit')} ({memory_limit}) must be >= {-(-minimum // 2**20)}Mi: the model "
            f"(~{MODEL_FOOTPRINT_BYTES // 2**20} MiB), {r.key('maxBatchSize')} ({max_batch_size}) batches, "
            f"{r.key('maxQueue')} ({max_queue}) queued images, decoding and connections, plus room for "
            f"{MIN_BODIES} maximal request bodies (docs/memory.md), or the pod sheds every large upload"
        )


def _source_ranges(r: Reader) -> tuple[str, ...]:
    """`allowedSourceRanges`: CIDRs the load balancer admits; empty admits everyone."""
    return r.cidrs("allowedSourceRanges")


def api_key(r: Reader, is_secret: Callable[[str], bool]) -> Any:
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


#: A host name (RFC 1123, dots between labels), as `imageUrlAllowedHosts` may name one.
_HOST = re.compile(
    r"^(?=.{1,253}$)[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?(\.[a-z0-9]([-a-z0-9]{0,61}[a-z0-9])?)*$", re.I
)


def _url_fetch(r: Reader) -> tuple[bool, tuple[str, ...]]:
    """`imageUrlFetch` and `imageUrlAllowedHosts` (host names, IP addresses or CIDRs the service may fetch
    from although they are private, loopback, ...). The hosts need the fetch on: alone they do nothing."""
    enabled = r.bool("imageUrlFetch")
    hosts = r.list("imageUrlAllowedHosts")
    for host in hosts:
        try:
            ipaddress.ip_network(host, strict=False)
        except ValueError:
            if not _HOST.match(host):
                raise ConfigError(
                    f"{r.key('imageUrlAllowedHosts')} entries must be host names, IP addresses or CIDRs; "
                    f"got {host!r}"
                ) from None
    if hosts and not enabled:
        raise ConfigError(
            f"{r.key('imageUrlAllowedHosts')} is set but {r.key('imageUrlFetch')} is false: the service "
            "fetches no URL at all"
        )
    return enabled, hosts


def workload_settings(r: Reader) -> WorkloadSettings:
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
    max_batch_size = r.int("maxBatchSize", minimum=1, maximum=1024)
    max_queue = r.int("maxQueue", minimum=1, maximum=100_000)
    _check_memory_limit(r, memory_limit, cpu_limit, max_batch_size, max_queue)
    request_timeout_ms = r.int("requestTimeoutMs", minimum=1, maximum=600_000)
    termination_grace_s = r.int("terminationGracePeriodSeconds", minimum=10, maximum=600)
    drain_s = PRE_STOP_SLEEP_S + math.ceil(request_timeout_ms / 1000) + DRAIN_MARGIN_S
    if termination_grace_s < drain_s:
        raise ConfigError(
            f"{r.key('terminationGracePeriodSeconds')} ({termination_grace_s}) must be >= {drain_s}: "
            f"preStop {PRE_STOP_SLEEP_S} s + {r.key('requestTimeoutMs')} ({request_timeout_ms} ms) + "
            f"{DRAIN_MARGIN_S} s, or Kubernetes kills the pod while requests are still draining"
        )
    url_fetch, url_hosts = _url_fetch(r)
    return WorkloadSettings(
        app_name=r.match("appName", DNS_LABEL, "DNS label (RFC 1123)"),
        namespace=r.match("namespace", DNS_LABEL, "namespace name (RFC 1123 label)"),
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
        max_batch_size=max_batch_size,
        max_batch_delay_ms=r.int("maxBatchDelayMs", minimum=0, maximum=10_000),
        max_queue=max_queue,
        request_timeout_ms=request_timeout_ms,
        termination_grace_s=termination_grace_s,
        allowed_source_ranges=_source_ranges(r),
        image_url_fetch=url_fetch,
        image_url_allowed_hosts=url_hosts,
    )
