"""Render the azure-native resources a stack declares as one ARM deployment template, for checkov.

    python -m tools.render_arm --stack prod --out build/arm/prod.json

Runs the Pulumi program in-process under mocks (`tests.harness.stack_mocks`) with the stack's own
`Pulumi.<stack>.yaml`. azure-native inputs are the ARM request body in camelCase with `properties`
flattened (the provider's `x-ms-client-flatten` handling), so each resource is rebuilt as ARM sends it:
the keys ARM keeps at the top of the body (`location`, `tags`, `identity`, `sku`, `zones`, ... per type)
stay there, the rest goes under `properties`, and the Pulumi-only path inputs (`resourceGroupName`,
`resourceName`, `agentPoolName`, ...) become the ARM `name` (`<cluster>/<pool>` for a child type). The
apiVersion is the one the installed SDK calls ("Uses Azure REST API version ..." in its source).
Accepted findings (`stacks.checkov_skips`) go into `metadata.checkov`, where checkov's ARM framework
reads inline suppressions. The template is for static analysis: values only the cloud knows are the mock
stand-ins, and resources of several deployment scopes share one file. Exit status 2 on a config error.
"""

from __future__ import annotations

import argparse
import functools
import importlib
import inspect
import json
import re
import sys
from dataclasses import dataclass
from pathlib import Path
from typing import Any

ROOT = Path(__file__).resolve().parent.parent
SCHEMA = "https://schema.management.azure.com/schemas/2019-04-01/deploymentTemplate.json#"
_COMMON_TOP = ("location", "tags", "identity", "sku", "zones", "extendedLocation", "kind")


@dataclass(frozen=True)
class ArmType:
    """How one azure-native type token maps onto ARM.

    `type`: the ARM resource type. `names`: the Pulumi inputs that form the resource id's name segments,
    parent first (joined with "/" into the ARM `name`). `top`: body keys ARM keeps outside `properties`.
    `drop`: other Pulumi-only inputs (path parameters that are not part of the name). A name segment
    written `=<text>` is that literal text (e.g. the `default` blob service). `renames`: (SDK input, ARM
    property) pairs where the SDK renamed an ARM property (storage `networkRuleSet` is ARM's `networkAcls`).
    """

    type: str
    names: tuple[str, ...]
    top: tuple[str, ...] = _COMMON_TOP
    drop: tuple[str, ...] = ("resourceGroupName",)
    renames: tuple[tuple[str, str], ...] = ()


