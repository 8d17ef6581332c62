"""Day-2 changes: a workload pool shape change creates the new pool before the old one goes and leaves the
cluster alone; a system pool change fails naming the key and the manual step; planned maintenance."""

from __future__ import annotations

import inspect
import re

import pytest
from pulumi_azure_native import containerservice

from stacks import node_pools
from stacks.config import ConfigError
from stacks.maintenance import AUTO_UPGRADE_SCHEDULE, NODE_OS_UPGRADE_SCHEDULE
from tests.harness import stack_mocks as mocks
from tests.harness.stack_mocks import FakeCloud
from tests.stacks.conftest import ROOT, run_stack

AKS = "azure-native:containerservice:ManagedCluster"
POOL = "azure-native:containerservice:AgentPool"
WINDOW = "azure-native:containerservice:MaintenanceConfiguration"
DEPLOYMENT = "kubernetes:apps/v1:Deployment"
#: azure-native replaces a resource when a URL path parameter changes (provider `diff`: path parameters are
#: `replaceOnChanges`); the AgentPool PUT path is .../resourceGroups/{resourceGroupName}/providers/
#: Microsoft.ContainerService/managedClusters/{resourceName}/agentPools/{agentPoolName}.
POOL_PATH_PARAMETERS = ("resourceGroupName", "resourceName", "agentPoolName")


def plan(old: mocks.MockRun, new: mocks.MockRun, path_parameters: dict[str, tuple[str, ...]]) -> list[str]:
    """The steps `pulumi up` takes from `old`'s state to `new`'s program, in Pulumi's order for the resources
    compared: same URN with a changed path parameter is a replacement, created first and the original
    deleted at the end of the update unless `deleteBeforeReplace` (Pulumi "Resource options:
    deleteBeforeReplace"; the engine's step generator pends the old resource's deletion); other changed
    inputs are an update; equal inputs are the same resource."""
    before = {r.urn: r for r in old.resources}
    steps, deferred = [], []
    for r in new.resources:
        previous = before.get(r.urn)
        if previous is None:
            steps.append(f"create {r.name}")
        elif any(previous.inputs.get(k) != r.inputs.get(k) for k in path_parameters.get(r.type, ())):
            if r.delete_before_replace:
                steps += [f"delete {r.name}:{_label(previous)}", f"create {r.name}:{_label(r)}"]
            else:
                steps.append(f"create {r.name}:{_label(r)}")
                deferred.append(f"delete {r.name}:{_label(previous)}")
        elif previous.inputs != r.inputs:
            steps.append(f"update {r.name}")
    return steps + deferred


def _label(r: mocks.Registration) -> str:
    return str(r.inputs.get("agentPoolName", r.id))


def test_a_new_vm_size_creates_the_new_pool_before_deleting_the_old_and_keeps_the_cluster():
    old, new = run_stack("dev"), run_stack("dev", nodeVmSize="Standard_D8ds_v6")
    old_pool, new_pool = old.one(POOL), new.one(POOL)
    assert old_pool.urn == new_pool.urn  # the same Pulumi resource, so the engine diffs it: a replacement
    old_name, new_name = old_pool.inputs["agentPoolName"], new_pool.inputs["agentPoolName"]
    assert old_name != new_name and all(re.fullmatch(r"work[0-9a-f]{8}", n) for n in (old_name, new_name))
    assert new_pool.delete_before_replace is False
    steps = plan(old, new, {POOL: POOL_PATH_PARAMETERS})
    assert steps.index(f"create {new_pool.name}:{new_name}") < steps.index(
        f"delete {old_pool.name}:{old_name}"
    )
    assert steps[-1] == f"delete {old_pool.name}:{old_name}"  # last: after everything else is in place
    # No replacement, not even an update, of the cluster; the pods' Deployment does not change either (they
    # select the stable pool label), so AKS's drain of the old pool, under the PDB, is what moves them.
    assert old.one(AKS).inputs == new.one(AKS).inputs and old.one(AKS).urn == new.one(AKS).urn
    assert old.one(DEPLOYMENT).inputs == new.one(DEPLOYMENT).inputs
    assert not [s for s in steps if s.startswith("update")], steps
    assert new.outputs["workload_pool"] == new_name


@pytest.mark.parametrize(
    "change",
    [
        {"nodeVmSize": "Standard_D8ds_v6"},
        {"osDiskSizeGb": "70"},
        {"osDiskType": "Managed"},
        {"maxPods": "60"},
        {"availabilityZones": ["1", "2"]},
        {"encryptionAtHost": "true"},
    ],
)
def test_every_property_aks_fixes_at_creation_versions_the_pool_name(change):
    assert (
        run_stack("dev", **change).one(POOL).inputs["agentPoolName"]
        != run_stack("dev").one(POOL).inputs["agentPoolName"]
    )


