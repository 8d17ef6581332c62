"""Wires the components for one stack. `__main__.py` calls `build(load_config())` and exports the result."""

from __future__ import annotations

from typing import Any

import pulumi
import pulumi_kubernetes as k8s

from stacks import containerapps_target
from stacks.acr_auth import exchange_refresh_token
from stacks.acr_pull import AcrPull, AcrPullArgs
from stacks.alert_rules import AlertRules, AlertRulesArgs
from stacks.azure_base import TokenExchange, azure_base, service_image
from stacks.cluster import WORKLOAD_NODE_SELECTOR, Cluster, ClusterArgs
from stacks.cluster_access import ClusterAccess, ClusterAccessArgs
from stacks.config import StackConfig
from stacks.grantee import grantees
from stacks.keda import KedaScaling, KedaScalingArgs
from stacks.local_image import LocalImage, LocalImageArgs
from stacks.maintenance import Maintenance, MaintenanceArgs, schedules_for
from stacks.model_repository import ModelRepository, ModelRepositoryArgs, storage_account_prefix
from stacks.monitoring import ContainerInsights, ContainerInsightsArgs
from stacks.prometheus import ManagedPrometheus, ManagedPrometheusArgs
from stacks.tls import Tls, TlsArgs
from stacks.workload import SERVICE_PORT, Workload, WorkloadArgs, behavior

LOCAL_TAG = "local"


def build(cfg: StackConfig, exchange: TokenExchange = exchange_refresh_token) -> dict[str, pulumi.Output]:
    """Declare every resource of the stack; return the stack outputs (name → Output).

    `exchange(login_server, tenant_id, arm_token) -> ACR refresh token` is injectable for tests.
    """
    if cfg.is_azure:
        return _azure(cfg, exchange)
    if cfg.is_containerapps:
        return containerapps_target.build(cfg, exchange)
    return _local(cfg)


def _model_repository(cfg: StackConfig, group: Any, cluster: Cluster, client, deployer: Any) -> Any:
    """The `ModelRepository` (storage, identity federated with the workload's service account), or None
    when `modelRepository` is false."""
    if cfg.model is None or not cfg.model.repository:
        return None
    assert cfg.access is not None
    return ModelRepository(
        "models",
        ModelRepositoryArgs(
            resource_group_name=group.name,
            location=group.location,
            sku=cfg.model.storage_sku,
            name_prefix=storage_account_prefix("aicm", cfg.stack),
            oidc_issuer_url=cluster.oidc_issuer_url,
            namespace=cfg.workload.namespace,
            service_account=cfg.workload.app_name,
            subscription_id=client.subscription_id,
            publishers=grantees(cfg.access.model_publishers, deployer, cfg.access.deployer_principal_type),
        ),
    )


