"""Container Insights data collection: the rule that makes the AKS monitoring add-on send anything at all."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import monitor

#: The stream the Container Insights extension emits (all its tables, filtered by the settings below).
CONTAINER_INSIGHTS_STREAM = "Microsoft-ContainerInsights-Group-Default"
#: The AMA extension that collects it.
CONTAINER_INSIGHTS_EXTENSION = "ContainerInsights"
#: Association name the Azure portal and `az aks enable-addons` use, so the portal recognises it.
ASSOCIATION_NAME = "ContainerInsightsExtension"
DESTINATION = "ciworkspace"
#: The "Cost-optimized" collection preset of the AKS docs ("Configure data collection in Container insights
#: using data collection rule"): scrape every 5 minutes instead of 1, skip the system namespaces whose logs
#: and inventory nobody reads for this service, and write ContainerLogV2 (the cheaper, Basic-logs-capable
#: schema). Collection cost scales with the interval and the namespaces kept.
COLLECTION_INTERVAL = "5m"
EXCLUDED_NAMESPACES = ("kube-system", "gatekeeper-system", "azure-arc")


def collection_settings() -> dict:
    """`extensionSettings` of the ContainerInsights data source (camelCase, as the extension reads them)."""
    return {
        "dataCollectionSettings": {
            "interval": COLLECTION_INTERVAL,
            "namespaceFilteringMode": "Exclude",
            "namespaces": list(EXCLUDED_NAMESPACES),
            "enableContainerLogV2": True,
        }
    }


@dataclass
class ContainerInsightsArgs:
    """`workspace_id`: the Log Analytics workspace (ARM id; its retention is `logRetentionDays`);
    `cluster_id`: the ManagedCluster's ARM id; `cluster_name` names the rule (`MSCI-<cluster>`, as the
    CLI does)."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    workspace_id: pulumi.Input[str]
    cluster_id: pulumi.Input[str]
    cluster_name: pulumi.Input[str]


class ContainerInsights(pulumi.ComponentResource):
    """A data collection rule (stream `Microsoft-ContainerInsights-Group-Default` from the `ContainerInsights`
    extension to the workspace) and its association with the cluster.

    The `omsagent` add-on with `useAADAuth: "true"` (managed-identity auth) collects only through such a
    rule; `az aks enable-addons` creates both, a plain ARM PUT of the add-on does not, and the agents then
    run and bill without sending data (terraform-provider-azurerm#21305; AKS docs "Enable monitoring for
    Kubernetes clusters", ARM template `existingClusterOnboarding.json`, whose rule shape this follows).
    Outputs: `rule_id`, `association_id`.
    """

    def __init__(self, name: str, args: ContainerInsightsArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:monitoring:ContainerInsights", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.rule = monitor.DataCollectionRule(
            f"{name}-dcr",
            data_collection_rule_name=pulumi.Output.concat("MSCI-", args.cluster_name),
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind=monitor.KnownDataCollectionRuleResourceKind.LINUX,
            description="Container Insights (cost-optimized preset) for the aks-image-classifier cluster",
            data_sources=monitor.DataCollectionRuleDataSourcesArgs(
                extensions=[
                    monitor.ExtensionDataSourceArgs(
                        name=ASSOCIATION_NAME,
                        extension_name=CONTAINER_INSIGHTS_EXTENSION,
                        streams=[CONTAINER_INSIGHTS_STREAM],
                        extension_settings=collection_settings(),
                    )
                ]
            ),
            destinations=monitor.DataCollectionRuleDestinationsArgs(
                log_analytics=[
                    monitor.LogAnalyticsDestinationArgs(
                        name=DESTINATION, workspace_resource_id=args.workspace_id
                    )
                ]
            ),
            data_flows=[
                monitor.DataFlowArgs(streams=[CONTAINER_INSIGHTS_STREAM], destinations=[DESTINATION])
            ],
            opts=child,
        )
        self.association = monitor.DataCollectionRuleAssociation(
            f"{name}-dcra",
            association_name=ASSOCIATION_NAME,
            resource_uri=args.cluster_id,
            data_collection_rule_id=self.rule.id,
            description="Associates the Container Insights rule with the AKS cluster",
            opts=child,
        )
        self.rule_id: pulumi.Output[str] = self.rule.id
        self.association_id: pulumi.Output[str] = self.association.id
        self.register_outputs({"rule_id": self.rule_id, "association_id": self.association_id})
