"""Container Insights that collects: the data collection rule and its association.

The `omsagent` add-on with `useAADAuth: "true"` sends data only through a data collection rule with the stream
`Microsoft-ContainerInsights-Group-Default` associated with the cluster; `az aks enable-addons` creates both,
a plain ARM PUT of the add-on does not (terraform-provider-azurerm#21305; AKS docs "Enable monitoring for
Kubernetes clusters", template `existingClusterOnboarding.json`).
"""

from __future__ import annotations

import pytest

AKS = "azure-native:containerservice:ManagedCluster"
WORKSPACE = "azure-native:operationalinsights:Workspace"
DCR = "azure-native:monitor:DataCollectionRule"
DCRA = "azure-native:monitor:DataCollectionRuleAssociation"
STREAM = "Microsoft-ContainerInsights-Group-Default"


def insights(run, type_: str):
    """The Container Insights component's `type_` resource (managed Prometheus has a rule of its own)."""
    (found,) = [r for r in run.of_type(type_) if r.parent.endswith("ContainerInsights::insights")]
    return found


def test_rule_sends_the_container_insights_stream_to_the_workspace(dev):
    workspace = dev.one(WORKSPACE)
    rule = insights(dev, DCR).inputs
    assert rule["kind"] == "Linux"
    assert rule["location"] == workspace.inputs["location"], "a rule lives in its destination's region"
    (extension,) = rule["dataSources"]["extensions"]
    assert extension["extensionName"] == "ContainerInsights"
    assert extension["streams"] == [STREAM]
    (destination,) = rule["destinations"]["logAnalytics"]
    assert destination["workspaceResourceId"] == workspace.id
    (flow,) = rule["dataFlows"]
    assert flow == {"streams": [STREAM], "destinations": [destination["name"]]}
    assert rule["dataCollectionRuleName"] == f"MSCI-{dev.one(AKS).state['name']}"


def test_the_addon_uses_managed_identity_and_the_same_workspace(dev):
    """useAADAuth is what makes the rule necessary; both must point at one workspace."""
    oms = dev.one(AKS).inputs["addonProfiles"]["omsagent"]
    assert oms["config"] == {"logAnalyticsWorkspaceResourceID": dev.one(WORKSPACE).id, "useAADAuth": "true"}


def test_rule_is_associated_with_the_cluster(dev):
    association = insights(dev, DCRA).inputs
    assert association["resourceUri"] == dev.one(AKS).id
    assert association["dataCollectionRuleId"] == insights(dev, DCR).id
    assert association["associationName"] == "ContainerInsightsExtension"


def test_collection_profile_is_cost_conscious(dev):
    """The AKS docs' "Cost-optimized" preset: 5-minute interval, system namespaces out, ContainerLogV2."""
    (extension,) = insights(dev, DCR).inputs["dataSources"]["extensions"]
    settings = extension["extensionSettings"]["dataCollectionSettings"]
    assert settings["interval"] == "5m"
    assert settings["namespaceFilteringMode"] == "Exclude"
    assert "kube-system" in settings["namespaces"]
    assert settings["enableContainerLogV2"] is True


@pytest.mark.parametrize(("stack", "days"), [("dev", 30), ("prod", 90)])
def test_retention_per_stack(stack, days, request):
    assert request.getfixturevalue(stack).one(WORKSPACE).inputs["retentionInDays"] == days


def test_local_target_has_no_monitoring(local):
    assert not local.of_type(DCR) and not local.of_type(DCRA)