def _azure(cfg: StackConfig, exchange: TokenExchange) -> dict[str, pulumi.Output]:
    assert cfg.cluster is not None and cfg.location is not None and cfg.security is not None
    assert cfg.access is not None and cfg.resource_group_name is not None
    base = azure_base(cfg, exchange)
    client, group, registry, image = base.client, base.group, base.registry, base.image
    # The deployer's object id only on the explicit opt-in: otherwise no assignment depends on who runs `up`.
    deployer = client.object_id if cfg.access.grant_deployer else None
    cluster = Cluster(
        "cluster", ClusterArgs(group.name, group.location, cfg.cluster, cfg.security, client.tenant_id)
    )
    access = ClusterAccess(
        "cluster-access",
        ClusterAccessArgs(
            admins=grantees(cfg.access.cluster_admins, deployer, cfg.access.deployer_principal_type),
            cluster_id=cluster.cluster_id,
            subscription_id=client.subscription_id,
        ),
    )
    if cfg.maintenance is not None:
        Maintenance(
            "maintenance",
            MaintenanceArgs(
                resource_group_name=group.name,
                cluster_name=cluster.cluster_name,
                window=cfg.maintenance,
                schedules=schedules_for(cfg.cluster.upgrade_channel),
            ),
        )
    ContainerInsights(
        "insights",
        ContainerInsightsArgs(
            resource_group_name=group.name,
            location=group.location,
            workspace_id=cluster.workspace.id,
            cluster_id=cluster.cluster.id,
            cluster_name=cluster.cluster_name,
        ),
    )
    prometheus = ManagedPrometheus(
        "prometheus",
        ManagedPrometheusArgs(
            resource_group_name=group.name,
            location=group.location,
            cluster_id=cluster.cluster_id,
            cluster_name=cluster.cluster_name,
        ),
    )
    AlertRules(
        "alerts",
        AlertRulesArgs(
            resource_group_name=group.name,
            location=group.location,
            workspace_id=prometheus.workspace_id,
            cluster_id=cluster.cluster_id,
            cluster_name=cluster.cluster_name,
            latency_objective_ms=cfg.monitoring.latency_objective_ms,
            alert_email=cfg.monitoring.alert_email,
            namespace=cfg.workload.namespace,
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
    repository = _model_repository(cfg, group, cluster, client, deployer)
    provider = k8s.Provider(
        "aks",
        kubeconfig=cluster.kubeconfig,
        opts=pulumi.ResourceOptions(depends_on=[cluster.workload_pool, *access.assignments]),
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
            depends_on=[acr_pull.assignment]
            + ([repository.reader_assignment, repository.federated_credential] if repository else []),
            api_key=cfg.api_key,
            model=cfg.model,
            workload_identity_client_id=repository.identity_client_id if repository else None,
            node_selector=dict(WORKLOAD_NODE_SELECTOR),
            service_type="ClusterIP" if tls else "LoadBalancer",
            hpa=False,  # KEDA's ScaledObject below makes and owns the HPA
            pod_monitor=True,
        ),
        opts=pulumi.ResourceOptions(providers={"kubernetes": provider}, depends_on=[acr_pull]),
    )
    KedaScaling(
        "scaling",
        KedaScalingArgs(
            resource_group_name=group.name,
            location=group.location,
            subscription_id=client.subscription_id,
            oidc_issuer_url=cluster.oidc_issuer_url,
            workspace_id=prometheus.workspace_id,
            query_endpoint=prometheus.query_endpoint,
            namespace=workload.namespace.metadata.name,
            deployment_name=workload.deployment.metadata.name,
            labels=workload.labels,
            settings=cfg.workload,
            queue_per_pod=cfg.monitoring.queue_per_pod,
            behavior=behavior(cfg.workload),
        ),
        opts=pulumi.ResourceOptions(providers={"kubernetes": provider}),
    )
    outputs = {
        "endpoint": _https(cfg, workload, provider).endpoint if tls else workload.endpoint,
        "image": image.ref,
        "registry": registry.login_server,
        "cluster_name": cluster.cluster_name,
        "resource_group": group.name,
        "kubeconfig": cluster.kubeconfig,
        "prometheus_query_endpoint": prometheus.query_endpoint,
        "workload_pool": pulumi.Output.from_input(cluster.workload_pool_name),
        "system_pool": cluster.system_pool,
    }
    if repository is not None:  # tools.publish_model --stack reads model_repository_url
        outputs["model_repository_url"] = repository.container_url
        outputs["model_storage_account_url"] = repository.blob_endpoint
        outputs["model_identity_client_id"] = repository.identity_client_id
    return outputs


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
    # Host platform (no `platforms`): the local cluster runs on this machine's architecture.
    image = service_image(cfg, repository=cfg.image_repository, tag=LOCAL_TAG, push=False, load=True)
    loaded = LocalImage(
        "local-image",
        LocalImageArgs(
            image=f"{cfg.image_repository}:{LOCAL_TAG}",
            digest=image.digest,
            cluster=cfg.deploy.local_cluster,
            name=cfg.deploy.local_cluster_name,
        ),
    )
    provider = k8s.Provider("local", context=cfg.kube_context)
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
            depends_on=loaded.ready,
            api_key=cfg.api_key,
            model=cfg.model,
            # An emulator's connection string (Azurite), from a Secret made by hand: docs/model-repository.md
            model_storage_secret=f"{cfg.workload.app_name}-model-storage",
        ),
        opts=pulumi.ResourceOptions(providers={"kubernetes": provider}),
    )
    return {"endpoint": workload.endpoint, "image": image.ref}
