"""Policy rules: plain functions over resource properties (camelCase, as the engine sends them).

Each `check_*` takes a resource's props (or the stack's resources) and returns a list of violation
messages, so the rules are unit-testable without the engine; `POLICIES` wraps them for `pulumi-policy`.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from pulumi_policy import (
    EnforcementLevel,
    ResourceValidationArgs,
    ResourceValidationPolicy,
    Secret,
    StackValidationArgs,
    StackValidationPolicy,
)

ACR = "azure-native:containerregistry:Registry"
AKS = "azure-native:containerservice:ManagedCluster"
K8S_PROVIDER = "pulumi:providers:kubernetes"
CONTAINER_APP = "azure-native:app:ContainerApp"
# Kubernetes kinds with a pod template at spec.template.spec (Pod itself: spec).
WORKLOADS = {
    "kubernetes:apps/v1:Deployment",
    "kubernetes:apps/v1:StatefulSet",
    "kubernetes:apps/v1:DaemonSet",
    "kubernetes:apps/v1:ReplicaSet",
    "kubernetes:batch/v1:Job",
    "kubernetes:core/v1:Pod",
}


def check_registry(props: Mapping[str, Any]) -> list[str]:
    """ACR: no admin user (a shared password), no anonymous pull."""
    problems = []
    if props.get("adminUserEnabled") is True:
        problems.append(
            "registry admin user must be disabled (adminUserEnabled: false); use Entra identities"
        )
    if props.get("anonymousPullEnabled") is True:
        problems.append("registry anonymous pull must be disabled (anonymousPullEnabled: false)")
    return problems


def check_cluster(props: Mapping[str, Any]) -> list[str]:
    """AKS: Kubernetes RBAC explicitly on."""
    if props.get("enableRBAC") is not True:
        return ["AKS cluster must set enableRBAC: true"]
    return []


def check_api_server_access(props: Mapping[str, Any]) -> list[str]:
    """AKS: the API server admits only listed CIDRs (`apiServerAccessProfile.authorizedIPRanges`, checkov
    CKV_AZURE_6), or is private (`enablePrivateCluster`). Advisory: a dev stack may leave it public."""
    profile = props.get("apiServerAccessProfile") or {}
    if profile.get("enablePrivateCluster") is True or profile.get("authorizedIPRanges"):
        return []
    return [
        "AKS API server is reachable from any address: set aks-image-classifier:apiServerAuthorizedIpRanges "
        "(apiServerAccessProfile.authorizedIPRanges) to the CIDRs that run `pulumi up` and kubectl"
    ]


def check_container_app(props: Mapping[str, Any]) -> list[str]:
    """Container Apps: ingress on HTTPS only (`allowInsecure` not true: "Ingress in Azure Container Apps")
    and every registry pulled with a managed identity, never a password secret (`passwordSecretRef`)."""
    configuration = props.get("configuration") or {}
    problems = []
    if (configuration.get("ingress") or {}).get("allowInsecure") is True:
        problems.append("container app ingress must not allow plain HTTP (allowInsecure: false)")
    for registry in configuration.get("registries") or []:
        if registry.get("passwordSecretRef") or not registry.get("identity"):
            problems.append(
                f"container app registry {registry.get('server', '?')} must be pulled with a managed "
                "identity (registries[].identity), not a password"
            )
    return problems


def pod_spec(resource_type: str, props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """The pod spec of a workload resource, or None for other types / unknown values. A Container App's
    `template` has `containers` and `initContainers` too: it counts for the image rule."""
    if resource_type == CONTAINER_APP:
        template = props.get("template") or {}
        return template if isinstance(template, Mapping) else None
    if resource_type not in WORKLOADS:
        return None
    spec = props.get("spec") or {}
    if resource_type != "kubernetes:core/v1:Pod":
        spec = ((spec.get("template") or {}).get("spec")) or {}
    return spec if isinstance(spec, Mapping) else None


def _containers(spec: Mapping[str, Any]) -> Iterable[Mapping[str, Any]]:
    for key in ("initContainers", "containers"):
        yield from spec.get(key) or []


def check_containers(spec: Mapping[str, Any]) -> list[str]:
    """Every container: non-root (own or pod securityContext), CPU and memory requests and limits."""
    problems = []
    pod_sc = spec.get("securityContext") or {}
    for c in _containers(spec):
        name = c.get("name", "?")
        sc = c.get("securityContext") or {}
        non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        user = sc.get("runAsUser", pod_sc.get("runAsUser"))
        if non_root is not True:
            problems.append(f"container {name}: runAsNonRoot must be true")
        if user == 0:
            problems.append(f"container {name}: runAsUser must not be 0 (root)")
        resources = c.get("resources") or {}
        for section in ("requests", "limits"):
            missing = [r for r in ("cpu", "memory") if not (resources.get(section) or {}).get(r)]
            if missing:
                problems.append(f"container {name}: {section} must set {' and '.join(missing)}")
    return problems


def check_images(resources: Iterable[tuple[str, Mapping[str, Any]]]) -> list[str]:
    """Images only from the stack's registries (`<login server>/...`). Not applicable without an ACR.

    `resources`: (type, props) of every resource in the stack. Unknown images (preview) are skipped.
    """
    resources = list(resources)
    servers = {p.get("loginServer") for t, p in resources if t == ACR}
    servers = {s for s in servers if isinstance(s, str) and s}
    if not servers:
        return []
    problems = []
    for resource_type, props in resources:
        spec = pod_spec(resource_type, props)
        for c in _containers(spec or {}):
            image = c.get("image")
            if isinstance(image, str) and not any(image.startswith(f"{s}/") for s in servers):
                problems.append(
                    f"container {c.get('name', '?')}: image {image} is not from {sorted(servers)}"
                )
    return problems


def secret_kubeconfig(props: Mapping[str, Any]) -> Mapping[str, Any] | None:
    """Remediation: a Kubernetes provider's `kubeconfig` is always stored as a secret.

    The Python policy SDK hands validations plain values (it cannot see secretness), so this rule
    enforces rather than checks: it returns the props with `kubeconfig` wrapped in `Secret`, or None
    when there is no kubeconfig (the local target uses the ambient context).
    """
    kubeconfig = props.get("kubeconfig")
    if not kubeconfig:
        return None
    updated = dict(props)
    updated["kubeconfig"] = kubeconfig if isinstance(kubeconfig, Secret) else Secret(kubeconfig)
    return updated


def _resource_policy(
    name: str, description: str, types: set[str], check, level: EnforcementLevel | None = None
) -> ResourceValidationPolicy:
    def validate(args: ResourceValidationArgs, report_violation) -> None:
        if args.resource_type in types:
            for problem in check(args.resource_type, args.props):
                report_violation(problem, args.urn)

    return ResourceValidationPolicy(
        name=name, description=description, validate=validate, enforcement_level=level
    )


def _stack_images(args: StackValidationArgs, report_violation) -> None:
    for problem in check_images((r.resource_type, r.props) for r in args.resources):
        report_violation(problem)


POLICIES = [
    _resource_policy(
        "acr-admin-user-disabled",
        "Container registries have no admin user and no anonymous pull.",
        {ACR},
        lambda _t, p: check_registry(p),
    ),
    _resource_policy(
        "aks-rbac-enabled", "AKS clusters have Kubernetes RBAC on.", {AKS}, lambda _t, p: check_cluster(p)
    ),
    _resource_policy(
        "aks-api-server-authorized-ranges",
        "AKS API servers admit only authorized IP ranges (a warning: dev stacks may stay public).",
        {AKS},
        lambda _t, p: check_api_server_access(p),
        EnforcementLevel.ADVISORY,
    ),
    _resource_policy(
        "container-app-https-identity-pull",
        "Container Apps serve HTTPS only and pull images with a managed identity.",
        {CONTAINER_APP},
        lambda _t, p: check_container_app(p),
    ),
    _resource_policy(
        "containers-non-root-with-resources",
        "Containers run as non-root and set CPU/memory requests and limits.",
        WORKLOADS,
        lambda t, p: check_containers(pod_spec(t, p) or {}),
    ),
    StackValidationPolicy(
        name="images-from-stack-registry",
        description="Workloads run only images from the stack's own container registry.",
        validate=_stack_images,
    ),
    ResourceValidationPolicy(
        name="kubeconfig-secret",
        description="Kubernetes provider kubeconfigs are stored as Pulumi secrets.",
        remediate=lambda args: secret_kubeconfig(args.props) if args.resource_type == K8S_PROVIDER else None,
        enforcement_level=EnforcementLevel.REMEDIATE,
    ),
]
