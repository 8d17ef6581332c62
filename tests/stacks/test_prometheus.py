"""Managed Prometheus end to end (stacks/prometheus.py, stacks/cluster.py) on dev and prod under mocks.

The reference is Azure's onboarding template (Azure/prometheus-collector `AddonBicepTemplate/
FullAzureMonitorMetricsProfile.bicep`, `AddonTerraformTemplate/main.tf`): an Azure Monitor workspace, a Linux
data collection endpoint, a rule whose `prometheusForwarder` sends `Microsoft-PrometheusMetrics` to the
workspace through that endpoint, the rule's association with the cluster, and `azureMonitorProfile.metrics`
on the cluster. ARM and Pulumi create no endpoint, rule or association for the add-on by themselves
(terraform-provider-azurerm#23623): without them the add-on's agents run and send nothing.
"""

from __future__ import annotations

import pytest

from stacks import prometheus
from tests.harness import stack_mocks as mocks

AKS = "azure-native:containerservice:ManagedCluster"
AMW = "azure-native:monitor:AzureMonitorWorkspace"
DCE = "azure-native:monitor:DataCollectionEndpoint"
DCR = "azure-native:monitor:DataCollectionRule"
DCRA = "azure-native:monitor:DataCollectionRuleAssociation"
STREAM = "Microsoft-PrometheusMetrics"


def child(run, type_: str):
    """The ManagedPrometheus component's `type_` resource (Container Insights has a rule of its own)."""
    (found,) = [r for r in run.of_type(type_) if r.parent.endswith("ManagedPrometheus::prometheus")]
    return found


@pytest.fixture(params=["dev", "prod"])
def run(request):
    return request.getfixturevalue(request.param)


def test_rule_forwards_the_prometheus_stream_to_the_workspace_through_the_endpoint(run):
    workspace, endpoint, rule = run.one(AMW), run.one(DCE), child(run, DCR).inputs
    assert rule["kind"] == endpoint.inputs["kind"] == "Linux"
    assert rule["dataCollectionEndpointId"] == endpoint.id
    (source,) = rule["dataSources"]["prometheusForwarder"]
    assert source["streams"] == [STREAM]
    (destination,) = rule["destinations"]["monitoringAccounts"]
    assert destination["accountResourceId"] == workspace.id
    assert rule["dataFlows"] == [{"streams": [STREAM], "destinations": [destination["name"]]}]
    assert set(rule["destinations"]) == {"monitoringAccounts"}, "metrics only: no Log Analytics copy"
    # Endpoint and rule live in the workspace's region (the templates' azureMonitorWorkspaceLocation).
    assert rule["location"] == endpoint.inputs["location"] == workspace.inputs["location"] == "westeurope"


def test_rule_is_associated_with_the_cluster_and_the_addon_is_on(run):
    association = child(run, DCRA).inputs
    cluster = run.one(AKS)
    assert association["resourceUri"] == cluster.id
    assert association["dataCollectionRuleId"] == child(run, DCR).id
    assert cluster.inputs["azureMonitorProfile"] == {"metrics": {"enabled": True}}
    assert cluster.inputs["workloadAutoScalerProfile"] == {"keda": {"enabled": True}}


def test_names_follow_the_onboarding_template_and_fit_azure_limits(dev):
    cluster_name = dev.one(AKS).state["name"]
    assert dev.one(DCE).inputs["dataCollectionEndpointName"] == f"MSProm-westeurope-{cluster_name}"
    assert child(dev, DCR).inputs["dataCollectionRuleName"] == f"MSProm-westeurope-{cluster_name}"
    assert child(dev, DCRA).inputs["associationName"] == f"MSProm-westeurope-{cluster_name}"
    long = "c" * 80
    assert len(prometheus.collection_name("westeurope", long, prometheus.ENDPOINT_NAME_MAX)) == 44
    assert len(prometheus.collection_name("westeurope", long, prometheus.RULE_NAME_MAX)) == 64


def test_query_endpoint_is_a_stack_output(dev):
    """KEDA's trigger and Grafana read the workspace's Prometheus query endpoint (ARM `metrics`)."""
    assert dev.outputs["prometheus_query_endpoint"] == mocks.PROMETHEUS_QUERY_ENDPOINT


def test_local_target_declares_no_managed_prometheus(local):
    assert not local.of_type(AMW) and not local.of_type(DCE)
    assert "prometheus_query_endpoint" not in local.outputs