def test_what_aks_changes_in_place_keeps_the_pool():
    base = run_stack("dev").one(POOL).inputs["agentPoolName"]
    for change in ({"nodeMinCount": "2", "nodeMaxCount": "5"}, {"systemNodeVmSize": "Standard_D4ds_v5"}):
        assert run_stack("dev", **change).one(POOL).inputs["agentPoolName"] == base, change


def test_the_pool_name_is_a_valid_linux_agent_pool_name():
    shape = node_pools.PoolShape("Standard_D4ds_v5", "AzureLinux", "Ephemeral", 64, 110, ("3", "1"), False)
    name = node_pools.workload_pool_name(shape)
    # AKS: Linux pool names are 1-12 lower-case alphanumerics starting with a letter.
    assert re.fullmatch(r"[a-z][a-z0-9]{0,11}", name) and len(name) == node_pools.POOL_NAME_MAX
    reordered = node_pools.PoolShape(
        "Standard_D4ds_v5", "AzureLinux", "Ephemeral", 64, 110, ("1", "3"), False
    )
    assert node_pools.workload_pool_name(reordered) == name  # zones are a set


def deployed_system_pool(monkeypatch, **fields):
    """Make the fake cloud report the system pool as Azure runs it (what the state holds after an `up` or
    `refresh`), with `fields` (camelCase) differing from the program's inputs."""
    original = FakeCloud.new_resource

    def new_resource(self, args):
        rid, state = original(self, args)
        if args.typ == AKS:
            state["agentPoolProfiles"] = [{**p, **fields} for p in state["agentPoolProfiles"]]
        return rid, state

    monkeypatch.setattr(FakeCloud, "new_resource", new_resource)


def test_a_changed_system_vm_size_fails_naming_the_key_and_the_manual_step(monkeypatch):
    deployed_system_pool(monkeypatch, vmSize="Standard_D2ds_v5")
    # The check runs on the cluster's outputs, so the SDK re-raises the ConfigError as the ValueError of the
    # output that carries it ("ValueError has risen: <message>"); the message is the check's.
    with pytest.raises(ValueError) as error:
        run_stack("dev", systemNodeVmSize="Standard_D4ds_v5")
    message = str(error.value)
    assert "aks-image-classifier:systemNodeVmSize is 'Standard_D4ds_v5' but the system pool runs" in message
    assert "'Standard_D2ds_v5'" in message and "az aks nodepool add" in message and "--mode System" in message
    assert "pulumi refresh" in message


def test_a_changed_system_node_count_names_the_scale_command(monkeypatch):
    deployed_system_pool(monkeypatch, count=2)
    with pytest.raises(
        ValueError, match=r"aks-image-classifier:systemNodeCount is 1 .*az aks nodepool scale"
    ):
        run_stack("dev")


def test_the_check_passes_when_azure_runs_what_the_stack_asks_for_or_reports_nothing_yet():
    shape = node_pools.PoolShape("Standard_D2ds_v5", "AzureLinux", "Ephemeral", 64, 110, (), False)
    running = {
        "name": "system2",
        "mode": "System",
        "vmSize": "Standard_D2ds_v5",
        "osDiskType": "Ephemeral",
        "osDiskSizeGB": 64,
        "maxPods": 110,
        "count": 1,
    }
    old = {**running, "name": "system", "vmSize": "Standard_D4ds_v5"}
    workload = {**running, "name": "work12345678", "mode": "User", "vmSize": "Standard_D8ds_v5", "count": 3}
    # After the manual migration (a new System pool added, the old one not yet deleted) and a refresh.
    assert node_pools.check_system_pool(shape, 1, [old, running, workload])["vmSize"] == "Standard_D2ds_v5"
    assert node_pools.system_pool_drift(shape, 1, []) == {}  # a cluster still being created
    assert node_pools.system_pool_drift(shape, 1, [old, workload]) == {
        "vm_size": ("Standard_D4ds_v5", "Standard_D2ds_v5")
    }


def test_every_system_pool_field_names_a_declared_stack_key():
    declared = set(mocks.stack_file_config("dev", ROOT))
    for key, _ in node_pools.SYSTEM_POOL_KEYS.values():
        assert f"aks-image-classifier:{key}" in declared, key


def sdk_fields(cls: type) -> dict[str, bool]:
    """`{camelCase property: required}` of an azure-native input type: the names its `pulumi.getter`s carry
    (what the provider's schema calls them) and whether `__init__` requires them."""
    parameters = inspect.signature(cls.__init__).parameters
    return {
        prop.fget._pulumi_name: parameters[name].default is inspect.Parameter.empty
        for name, prop in vars(cls).items()
        if isinstance(prop, property) and hasattr(prop.fget, "_pulumi_name")
    }


