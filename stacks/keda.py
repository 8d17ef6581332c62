"""Scaling on load with the AKS KEDA add-on: queue depth from managed Prometheus, CPU as a second trigger.

KEDA's Prometheus scaler reads an Azure Monitor workspace when its TriggerAuthentication says
`podIdentity.provider: azure-workload`: the operator then gets an Entra token for
`https://prometheus.monitor.azure.com/.default` (kedacore/keda v2.20.2
`pkg/scalers/azure/azure_managed_prometheus_http_round_tripper.go`). The identity is a user-assigned one
federated with the add-on's operator service account `kube-system/keda-operator`, holding Monitoring
Data Reader on the workspace (Azure Monitor docs "Integrate KEDA with your Azure Kubernetes Service
cluster"; MicrosoftDocs azure-aks-docs `keda-workload-identity.md`). KEDA makes and owns an HPA
(`keda-hpa-<name>`) for the ScaledObject, so the Workload declares none on this target.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
import pulumi_kubernetes as k8s
from pulumi_azure_native import authorization, managedidentity

from stacks.config import WorkloadSettings
from stacks.model_repository import TOKEN_EXCHANGE_AUDIENCE, federation_subject
from stacks.roles import MONITORING_DATA_READER, role_definition_id

KEDA_API_VERSION = "keda.sh/v1alpha1"
#: The AKS KEDA add-on runs its operator as this service account (the one the federation names).
OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT = "kube-system", "keda-operator"
#: The queue series (service/metrics.py `inference_queue_depth`: images admitted, not yet in a forward pass).
QUEUE_SERIES = "inference_queue_depth"


def queue_query(namespace: str) -> str:
    """PromQL for the images waiting across the Deployment's pods (a sum: KEDA's default `AverageValue` metric
    type lets the HPA divide it by `threshold`, so replicas = ceil(sum / per-pod target))."""
    return f'sum({QUEUE_SERIES}{{namespace="{namespace}"}})'


@dataclass
class KedaScalingArgs:
    """`deployment_name` / `namespace`: what to scale and where the KEDA objects live; `settings`: replica
    bounds, CPU target and scale-down window; `queue_per_pod`: the per-pod queue target (images);
    `query_endpoint`: the workspace's Prometheus query URL; `workspace_id`: the Monitoring Data Reader scope;
    `oidc_issuer_url`: the cluster's issuer; `behavior`: the HPA behaviour KEDA's HPA should have."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    subscription_id: pulumi.Input[str]
    oidc_issuer_url: pulumi.Input[str]
    workspace_id: pulumi.Input[str]
    query_endpoint: pulumi.Input[str]
    namespace: pulumi.Input[str]
    deployment_name: pulumi.Input[str]
    labels: dict[str, str]
    settings: WorkloadSettings
    queue_per_pod: int
    behavior: k8s.autoscaling.v2.HorizontalPodAutoscalerBehaviorArgs


class KedaScaling(pulumi.ComponentResource):
    """The operator's identity (federated credential, Monitoring Data Reader on the workspace), a
    TriggerAuthentication that uses it, and a ScaledObject with a Prometheus (queue) and a CPU trigger.

    Pass the Kubernetes provider in `opts.providers`. Outputs: `identity_client_id`, `scaled_object_name`.
    """

    def __init__(self, name: str, args: KedaScalingArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:keda:KedaScaling", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        s = args.settings
        self.identity = managedidentity.UserAssignedIdentity(
            f"{name}-identity",
            resource_group_name=args.resource_group_name,
            location=args.location,
            opts=child,
        )
        self.federated_credential = managedidentity.FederatedIdentityCredential(
            f"{name}-federation",
            resource_group_name=args.resource_group_name,
            resource_name_=self.identity.name,
            issuer=args.oidc_issuer_url,
            subject=federation_subject(OPERATOR_NAMESPACE, OPERATOR_SERVICE_ACCOUNT),
            audiences=[TOKEN_EXCHANGE_AUDIENCE],
            opts=child,
        )
        self.reader_assignment = authorization.RoleAssignment(
            f"{name}-reader",
            principal_id=self.identity.principal_id,
            principal_type=authorization.PrincipalType.SERVICE_PRINCIPAL,  # see stacks.acr_pull
            role_definition_id=pulumi.Output.from_input(args.subscription_id).apply(
                lambda sub: role_definition_id(sub, MONITORING_DATA_READER)
            ),
            scope=args.workspace_id,
            description="the KEDA operator reads the classifier's queue depth (workload identity)",
            opts=child,
        )
        meta = {"name": f"{s.app_name}-prometheus", "namespace": args.namespace, "labels": args.labels}
        self.trigger_authentication = k8s.apiextensions.CustomResource(
            f"{name}-auth",
            api_version=KEDA_API_VERSION,
            kind="TriggerAuthentication",
            metadata=meta,
            spec={"podIdentity": {"provider": "azure-workload", "identityId": self.identity.client_id}},
            opts=pulumi.ResourceOptions(parent=self, depends_on=[self.federated_credential]),
        )
        self.scaled_object = k8s.apiextensions.CustomResource(
            f"{name}-scaledobject",
            api_version=KEDA_API_VERSION,
            kind="ScaledObject",
            metadata={**meta, "name": s.app_name},
            spec=scaled_object_spec(args, meta["name"]),
            opts=pulumi.ResourceOptions(
                parent=self, depends_on=[self.trigger_authentication, self.reader_assignment]
            ),
        )
        self.identity_client_id: pulumi.Output[str] = self.identity.client_id
        self.scaled_object_name = s.app_name
        self.register_outputs(
            {"identity_client_id": self.identity_client_id, "scaled_object_name": self.scaled_object_name}
        )


def scaled_object_spec(args: KedaScalingArgs, authentication: str) -> dict:
    """The ScaledObject's `spec` (keda.sh/v1alpha1): `minReplicas`..`maxReplicas` of the Deployment, the queue
    trigger (`queuePerPod` images per pod, authenticated by `authentication`) and the CPU trigger
    (`targetCpuUtilization` % of the request, as the HPA of the local target)."""
    s = args.settings
    return {
        "scaleTargetRef": {"apiVersion": "apps/v1", "kind": "Deployment", "name": args.deployment_name},
        "minReplicaCount": s.min_replicas,
        "maxReplicaCount": s.max_replicas,
        "advanced": {"horizontalPodAutoscalerConfig": {"behavior": args.behavior}},
        "triggers": [
            {
                "type": "prometheus",
                "name": "queue-depth",
                "metadata": {
                    "serverAddress": args.query_endpoint,
                    "query": queue_query_for(args.namespace),
                    "threshold": str(args.queue_per_pod),
                },
                "authenticationRef": {"name": authentication},
            },
            {
                "type": "cpu",
                "name": "cpu",
                "metricType": "Utilization",
                "metadata": {"value": str(s.target_cpu_utilization)},
            },
        ],
    }


def queue_query_for(namespace: pulumi.Input[str]) -> pulumi.Output[str]:
    """`queue_query` for a namespace that may be an Output (the Namespace object's name)."""
    return pulumi.Output.from_input(namespace).apply(queue_query)
