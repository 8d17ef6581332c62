"""AKS planned maintenance: the weekly window in which the auto-upgrade channels may act."""

from __future__ import annotations

import re
from dataclasses import dataclass

from pulumi_azure_native import containerservice

from stacks.config.reader import ConfigError, Reader

#: `maintenanceDay` values: containerservice.WeekDay (Monday ... Sunday).
WEEK_DAYS = {day.value: day for day in containerservice.WeekDay}
#: MaintenanceWindow.startTime: '00:00' to '23:59'; utcOffset: `+/-HH:mm` (azure-native containerservice
#: `MaintenanceWindowArgs` docstrings, API 2025-09-01).
_START_TIME = re.compile(r"^([01]\d|2[0-3]):[0-5]\d$")
_UTC_OFFSET = re.compile(r"^[+-](0\d|1[0-4]):[0-5]\d$")
#: MaintenanceWindow.durationHours: "from 4 to 24 hours" (same source).
MIN_DURATION_H, MAX_DURATION_H = 4, 24
#: WeeklySchedule.intervalWeeks: 1-4 (AKS "Use planned maintenance": weekly schedules recur every 1-4 weeks).
MAX_INTERVAL_WEEKS = 4


@dataclass(frozen=True)
class MaintenanceSettings:
    """One weekly window for both `aksManagedAutoUpgradeSchedule` and `aksManagedNodeOSUpgradeSchedule`:
    `day` (WeekDay), `start_time` (`HH:mm`, local to `utc_offset`), `duration_hours` (4-24),
    `utc_offset` (`+HH:mm` / `-HH:mm`), `interval_weeks` (1-4)."""

    day: containerservice.WeekDay
    start_time: str
    duration_hours: int
    utc_offset: str
    interval_weeks: int


def maintenance_settings(r: Reader) -> MaintenanceSettings | None:
    """`maintenanceDay` (empty: no window, upgrades may land at any hour), `maintenanceStartTime`,
    `maintenanceDurationHours`, `maintenanceUtcOffset`, `maintenanceIntervalWeeks`."""
    day = r.str("maintenanceDay")
    if day is None:
        return None
    if day not in WEEK_DAYS:
        raise ConfigError(
            f"{r.key('maintenanceDay')} must be one of {', '.join(WEEK_DAYS)} or empty; got {day!r}"
        )
    start = r.required("maintenanceStartTime")
    if not _START_TIME.match(start):
        raise ConfigError(
            f"{r.key('maintenanceStartTime')} must be HH:mm between 00:00 and 23:59, got {start!r}"
        )
    offset = r.required("maintenanceUtcOffset")
    if not _UTC_OFFSET.match(offset):
        raise ConfigError(
            f"{r.key('maintenanceUtcOffset')} must be +HH:mm or -HH:mm (e.g. +01:00), got {offset!r}"
        )
    return MaintenanceSettings(
        day=WEEK_DAYS[day],
        start_time=start,
        duration_hours=r.int("maintenanceDurationHours", minimum=MIN_DURATION_H, maximum=MAX_DURATION_H),
        utc_offset=offset,
        interval_weeks=r.int("maintenanceIntervalWeeks", minimum=1, maximum=MAX_INTERVAL_WEEKS),
    )
