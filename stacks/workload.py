"""The classifier on Kubernetes: Namespace, Deployment, LoadBalancer Service, HPA (unless KEDA scales it),
PDB, NetworkPolicy, PodMonitor (azure)."""

from __future__ import annotations

from dataclasses import dataclass, field

import pulumi
import pulumi_kubernetes as k8s

from stacks import pod_spec, scrape
from stacks.config import ModelSettings, WorkloadSettings

SERVICE_PORT = 80
API_KEY_FIELD = "api-key"


@dataclass
class WorkloadArgs:
    """Inputs for `Workload` (the same for the azure and local targets).

    `image`: what the container runs (`<repo>:<tag>@sha256:...` on Azure). `image_pull_policy`:
    `Always` for registry images, `IfNotPresent` for a locally loaded image. `pod_annotations`
    (e.g. the image digest for the local target, so a rebuild rolls out), `service_annotations`
    (Azure load balancer settings) and `depends_on` (the AcrPull assignment: no pod before kubelet
    can pull) are optional. `checkov_skips` (check id → reason) become `checkov.io/skipN`
    annotations on the Deployment, so each accepted finding is documented where it applies.
    `api_key` (a Pulumi secret) becomes a Kubernetes Secret read by the container as `API_KEY`.
    `model`: where the model comes from (MODEL_URI env and a cache emptyDir, `pod_spec.model_env`).
    `workload_identity_client_id`: a managed identity's client id; the service account is annotated with
    it and the pods labelled `azure.workload.identity/use: "true"`, so the AKS webhook injects
    AZURE_CLIENT_ID / AZURE_TENANT_ID / AZURE_FEDERATED_TOKEN_FILE and a projected token volume of its own
    (it works with `automountServiceAccountToken: false`: that flag only drops the API token volume).
    `model_storage_secret`: name of an optional Secret holding an emulator's connection string (local).
    `node_selector`: node labels the pods require (on AKS the label every version of the workload pool
    carries, `stacks.cluster.WORKLOAD_NODE_SELECTOR`); empty for any node.
    `service_type`: `LoadBalancer` (public, plain HTTP on port 80) or `ClusterIP` (behind the TLS ingress).
    `hpa`: declare the CPU HorizontalPodAutoscaler; false where a KEDA ScaledObject scales the Deployment
    (`stacks.keda`; KEDA makes and owns its own HPA). `pod_monitor`: declare the managed Prometheus
    PodMonitor (`stacks.scrape`; its CRD exists only where the add-on runs).
    """

    settings: WorkloadSettings
    image: pulumi.Input[str]
    image_pull_policy: str = "Always"
    pod_annotations: dict[str, pulumi.Input[str]] = field(default_factory=dict)
    service_annotations: dict[str, str] = field(default_factory=dict)
    depends_on: list[pulumi.Resource] = field(default_factory=list)
    checkov_skips: dict[str, str] = field(default_factory=dict)
    api_key: pulumi.Input[str] | None = None
    model: ModelSettings | None = None
    workload_identity_client_id: pulumi.Input[str] | None = None
    model_storage_secret: str | None = None
    node_selector: dict[str, str] = field(default_factory=dict)
    service_type: str = "LoadBalancer"
    hpa: bool = True
    pod_monitor: bool = False


#: Deployment create/update await (pulumi-kubernetes waits for the rollout, 10 min by default). A first
#: rollout on AKS also waits for the AcrPull assignment to reach the kubelet identity's token (Azure RBAC:
#: "changes can take up to 10 minutes", often less) while pods sit in ImagePullBackOff with growing back-off,
#: plus the node pool scaling out and the model load (startup probe up to 180 s).
ROLLOUT_TIMEOUT = "20m"


