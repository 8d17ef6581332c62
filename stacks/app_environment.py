"""Container Apps managed environment: consumption by default, its logs in Log Analytics without a shared
key."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import app, monitor

from stacks.log_analytics import log_workspace

#: The profile every workload-profiles environment has (Microsoft Learn, "Workload profiles in Azure Container
#: Apps": "The Consumption workload profile is the default profile added to every Workload profiles
#: environment"): per-replica billing, up to 4 vCPU / 8 GiB a replica.
CONSUMPTION_PROFILE = "Consumption"
#: Log categories of a managed environment ("Monitor logs in Azure Container Apps with Log Analytics": console
#: output of the containers and the platform's system events), sent by a diagnostic setting.
LOG_CATEGORIES = ("ContainerAppConsoleLogs", "ContainerAppSystemLogs")
#: `appLogsConfiguration.destination` that routes logs through Azure Monitor diagnostic settings
#: (AppLogsConfiguration: 'log-analytics', 'azure-monitor' or 'none'); `log-analytics` would need the
#: workspace's shared key in the environment.
AZURE_MONITOR = "azure-monitor"


@dataclass
class AppEnvironmentArgs:
    """`workload_profile`: None for a Consumption-only environment, `Consumption` for a workload-profiles
    environment with just the consumption profile, or a Dedicated profile type (`D4`, `E8`, ...) added beside
    it with `profile_min_count`..`profile_max_count` instances. `log_retention_days`: the workspace's."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    log_retention_days: int
    workload_profile: str | None = None
    profile_min_count: int = 0
    profile_max_count: int = 1


class AppEnvironment(pulumi.ComponentResource):
    """A Log Analytics workspace, a Container Apps managed environment and a diagnostic setting that sends the
    environment's console and system logs to the workspace (no shared key anywhere).

    Without a workload profile the environment is Consumption-only (per-second billing of replicas, nothing
    while scaled to zero). Outputs: `environment_id`, `default_domain`, `workspace_id`,
    `workload_profile_name` (the profile apps run on, None in a Consumption-only environment)."""

    def __init__(self, name: str, args: AppEnvironmentArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:app_environment:AppEnvironment", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        self.workspace = log_workspace(
            name, args.resource_group_name, args.location, args.log_retention_days, child
        )
        self.environment = app.ManagedEnvironment(
            f"{name}-env",
            resource_group_name=args.resource_group_name,
            location=args.location,
            app_logs_configuration=app.AppLogsConfigurationArgs(destination=AZURE_MONITOR),
            workload_profiles=workload_profiles(args),
            # Zone redundancy needs an environment in a custom VNet (Microsoft Learn, "Reliability in Azure
            # Container Apps"); this program declares none: see the checkov skip below.
            zone_redundant=False,
            opts=child,
        )
        self.diagnostics = monitor.DiagnosticSetting(
            f"{name}-diagnostics",
            name="container-app-logs",
            resource_uri=self.environment.id,
            workspace_id=self.workspace.id,
            logs=[monitor.DiagnosticsLogSettingsArgs(category=c, enabled=True) for c in LOG_CATEGORIES],
            opts=child,
        )
        self.environment_id: pulumi.Output[str] = self.environment.id
        self.default_domain: pulumi.Output[str] = self.environment.default_domain
        self.workspace_id: pulumi.Output[str] = self.workspace.id
        self.workload_profile_name = profile_name(args.workload_profile)
        self.register_outputs(
            {
                "environment_id": self.environment_id,
                "default_domain": self.default_domain,
                "workspace_id": self.workspace_id,
            }
        )


def profile_name(workload_profile: str | None) -> str | None:
    """The workload profile an app runs on: the Dedicated profile's name (its type in lower case), the
    consumption profile's, or None in a Consumption-only environment."""
    if workload_profile is None or workload_profile == CONSUMPTION_PROFILE:
        return workload_profile
    return workload_profile.lower()


def workload_profiles(args: AppEnvironmentArgs) -> list[app.WorkloadProfileArgs] | None:
    """None (Consumption-only), or the consumption profile plus the Dedicated one the config asks for."""
    if args.workload_profile is None:
        return None
    profiles = [app.WorkloadProfileArgs(name=CONSUMPTION_PROFILE, workload_profile_type=CONSUMPTION_PROFILE)]
    if args.workload_profile != CONSUMPTION_PROFILE:
        profiles.append(
            app.WorkloadProfileArgs(
                name=profile_name(args.workload_profile),
                workload_profile_type=args.workload_profile,
                minimum_count=args.profile_min_count,
                maximum_count=args.profile_max_count,
            )
        )
    return profiles
