"""Run the bootstrap program (`bootstrap/`) in-process under Pulumi mocks.

Reuses the main program's recording monitor and result types from `tests.harness.stack_mocks` (unchanged) and
adds the cloud's answers for the bootstrap's resource types: each user-assigned identity's own client and
principal ids, ARM ids of storage accounts, containers, vaults, keys, network resources and role
definitions, the public IP's address.
"""

from __future__ import annotations

import json
import uuid
from collections.abc import Mapping
from typing import Any

import pulumi
from pulumi.runtime import mocks as pulumi_mocks
from pulumi.runtime import settings as pulumi_settings
from pulumi.runtime.stack import run_pulumi_func
from pulumi.runtime.sync_await import _sync_await

from bootstrap.config import PROJECT, load_config
from tests.harness.stack_mocks import (
    RUNNER_EGRESS_IP,
    SUBSCRIPTION_ID,
    TENANT_ID,
    FakeCloud,
    MockRun,
    _ensure_event_loop,
    _RecordingMonitor,
)

RG = f"/subscriptions/{SUBSCRIPTION_ID}/resourceGroups"


def principal_id(identity_name: str) -> str:
    """The principal (object) id the mocked cloud gives the identity named `identity_name`."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"principal/{identity_name}"))


def client_id(identity_name: str) -> str:
    """The client (application) id the mocked cloud gives the identity named `identity_name`."""
    return str(uuid.uuid5(uuid.NAMESPACE_URL, f"client/{identity_name}"))


class BootstrapCloud(FakeCloud):
    """FakeCloud plus plausible ARM answers for the bootstrap's resources."""

    def new_resource(self, args: pulumi.runtime.MockResourceArgs):
        rid, state = super().new_resource(args)
        inputs = args.inputs
        group = f"{RG}/{inputs.get('resourceGroupName', 'rg')}"
        if args.typ == "azure-native:resources:ResourceGroup":
            state["name"] = inputs.get("resourceGroupName", args.name)
            rid = f"{RG}/{state['name']}"
        elif args.typ == "azure-native:storage:StorageAccount":
            state["name"] = inputs["accountName"]
            rid = f"{group}/providers/Microsoft.Storage/storageAccounts/{state['name']}"
        elif args.typ == "azure-native:storage:BlobContainer":
            state["name"] = inputs["containerName"]
            rid = (f"{group}/providers/Microsoft.Storage/storageAccounts/{inputs['accountName']}"
                   f"/blobServices/default/containers/{state['name']}")
        elif args.typ == "azure-native:keyvault:Vault":
            state["name"] = inputs["vaultName"]
            rid = f"{group}/providers/Microsoft.KeyVault/vaults/{state['name']}"
        elif args.typ == "azure-native:keyvault:Key":
            state["name"] = inputs["keyName"]
            rid = f"{group}/providers/Microsoft.KeyVault/vaults/{inputs['vaultName']}/keys/{state['name']}"
        elif args.typ == "azure-native:managedidentity:UserAssignedIdentity":
            state.update(name=inputs["resourceName"], clientId=client_id(inputs["resourceName"]),
                         principalId=principal_id(inputs["resourceName"]), tenantId=TENANT_ID)
            rid = f"{group}/providers/Microsoft.ManagedIdentity/userAssignedIdentities/{state['name']}"
        elif args.typ == "azure-native:authorization:RoleAssignment":
            rid = f"{inputs['scope']}/providers/Microsoft.Authorization/roleAssignments/{args.name}"
        elif args.typ == "azure-native:authorization:RoleDefinition":
            state["name"] = inputs["roleDefinitionId"]
            rid = f"{inputs['scope']}/providers/Microsoft.Authorization/roleDefinitions/{state['name']}"
        elif args.typ == "random:index/randomUuid:RandomUuid":
            state["result"] = str(uuid.uuid5(uuid.NAMESPACE_URL, f"uuid/{args.name}"))
        elif args.typ == "random:index/randomPassword:RandomPassword":
            state["result"] = "not-a-real-password-" + "x" * int(inputs.get("length", 16))
        elif args.typ.startswith("azure-native:network:"):
            kind = {"PublicIPAddress": "publicIPAddresses", "NatGateway": "natGateways",
                    "NetworkSecurityGroup": "networkSecurityGroups", "VirtualNetwork": "virtualNetworks",
                    "NetworkInterface": "networkInterfaces"}[args.typ.rsplit(":", 1)[1]]
            name = next(v for k, v in inputs.items() if k.endswith("Name") and k != "resourceGroupName")
            state["name"] = name
            rid = f"{group}/providers/Microsoft.Network/{kind}/{name}"
            if kind == "publicIPAddresses":
                state["ipAddress"] = RUNNER_EGRESS_IP
            if kind == "virtualNetworks":
                state["subnets"] = [{**sub, "id": f"{rid}/subnets/{sub['name']}"}
                                    for sub in inputs["subnets"]]
        elif args.typ == "azure-native:compute:VirtualMachine":
            state["name"] = inputs["vmName"]
            rid = f"{group}/providers/Microsoft.Compute/virtualMachines/{state['name']}"
        return rid, state


def full_key(key: str) -> str:
    return key if ":" in key else f"{PROJECT}:{key}"


BASE = {"azure-native:location": "westeurope", f"{PROJECT}:githubRepository": "octo-org/aks-image-classifier"}


def run_bootstrap(config: Mapping[str, Any] | None = None, *, base: bool = True,
                  run: MockRun | None = None) -> MockRun:
    """Declare the bootstrap stack under mocks with `BASE` plus `config` (short or full keys).

    Raises what the program raises (`ConfigError`); pass `run` to inspect what was registered first.
    """
    from bootstrap.program import build

    values = dict(BASE) if base else {}
    values.update({full_key(k): v for k, v in (config or {}).items()})
    _ensure_event_loop()
    pulumi_settings.reset_options(project=PROJECT, stack="bootstrap", preview=False)
    encoded = {k: v if isinstance(v, str) else json.dumps(v) for k, v in values.items()}
    pulumi.runtime.set_all_config(encoded, [])
    run = run if run is not None else MockRun()
    mocks = BootstrapCloud(run)
    pulumi_mocks.set_mocks(mocks, PROJECT, "bootstrap", False, monitor=_RecordingMonitor(mocks, run))

    async def program() -> None:
        run.config = load_config()
        for key, output in build(run.config).items():
            run.outputs[key] = await output.future()

    _sync_await(run_pulumi_func(lambda: _sync_await(program())))
    return run