class Workload(pulumi.ComponentResource):
    """Deploys the service. Pass the Kubernetes provider in `opts.providers`.

    Outputs: `namespace`, `service_name`, `endpoint` (`http://<load balancer IP or host>/`).
    """

    def __init__(self, name: str, args: WorkloadArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:workload:Workload", name, None, opts)
        s = args.settings
        child = pulumi.ResourceOptions(parent=self)
        labels = {"app.kubernetes.io/name": s.app_name, "app.kubernetes.io/part-of": "aks-image-classifier"}
        self.namespace = k8s.core.v1.Namespace(
            f"{name}-ns",
            metadata=k8s.meta.v1.ObjectMetaArgs(
                name=s.namespace,
                labels={
                    "pod-security.kubernetes.io/enforce": "restricted",
                    "pod-security.kubernetes.io/warn": "restricted",
                },
            ),
            opts=child,
        )
        ns = self.namespace.metadata.name

        def meta(object_name: str, **extra) -> k8s.meta.v1.ObjectMetaArgs:
            return k8s.meta.v1.ObjectMetaArgs(name=object_name, namespace=ns, labels=labels, **extra)

        identity = args.workload_identity_client_id
        self.service_account = k8s.core.v1.ServiceAccount(
            f"{name}-sa",
            metadata=meta(
                s.app_name,
                annotations={pod_spec.WORKLOAD_IDENTITY_CLIENT_ID: identity}
                if identity is not None
                else None,
            ),
            automount_service_account_token=False,
            opts=child,
        )
        pod_labels = {**labels, pod_spec.WORKLOAD_IDENTITY_LABEL: "true"} if identity is not None else labels
        extra_env = pod_spec.model_env(args.model, args.model_storage_secret)
        model_cache = bool(extra_env)
        checkov_skips = dict(args.checkov_skips)
        self.api_key_secret = None
        if args.api_key is not None:
            self.api_key_secret = k8s.core.v1.Secret(
                f"{name}-api-key",
                metadata=meta(f"{s.app_name}-api-key"),
                type="Opaque",
                string_data={API_KEY_FIELD: pulumi.Output.secret(args.api_key)},
                opts=child,
            )
            extra_env.append(
                k8s.core.v1.EnvVarArgs(
                    name="API_KEY",
                    value_from=k8s.core.v1.EnvVarSourceArgs(
                        secret_key_ref=k8s.core.v1.SecretKeySelectorArgs(
                            name=self.api_key_secret.metadata.name, key=API_KEY_FIELD
                        )
                    ),
                )
            )
            checkov_skips["CKV_K8S_35"] = (
                "the service reads API_KEY from its environment; the value comes from a Secret in this "
                "namespace via secretKeyRef, is never in the manifest, and the pod has no API token"
            )
        if args.model_storage_secret is not None and model_cache:
            reason = (
                "AZURE_STORAGE_CONNECTION_STRING (an emulator's, local target only) comes from an optional "
                "Secret via secretKeyRef and is never in the manifest"
            )
            previous = checkov_skips.get("CKV_K8S_35")
            checkov_skips["CKV_K8S_35"] = f"{previous}; {reason}" if previous else reason
        container = pod_spec.container(s, args.image, args.image_pull_policy, extra_env, model_cache)
        skips = {
            f"checkov.io/skip{i}": f"{check}={reason}"
            for i, (check, reason) in enumerate(sorted(checkov_skips.items()), start=1)
        }
        self.deployment = k8s.apps.v1.Deployment(
            f"{name}-deployment",
            metadata=meta(s.app_name, annotations=skips or None),
            spec=k8s.apps.v1.DeploymentSpecArgs(
                replicas=s.replicas,
                revision_history_limit=5,
                selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels),
                strategy=k8s.apps.v1.DeploymentStrategyArgs(
                    type="RollingUpdate",
                    rolling_update=k8s.apps.v1.RollingUpdateDeploymentArgs(max_unavailable=0, max_surge=1),
                ),
                template=k8s.core.v1.PodTemplateSpecArgs(
                    metadata=k8s.meta.v1.ObjectMetaArgs(
                        labels=pod_labels,
                        annotations=dict(args.pod_annotations) or None,
                    ),
                    spec=pod_spec.pod_spec(s, container, labels, s.app_name, model_cache, args.node_selector),
                ),
            ),
            # The autoscaler (HPA or KEDA's) owns the replica count after creation; don't fight it on every
            # `pulumi up`.
            opts=pulumi.ResourceOptions(
                parent=self,
                depends_on=[self.service_account, *args.depends_on],
                ignore_changes=["spec.replicas"],
                custom_timeouts=pulumi.CustomTimeouts(create=ROLLOUT_TIMEOUT, update=ROLLOUT_TIMEOUT),
            ),
        )
        self.service = k8s.core.v1.Service(
            f"{name}-service",
            metadata=meta(s.app_name, annotations=args.service_annotations or None),
            spec=k8s.core.v1.ServiceSpecArgs(
                type=args.service_type,
                selector=labels,
                ports=[
                    k8s.core.v1.ServicePortArgs(
                        name="http",
                        port=SERVICE_PORT,
                        target_port="http",
                        protocol="TCP",
                        app_protocol="http",
                    )
                ],
                load_balancer_source_ranges=(list(s.allowed_source_ranges) or None)
                if args.service_type == "LoadBalancer"
                else None,
            ),
            opts=pulumi.ResourceOptions(parent=self, custom_timeouts=pulumi.CustomTimeouts(create="20m")),
        )
        self.hpa = _hpa(f"{name}-hpa", meta(s.app_name), s, self.deployment, child) if args.hpa else None
        self.pdb = k8s.policy.v1.PodDisruptionBudget(
            f"{name}-pdb",
            metadata=meta(s.app_name),
            spec=k8s.policy.v1.PodDisruptionBudgetSpecArgs(
                max_unavailable=1, selector=k8s.meta.v1.LabelSelectorArgs(match_labels=labels)
            ),
            opts=child,
        )
        self.network_policy = k8s.networking.v1.NetworkPolicy(
            f"{name}-netpol",
            metadata=meta(s.app_name),
            spec=scrape.network_policy_spec(labels),
            opts=child,
        )
        self.pod_monitor = None
        if args.pod_monitor:
            self.pod_monitor = k8s.apiextensions.CustomResource(
                f"{name}-podmonitor",
                api_version=scrape.POD_MONITOR_API_VERSION,
                kind="PodMonitor",
                metadata=meta(s.app_name),
                spec=scrape.pod_monitor_spec(labels),
                opts=child,
            )
        self.labels = labels
        self.endpoint: pulumi.Output[str] = self.service.status.apply(_endpoint)
        self.register_outputs(
            {"namespace": ns, "service_name": self.service.metadata.name, "endpoint": self.endpoint}
        )


