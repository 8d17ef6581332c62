"""AKS planned maintenance: the windows in which the auto-upgrade channels may act."""

from __future__ import annotations

from dataclasses import dataclass

import pulumi
from pulumi_azure_native import containerservice

from stacks.config import MaintenanceSettings

#: The maintenance configuration names AKS reads for its two auto-upgrade channels (AKS "Use planned
#: maintenance": `aksManagedAutoUpgradeSchedule` for the cluster's upgrade channel,
#: `aksManagedNodeOSUpgradeSchedule` for the node OS channel); any other name is the legacy `default`
#: configuration's kind and does not govern auto-upgrades.
AUTO_UPGRADE_SCHEDULE = "aksManagedAutoUpgradeSchedule"
NODE_OS_UPGRADE_SCHEDULE = "aksManagedNodeOSUpgradeSchedule"


@dataclass
class MaintenanceArgs:
    """`schedules`: the configuration names to declare (a channel set to `none` has nothing to schedule);
    `window`: the weekly window from the stack config."""

    resource_group_name: pulumi.Input[str]
    cluster_name: pulumi.Input[str]
    window: MaintenanceSettings
    schedules: tuple[str, ...]


class Maintenance(pulumi.ComponentResource):
    """One `MaintenanceConfiguration` per schedule, all with the same weekly window. Output: `names`."""

    def __init__(self, name: str, args: MaintenanceArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:maintenance:Maintenance", name, None, opts)
        w = args.window
        window = containerservice.MaintenanceWindowArgs(
            schedule=containerservice.ScheduleArgs(
                weekly=containerservice.WeeklyScheduleArgs(day_of_week=w.day, interval_weeks=w.interval_weeks)
            ),
            start_time=w.start_time,
            duration_hours=w.duration_hours,
            utc_offset=w.utc_offset,
        )
        self.configurations = [
            containerservice.MaintenanceConfiguration(
                f"{name}-{schedule}",
                config_name=schedule,
                resource_group_name=args.resource_group_name,
                resource_name_=args.cluster_name,
                maintenance_window=window,
                opts=pulumi.ResourceOptions(parent=self),
            )
            for schedule in args.schedules
        ]
        self.names = list(args.schedules)
        self.register_outputs({"names": self.names})


def schedules_for(upgrade_channel: containerservice.UpgradeChannel) -> tuple[str, ...]:
    """The schedules to declare: the node OS one always (the cluster runs the NodeImage channel), the
    auto-upgrade one unless the upgrade channel is `none`."""
    if upgrade_channel == containerservice.UpgradeChannel.NONE:
        return (NODE_OS_UPGRADE_SCHEDULE,)
    return (AUTO_UPGRADE_SCHEDULE, NODE_OS_UPGRADE_SCHEDULE)