#: Type token -> ARM type. ARM types and body layout from the Azure REST API specs of each provider
#: (Microsoft.ContainerService managedClusters 2025-09-01: `sku`, `identity`, `extendedLocation` at the
#: top; agentPools: everything in `properties`; Microsoft.OperationalInsights workspaces: `sku` is a
#: property; Microsoft.Authorization roleAssignments: an extension resource with a `scope`).
ARM_TYPES: dict[str, ArmType] = {
    "azure-native:resources:ResourceGroup": ArmType(
        "Microsoft.Resources/resourceGroups", ("resourceGroupName",), ("location", "tags", "managedBy"), ()
    ),
    "azure-native:containerservice:ManagedCluster": ArmType(
        "Microsoft.ContainerService/managedClusters", ("resourceName",)
    ),
    "azure-native:containerservice:AgentPool": ArmType(
        "Microsoft.ContainerService/managedClusters/agentPools", ("resourceName", "agentPoolName"), ()
    ),
    # managedClusters/maintenanceConfigurations 2025-09-01: everything in `properties` (maintenanceWindow,
    # timeInWeek, notAllowedTime); the name is the configuration's, e.g. aksManagedAutoUpgradeSchedule.
    "azure-native:containerservice:MaintenanceConfiguration": ArmType(
        "Microsoft.ContainerService/managedClusters/maintenanceConfigurations",
        ("resourceName", "configName"),
        (),
    ),
    "azure-native:containerregistry:Registry": ArmType(
        "Microsoft.ContainerRegistry/registries", ("registryName",)
    ),
    "azure-native:operationalinsights:Workspace": ArmType(
        "Microsoft.OperationalInsights/workspaces",
        ("workspaceName",),
        ("location", "tags", "identity", "etag"),
    ),
    "azure-native:authorization:RoleAssignment": ArmType(
        "Microsoft.Authorization/roleAssignments", ("roleAssignmentName",), ("scope",), ()
    ),
    # Microsoft.Storage 2025-x: `sku`, `kind`, `identity` at the top; blob services and containers are
    # children of the account (`<account>/default[/<container>]`).
    "azure-native:storage:StorageAccount": ArmType(
        "Microsoft.Storage/storageAccounts", ("accountName",), renames=(("networkRuleSet", "networkAcls"),)
    ),
    "azure-native:storage:BlobServiceProperties": ArmType(
        "Microsoft.Storage/storageAccounts/blobServices",
        ("accountName", "=default"),
        (),
        ("resourceGroupName", "blobServicesName"),
    ),
    "azure-native:storage:BlobContainer": ArmType(
        "Microsoft.Storage/storageAccounts/blobServices/containers",
        ("accountName", "=default", "containerName"),
        (),
    ),
    "azure-native:managedidentity:UserAssignedIdentity": ArmType(
        "Microsoft.ManagedIdentity/userAssignedIdentities", ("resourceName",), ("location", "tags")
    ),
    "azure-native:managedidentity:FederatedIdentityCredential": ArmType(
        "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
        ("resourceName", "federatedIdentityCredentialResourceName"),
        (),
    ),
    "azure-native:monitor:DataCollectionRule": ArmType(
        "Microsoft.Insights/dataCollectionRules", ("dataCollectionRuleName",), ("location", "tags", "kind")
    ),
    # An extension resource on the cluster: `resourceUri` is its scope.
    "azure-native:monitor:DataCollectionRuleAssociation": ArmType(
        "Microsoft.Insights/dataCollectionRuleAssociations", ("associationName",), (), ("resourceUri",)
    ),
    # Managed Prometheus (Azure/prometheus-collector AddonArmTemplate): Microsoft.Monitor accounts 2023-04-03
    # and Microsoft.Insights dataCollectionEndpoints 2022-06-01 keep `location`, `tags` (and `kind`) at the
    # top.
    "azure-native:monitor:AzureMonitorWorkspace": ArmType(
        "Microsoft.Monitor/accounts", ("azureMonitorWorkspaceName",), ("location", "tags")
    ),
    "azure-native:monitor:DataCollectionEndpoint": ArmType(
        "Microsoft.Insights/dataCollectionEndpoints",
        ("dataCollectionEndpointName",),
        ("location", "tags", "kind", "identity"),
    ),
    # Microsoft.AlertsManagement prometheusRuleGroups 2023-03-01: everything but location and tags in
    # `properties` (scopes, clusterName, interval, rules).
    "azure-native:alertsmanagement:PrometheusRuleGroup": ArmType(
        "Microsoft.AlertsManagement/prometheusRuleGroups", ("ruleGroupName",), ("location", "tags")
    ),
    # Microsoft.Insights actionGroups: `location` (always "global"), `tags`, `identity` at the top.
    "azure-native:monitor:ActionGroup": ArmType(
        "Microsoft.Insights/actionGroups", ("actionGroupName",), ("location", "tags", "identity")
    ),
    # An extension resource on the managed environment (Microsoft.Insights diagnosticSettings,
    # 2021-05-01-preview: everything in `properties`); `resourceUri` is its scope.
    "azure-native:monitor:DiagnosticSetting": ArmType(
        "Microsoft.Insights/diagnosticSettings", ("name",), (), ("resourceUri",)
    ),
    # Microsoft.App 2025-02-02-preview managedEnvironments / containerApps: `location`, `tags`, `identity`,
    # `kind` (and for apps `extendedLocation`, `managedBy`) at the top, the rest in `properties`.
    "azure-native:app:ManagedEnvironment": ArmType(
        "Microsoft.App/managedEnvironments", ("environmentName",), ("location", "tags", "identity", "kind")
    ),
    "azure-native:app:ContainerApp": ArmType(
        "Microsoft.App/containerApps",
        ("containerAppName",),
        ("location", "tags", "identity", "extendedLocation", "kind", "managedBy"),
    ),
}