def conforms(value: dict, cls: type, nested: dict[str, type]) -> list[str]:
    """Schema problems of `value` (camelCase inputs) against `cls`: unknown or missing required fields."""
    fields = sdk_fields(cls)
    problems = [f"{cls.__name__}.{k}: unknown" for k in value if k not in fields]
    problems += [
        f"{cls.__name__}.{k}: required" for k, required in fields.items() if required and k not in value
    ]
    for key, sub in nested.items():
        if key in value:
            problems += conforms(value[key], sub, {})
    return problems


def test_prod_declares_both_maintenance_windows_as_the_schema_defines_them(prod):
    windows = {r.inputs["configName"]: r for r in prod.of_type(WINDOW)}
    assert set(windows) == {AUTO_UPGRADE_SCHEDULE, NODE_OS_UPGRADE_SCHEDULE}
    assert set(windows) == {"aksManagedAutoUpgradeSchedule", "aksManagedNodeOSUpgradeSchedule"}  # AKS's names
    for window in windows.values():
        assert window.inputs["resourceName"] == prod.one(AKS).state["name"]
        body = window.inputs["maintenanceWindow"]
        assert body == {
            "schedule": {"weekly": {"dayOfWeek": "Sunday", "intervalWeeks": 1}},
            "startTime": "02:00",
            "durationHours": 4,
            "utcOffset": "+00:00",
        }
        assert conforms(window.inputs, containerservice.MaintenanceConfigurationArgs, {}) == []
        assert (
            conforms(
                body, containerservice.MaintenanceWindowArgs, {"schedule": containerservice.ScheduleArgs}
            )
            == []
        )
        assert conforms(body["schedule"]["weekly"], containerservice.WeeklyScheduleArgs, {}) == []


def test_the_schema_check_sees_a_wrong_field():
    assert conforms(
        {"startTime": "02:00", "durationHour": 4}, containerservice.MaintenanceWindowArgs, {}
    ) == [
        "MaintenanceWindowArgs.durationHour: unknown",
        "MaintenanceWindowArgs.schedule: required",
    ]


def test_dev_has_no_window_unless_asked_and_channel_none_keeps_only_the_node_os_one(dev):
    assert not dev.of_type(WINDOW)
    run = run_stack("dev", maintenanceDay="Saturday", upgradeChannel="none", maintenanceUtcOffset="-05:30")
    (window,) = run.of_type(WINDOW)
    assert window.inputs["configName"] == NODE_OS_UPGRADE_SCHEDULE
    assert window.inputs["maintenanceWindow"]["utcOffset"] == "-05:30"


@pytest.mark.parametrize(
    ("values", "key"),
    [
        ({"maintenanceDay": "Sun"}, "maintenanceDay"),
        ({"maintenanceDay": "Sunday", "maintenanceStartTime": "24:00"}, "maintenanceStartTime"),
        ({"maintenanceDay": "Sunday", "maintenanceDurationHours": "3"}, "maintenanceDurationHours"),
        ({"maintenanceDay": "Sunday", "maintenanceUtcOffset": "UTC"}, "maintenanceUtcOffset"),
        ({"maintenanceDay": "Sunday", "maintenanceIntervalWeeks": "5"}, "maintenanceIntervalWeeks"),
    ],
)
def test_a_bad_window_names_the_key(values, key):
    with pytest.raises(ConfigError, match=rf"^aks-image-classifier:{key} "):
        run_stack("dev", **values)


def test_the_day2_doc_states_what_the_code_does():
    from stacks import tls
    from stacks.config import maintenance

    doc = (ROOT / "docs" / "day-2.md").read_text()
    assert f"is `{node_pools.WORKLOAD_POOL_PREFIX}` plus the first {node_pools.HASH_DIGITS} hex digits" in doc
    assert f"`{node_pools.POOL_LABEL}: {node_pools.WORKLOAD_POOL_ROLE}`" in doc
    assert f"set the redirect's priority to {tls.REDIRECT_PRIORITY}" in doc
    assert f"`{AUTO_UPGRADE_SCHEDULE}` and\n`{NODE_OS_UPGRADE_SCHEDULE}`" in doc
    assert f"`maintenanceDurationHours` ({maintenance.MIN_DURATION_H}-{maintenance.MAX_DURATION_H})" in doc
    assert f"`maintenanceIntervalWeeks` (1-{maintenance.MAX_INTERVAL_WEEKS})" in doc
    for key, _ in node_pools.SYSTEM_POOL_KEYS.values():
        assert f"`{key}`" in doc, key
