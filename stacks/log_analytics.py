"""The Log Analytics workspace both Azure targets send logs to (AKS Container Insights, Container Apps)."""

from __future__ import annotations

import pulumi
from pulumi_azure_native import operationalinsights


def log_workspace(
    name: str,
    resource_group_name: pulumi.Input[str],
    location: pulumi.Input[str],
    retention_days: int,
    opts: pulumi.ResourceOptions,
) -> operationalinsights.Workspace:
    """A pay-as-you-go (PerGB2018) workspace `<name>-logs` keeping data `retention_days` days (30-730,
    `logRetentionDays`; Log Analytics "Manage data retention")."""
    return operationalinsights.Workspace(
        f"{name}-logs",
        resource_group_name=resource_group_name,
        location=location,
        sku=operationalinsights.WorkspaceSkuArgs(name=operationalinsights.WorkspaceSkuNameEnum.PER_GB2018),
        retention_in_days=retention_days,
        opts=opts,
    )
