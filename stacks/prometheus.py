"""Azure Monitor managed service for Prometheus: the workspace the cluster's add-on writes to.

The shape follows Azure's own onboarding templates (Azure/prometheus-collector `AddonArmTemplate/
FullAzureMonitorMetricsProfile.json`, `AddonBicepTemplate/FullAzureMonitorMetricsProfile.bicep`,
`AddonTerraformTemplate/main.tf`): an Azure Monitor workspace (`Microsoft.Monitor/accounts`), a data
collection endpoint of kind Linux, a data collection rule whose `prometheusForwarder` data source sends the
`Microsoft-PrometheusMetrics` stream to the workspace (`monitoringAccounts` destination), and the rule's
association with the cluster. The cluster side is `azureMonitorProfile.metrics.enabled` (`stacks.cluster`).
`az aks update --enable-azure-monitor-metrics` and the portal create the endpoint, rule and association; an
ARM or Pulumi declaration of the cluster does not (terraform-provider-azurerm#23623): they are declared here.
"""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import monitor

PROMETHEUS_STREAM = monitor.KnownPrometheusForwarderDataSourceStreams.MICROSOFT_PROMETHEUS_METRICS
#: Names as the templates give them: data source `PrometheusDataSource`, destination `MonitoringAccount1`.
DATA_SOURCE = "PrometheusDataSource"
DESTINATION = "MonitoringAccount1"
#: The templates name endpoint, rule and association `MSProm-<region>-<cluster>`, cut to 44 characters for the
#: endpoint and 64 for the rule (the services' name limits; `substring(..., 0, min(44, ...))` in the Bicep).
NAME_PREFIX = "MSProm"
ENDPOINT_NAME_MAX = 44
RULE_NAME_MAX = 64


def collection_name(region: str, cluster: str, limit: int) -> str:
    """`MSProm-<region>-<cluster>` cut to `limit` characters (the onboarding templates' names)."""
    return f"{NAME_PREFIX}-{region}-{cluster}"[:limit]


@dataclass
class ManagedPrometheusArgs:
    """`location`: the workspace's region (endpoint and rule live with it, as in the templates);
    `cluster_id` / `cluster_name`: the ManagedCluster the rule is associated with."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    cluster_id: pulumi.Input[str]
    cluster_name: pulumi.Input[str]


class ManagedPrometheus(pulumi.ComponentResource):
    """Azure Monitor workspace, data collection endpoint, Prometheus data collection rule, its association.

    Outputs: `workspace_id` (ARM id, the scope of rule groups and of Monitoring Data Reader),
    `query_endpoint` (the workspace's Prometheus query URL, `https://<name>-<hash>.<region>.prometheus.monitor.
    azure.com`, which KEDA and Grafana read), `rule_id`, `association_id`.
    """

    def __init__(self, name: str, args: ManagedPrometheusArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:prometheus:ManagedPrometheus", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.workspace = monitor.AzureMonitorWorkspace(
            f"{name}-amw",
            resource_group_name=args.resource_group_name,
            location=args.location,
            opts=child,
        )
        collection = pulumi.Output.all(args.location, args.cluster_name)
        self.endpoint = monitor.DataCollectionEndpoint(
            f"{name}-dce",
            data_collection_endpoint_name=collection.apply(
                lambda a: collection_name(a[0], a[1], ENDPOINT_NAME_MAX)
            ),
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind=monitor.KnownDataCollectionEndpointResourceKind.LINUX,
            description="Managed Prometheus ingestion for the aks-image-classifier cluster",
            opts=child,
        )
        self.rule = monitor.DataCollectionRule(
            f"{name}-dcr",
            data_collection_rule_name=collection.apply(lambda a: collection_name(a[0], a[1], RULE_NAME_MAX)),
            resource_group_name=args.resource_group_name,
            location=args.location,
            kind=monitor.KnownDataCollectionRuleResourceKind.LINUX,
            description="DCR for Azure Monitor Metrics Profile (Managed Prometheus)",
            data_collection_endpoint_id=self.endpoint.id,
            data_sources=monitor.DataCollectionRuleDataSourcesArgs(
                prometheus_forwarder=[
                    monitor.PrometheusForwarderDataSourceArgs(
                        name=DATA_SOURCE, streams=[PROMETHEUS_STREAM], label_include_filter={}
                    )
                ]
            ),
            destinations=monitor.DataCollectionRuleDestinationsArgs(
                monitoring_accounts=[
                    monitor.MonitoringAccountDestinationArgs(
                        name=DESTINATION, account_resource_id=self.workspace.id
                    )
                ]
            ),
            data_flows=[monitor.DataFlowArgs(streams=[PROMETHEUS_STREAM], destinations=[DESTINATION])],
            opts=child,
        )
        # The templates associate the rule after the cluster exists and before (Bicep) or after (Terraform,
        # `monitor_metrics` set at creation) the metrics profile is on; the add-on's agents pick the rule up
        # once the association exists.
        self.association = monitor.DataCollectionRuleAssociation(
            f"{name}-dcra",
            association_name=collection.apply(lambda a: f"{NAME_PREFIX}-{a[0]}-{a[1]}"),
            resource_uri=args.cluster_id,
            data_collection_rule_id=self.rule.id,
            description="Association of data collection rule. Deleting this association will break the data "
            "collection for this AKS Cluster.",
            opts=child,
        )
        self.workspace_id: pulumi.Output[str] = self.workspace.id
        self.query_endpoint: pulumi.Output[str] = self.workspace.metrics.apply(
            lambda m: m.prometheus_query_endpoint
        )
        self.rule_id: pulumi.Output[str] = self.rule.id
        self.association_id: pulumi.Output[str] = self.association.id
        self.register_outputs(
            {
                "workspace_id": self.workspace_id,
                "query_endpoint": self.query_endpoint,
                "rule_id": self.rule_id,
                "association_id": self.association_id,
            }
        )