class UnmappedType(LookupError):
    """An azure-native resource type with no entry in `ARM_TYPES` (add one)."""


@functools.cache
def api_version(token: str) -> str:
    """The ARM API version the installed pulumi-azure-native uses for `token` (from the SDK source)."""
    _, module, cls = token.split(":")
    sdk_class = getattr(importlib.import_module(f"pulumi_azure_native.{module}"), cls)
    source = Path(inspect.getsourcefile(sdk_class))
    match = re.search(r"Uses Azure REST API version (\d{4}-\d{2}-\d{2}(?:-preview)?)", source.read_text())
    if not match:
        raise LookupError(f"no REST API version in the SDK source of {token}")
    return match.group(1)


def arm_resource(token: str, logical_name: str, inputs: dict[str, Any], skips: dict[str, str]) -> dict:
    """One ARM template resource from a resource's (camelCase, secret-redacted) Pulumi inputs."""
    if token not in ARM_TYPES:
        raise UnmappedType(f"{token} has no ARM mapping in tools.render_arm.ARM_TYPES")
    spec = ARM_TYPES[token]
    name = "/".join(
        key[1:] if key.startswith("=") else str(inputs.get(key) or logical_name) for key in spec.names
    )
    resource: dict[str, Any] = {"type": spec.type, "apiVersion": api_version(token), "name": name}
    if skips:
        resource["metadata"] = {"checkov": [f"{check}:{reason}" for check, reason in sorted(skips.items())]}
    pulumi_only = set(spec.names) | set(spec.drop)
    properties = {}
    for key, value in inputs.items():
        if key in pulumi_only:
            continue
        key = dict(spec.renames).get(key, key)
        if key in spec.top:
            resource[key] = value
        else:
            properties[key] = value
    if properties:
        resource["properties"] = properties
    _identity_map(resource)
    return resource


def _identity_map(resource: dict[str, Any]) -> None:
    """ARM's `identity.userAssignedIdentities` is a map `{<identity id>: {}}`; the azure-native SDK takes a
    list of ids and sends the map (provider `identities` conversion), so the template gets the map."""
    identity = resource.get("identity")
    if isinstance(identity, dict) and isinstance(identity.get("userAssignedIdentities"), list):
        identity["userAssignedIdentities"] = {i: {} for i in identity["userAssignedIdentities"]}


def template(run) -> dict[str, Any]:
    """The ARM deployment template of every azure-native resource in a `MockRun`, in declaration order."""
    from stacks.checkov_skips import arm_skips
    from tests.harness.stack_mocks import _clean, _redact

    resources = [
        arm_resource(r.type, r.name, _clean(_redact(r.raw_inputs)), arm_skips(r.urn))
        for r in run.resources
        if r.type.startswith("azure-native:")
    ]
    return {"$schema": SCHEMA, "contentVersion": "1.0.0.0", "resources": resources}


def render(stack: str, out: Path, root: Path = ROOT) -> dict[str, Any]:
    """Write stack `stack`'s template to `out` (JSON); return it."""
    from tests.harness.stack_mocks import run_program, stack_file_config

    document = template(run_program(stack_file_config(stack, root), stack))
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(document, indent=2) + "\n")
    return document


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--stack", default="dev", help="stack name: reads Pulumi.<stack>.yaml (default dev)")
    parser.add_argument("--out", type=Path, default=None, help="output file (default build/arm/<stack>.json)")
    args = parser.parse_args(argv)
    from stacks.config import ConfigError

    out = args.out or ROOT / "build" / "arm" / f"{args.stack}.json"
    try:
        document = render(args.stack, out)
    except (ConfigError, FileNotFoundError) as exc:
        print(f"error: {exc}", file=sys.stderr)
        return 2
    print(f"{out}: {len(document['resources'])} resources")
    return 0


if __name__ == "__main__":
    sys.exit(main())