def _hpa(
    name: str,
    metadata: k8s.meta.v1.ObjectMetaArgs,
    s: WorkloadSettings,
    deployment: k8s.apps.v1.Deployment,
    opts: pulumi.ResourceOptions,
) -> k8s.autoscaling.v2.HorizontalPodAutoscaler:
    """The CPU HorizontalPodAutoscaler of the Deployment: `targetCpuUtilization` % of the CPU request."""
    return k8s.autoscaling.v2.HorizontalPodAutoscaler(
        name,
        metadata=metadata,
        spec=k8s.autoscaling.v2.HorizontalPodAutoscalerSpecArgs(
            scale_target_ref=k8s.autoscaling.v2.CrossVersionObjectReferenceArgs(
                api_version="apps/v1", kind="Deployment", name=deployment.metadata.name
            ),
            min_replicas=s.min_replicas,
            max_replicas=s.max_replicas,
            metrics=[
                k8s.autoscaling.v2.MetricSpecArgs(
                    type="Resource",
                    resource=k8s.autoscaling.v2.ResourceMetricSourceArgs(
                        name="cpu",
                        target=k8s.autoscaling.v2.MetricTargetArgs(
                            type="Utilization", average_utilization=s.target_cpu_utilization
                        ),
                    ),
                )
            ],
            behavior=behavior(s),
        ),
        opts=opts,
    )


def behavior(s: WorkloadSettings) -> k8s.autoscaling.v2.HorizontalPodAutoscalerBehaviorArgs:
    """Scale up fast (double per 30 s), scale down slowly (half per minute after the stabilisation window)."""
    return k8s.autoscaling.v2.HorizontalPodAutoscalerBehaviorArgs(
        scale_up=k8s.autoscaling.v2.HPAScalingRulesArgs(
            stabilization_window_seconds=0,
            policies=[k8s.autoscaling.v2.HPAScalingPolicyArgs(type="Percent", value=100, period_seconds=30)],
        ),
        scale_down=k8s.autoscaling.v2.HPAScalingRulesArgs(
            stabilization_window_seconds=s.scale_down_stabilization_s,
            policies=[k8s.autoscaling.v2.HPAScalingPolicyArgs(type="Percent", value=50, period_seconds=60)],
        ),
    )


def _endpoint(status) -> str:
    """`http://<ip or hostname>/` of the first load balancer ingress ('' while none is assigned)."""
    ingress = (status.load_balancer.ingress or []) if status and status.load_balancer else []
    if not ingress:
        return ""
    host = ingress[0].ip or ingress[0].hostname
    return f"http://{host}/" if host else ""
