"""KEDA scales the azure Deployment on queue depth read from managed Prometheus, CPU as a second trigger.

What KEDA needs to read an Azure Monitor workspace (kedacore/keda v2.20.2 `pkg/scalers/azure/
azure_managed_prometheus_http_round_tripper.go`; Azure Monitor docs "Integrate KEDA with your Azure Kubernetes
Service cluster"): a TriggerAuthentication with `podIdentity.provider: azure-workload` and the identity's
client id, that identity federated with `system:serviceaccount:kube-system:keda-operator`, and Monitoring Data
Reader on the workspace. The objects' shapes are checked against KEDA's CRDs in test_manifests.py.
"""

from __future__ import annotations

import pytest

from stacks import keda
from stacks.config import ConfigError
from stacks.roles import MONITORING_DATA_READER
from tests.harness import stack_mocks as mocks
from tests.stacks.conftest import run_stack

SCALED_OBJECT = "kubernetes:keda.sh/v1alpha1:ScaledObject"
TRIGGER_AUTH = "kubernetes:keda.sh/v1alpha1:TriggerAuthentication"
HPA = "kubernetes:autoscaling/v2:HorizontalPodAutoscaler"
IDENTITY = "azure-native:managedidentity:UserAssignedIdentity"
FEDERATION = "azure-native:managedidentity:FederatedIdentityCredential"
ROLE = "azure-native:authorization:RoleAssignment"
AMW = "azure-native:monitor:AzureMonitorWorkspace"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"


def keda_child(run, type_: str):
    (found,) = [r for r in run.of_type(type_) if r.parent.endswith("KedaScaling::scaling")]
    return found


@pytest.fixture(params=["dev", "prod"])
def run(request):
    return request.getfixturevalue(request.param)


def test_scaled_object_replaces_the_hpa_with_queue_and_cpu_triggers(run):
    w, m = run.config.workload, run.config.monitoring
    assert not run.of_type(HPA), "KEDA makes and owns the HPA; a second one would fight it"
    spec = run.one(SCALED_OBJECT).inputs["spec"]
    assert spec["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": run.one(DEPLOYMENT).inputs["metadata"]["name"],
    }
    assert (spec["minReplicaCount"], spec["maxReplicaCount"]) == (w.min_replicas, w.max_replicas)
    queue, cpu = spec["triggers"]
    assert queue["type"] == "prometheus"
    assert queue["metadata"] == {
        "serverAddress": mocks.PROMETHEUS_QUERY_ENDPOINT,
        "query": f'sum(inference_queue_depth{{namespace="{w.namespace}"}})',
        "threshold": str(m.queue_per_pod),
    }
    assert queue["authenticationRef"] == {"name": run.one(TRIGGER_AUTH).inputs["metadata"]["name"]}
    assert cpu == {
        "type": "cpu",
        "name": "cpu",
        "metricType": "Utilization",
        "metadata": {"value": str(w.target_cpu_utilization)},
    }
    behavior = spec["advanced"]["horizontalPodAutoscalerConfig"]["behavior"]
    assert behavior["scaleDown"]["stabilizationWindowSeconds"] == w.scale_down_stabilization_s


def test_trigger_authentication_uses_the_operator_identity(run):
    auth = run.one(TRIGGER_AUTH).inputs
    identity = keda_child(run, IDENTITY)
    assert auth["spec"] == {
        "podIdentity": {"provider": "azure-workload", "identityId": identity.state["clientId"]}
    }
    assert identity.state["clientId"] != mocks.MODEL_IDENTITY_CLIENT_ID, "not the service's own identity"
    assert auth["metadata"]["namespace"] == run.one(SCALED_OBJECT).inputs["metadata"]["namespace"]


def test_identity_is_federated_with_the_keda_operator_and_reads_the_workspace(run):
    identity = keda_child(run, IDENTITY)
    federation = keda_child(run, FEDERATION).inputs
    assert federation["subject"] == "system:serviceaccount:kube-system:keda-operator"
    assert federation["issuer"] == mocks.OIDC_ISSUER_URL
    assert federation["audiences"] == ["api://AzureADTokenExchange"]
    assert federation["resourceName"] == identity.state["name"]
    role = keda_child(run, ROLE).inputs
    assert role["roleDefinitionId"].endswith(f"/roleDefinitions/{MONITORING_DATA_READER}")
    assert role["scope"] == run.one(AMW).id
    assert role["principalId"] == identity.state["principalId"]
    assert role["principalType"] == "ServicePrincipal"  # field notes: v3 defaults to User


def test_scaled_object_waits_for_its_authentication_and_role(dev):
    deps = dev.one(SCALED_OBJECT).dependencies
    assert dev.one(TRIGGER_AUTH).urn in deps and keda_child(dev, ROLE).urn in deps
    assert keda_child(dev, FEDERATION).urn in dev.one(TRIGGER_AUTH).dependencies


def test_queue_target_is_configurable_and_bounded_by_the_queue():
    run = run_stack("dev", scaleQueuePerPod="4")
    (queue, _) = run.one(SCALED_OBJECT).inputs["spec"]["triggers"]
    assert queue["metadata"]["threshold"] == "4"
    with pytest.raises(ConfigError, match=r"^aks-image-classifier:scaleQueuePerPod must be <= 64"):
        run_stack("dev", scaleQueuePerPod="65")


def test_query_sums_the_queue_over_the_namespace():
    assert keda.queue_query("vision") == 'sum(inference_queue_depth{namespace="vision"})'


def test_local_target_keeps_the_cpu_hpa(local):
    assert local.one(HPA) and not local.of_type(SCALED_OBJECT) and not local.of_type(TRIGGER_AUTH)
