"""Wires the components for one stack. `__main__.py` calls `build(load_config())` and exports the result."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pulumi
import pulumi_kubernetes as k8s
from pulumi_azure_native import authorization, resources

from stacks.acr_auth import exchange_refresh_token
from stacks.acr_pull import AcrPull, AcrPullArgs
from stacks.cluster import Cluster, ClusterArgs
from stacks.cluster_access import ClusterAccess, ClusterAccessArgs
from stacks.config import PROJECT, StackConfig
from stacks.image import Image, ImageArgs
from stacks.registry import Registry, RegistryArgs, registry_name_prefix
from stacks.tls import Tls, TlsArgs
from stacks.workload import SERVICE_PORT, Workload, WorkloadArgs

SERVICE_CONTEXT = "service"
SERVICE_DOCKERFILE = "service/Dockerfile"
TokenExchange = Callable[[str, str, str], str]


def build(cfg: StackConfig, exchange: TokenExchange = exchange_refresh_token) -> dict[str, pulumi.Output]:
    """Declare every resource of the stack; return the stack outputs (name → Output).

    `exchange(login_server, tenant_id, arm_token) -> ACR refresh token` is injectable for tests.
    """
    if cfg.is_azure:
        return _azure(cfg, exchange)
    return _local(cfg)


def _service_image(cfg: StackConfig, **target: Any) -> Image:
    """The service image built from `service/`, baking the weights of the architecture the Deployment's
    MODEL_ARCH names (Dockerfile ARG). `target`: the `ImageArgs` that differ per target (repository,
    tag, push or load, registry credentials)."""
    return Image(
        "image",
        ImageArgs(
            context=SERVICE_CONTEXT,
            dockerfile=SERVICE_DOCKERFILE,
            build_args={"MODEL_ARCH": cfg.workload.model_arch},
            **target,
        ),
    )


def _azure(cfg: StackConfig, exchange: TokenExchange) -> dict[str, pulumi.Output]:
    assert cfg.cluster is not None and cfg.location is not None and cfg.security is not None
    name = f"{PROJECT}-{cfg.stack}"
    client = authorization.get_client_config_output()
    group = resources.ResourceGroup(f"{name}-rg", location=cfg.location)
    registry = Registry(
        "registry",
        RegistryArgs(
            resource_group_name=group.name,
            location=group.location,
            sku=cfg.registry_sku,
            name_prefix=registry_name_prefix("aic", cfg.stack),
            name=cfg.registry_name,
            untagged_retention_days=cfg.security.untagged_retention_days,
        ),
    )
    cluster = Cluster(
        "cluster", ClusterArgs(group.name, group.location, cfg.cluster, cfg.security, client.tenant_id)
    )
    access = ClusterAccess(
        "cluster-access",
        ClusterAccessArgs(
            principal_id=client.object_id,
            principal_type=cfg.security.deployer_principal_type,
            cluster_id=cluster.cluster_id,
            subscription_id=client.subscription_id,
        ),
    )
    acr_pull = AcrPull(
        "acr-pull",
        AcrPullArgs(
            principal_id=cluster.kubelet_object_id,
            registry_id=registry.registry_id,
            subscription_id=client.subscription_id,
        ),
    )
    push = not pulumi.runtime.is_dry_run()
    password = None
    if push:
        token = authorization.get_client_token_output()
        password = pulumi.Output.secret(
            pulumi.Output.all(registry.login_server, client.tenant_id, token.token).apply(
                lambda args: exchange(args[0], args[1], args[2])
            )
        )
    image = _service_image(
        cfg,
        repository=pulumi.Output.concat(registry.login_server, "/", cfg.image_repository),
        tag=cfg.stack,
        push=push,
        registry_server=registry.login_server,
        registry_password=password,
    )
    provider = k8s.Provider(
        "aks",
        kubeconfig=cluster.kubeconfig,
        delete_unreachable=True,
        opts=pulumi.ResourceOptions(depends_on=[cluster.workload_pool, access.assignment]),
    )
    tls = cfg.security.tls
    workload = Workload(
        "classifier",
        WorkloadArgs(
            settings=cfg.workload,
            image=image.ref,
            image_pull_policy="Always",
            service_annotations={}
            if tls
            else {"service.beta.kubernetes.io/azure-load-balancer-health-probe-request-path": "/readyz"},
            depends_on=[acr_pull.assignment],
            api_key=cfg.api_key,
            service_type="ClusterIP" if tls else "LoadBalancer",
        ),
        opts=pulumi.ResourceOptions(providers={"kubernetes": provider}, depends_on=[acr_pull]),
    )
    return {
        "endpoint": _https(cfg, workload, provider).endpoint if tls else workload.endpoint,
        "image": image.ref,
        "registry": registry.login_server,
        "cluster_name": cluster.cluster_name,
        "resource_group": group.name,
        "kubeconfig": cluster.kubeconfig,
    }


def _https(cfg: StackConfig, workload: Workload, provider: k8s.Provider) -> Tls:
    """The TLS ingress in front of the workload's (ClusterIP) Service: `https://<dnsLabel>.<region>...`."""
    assert cfg.security is not None and cfg.location is not None
    return Tls(
        "tls",
        TlsArgs(
            dns_label=cfg.security.dns_label,
            region=cfg.location,
            contact_email=cfg.security.tls_contact_email,
            namespace=workload.namespace.metadata.name,
            service_name=workload.service.metadata.name,
            service_port=SERVICE_PORT,
            app_name=cfg.workload.app_name,
            source_ranges=cfg.workload.allowed_source_ranges,
            labels=workload.labels,
        ),
        opts=pulumi.ResourceOptions(providers={"kubernetes": provider}),
    )


def _local(cfg: StackConfig) -> dict[str, pulumi.Output]:
    image = _service_image(cfg, repository=cfg.image_repository, tag="local", push=False, load=True)
    provider = k8s.Provider("local", context=cfg.kube_context, delete_unreachable=True)
    workload = Workload(
        "classifier",
        WorkloadArgs(
            settings=cfg.workload,
            image=image.ref,
            image_pull_policy="IfNotPresent",
            pod_annotations={"aks-image-classifier/image-digest": image.digest},
            checkov_skips={
                "CKV_K8S_15": "local target: the image is loaded into the local engine, never pulled",
                "CKV_K8S_43": "local target: a locally loaded image has no registry digest; "
                "the pod template carries the build digest as an annotation instead",
            },
            api_key=cfg.api_key,
        ),
        opts=pulumi.ResourceOptions(providers={"kubernetes": provider}),
    )
    return {"endpoint": workload.endpoint, "image": image.ref}
