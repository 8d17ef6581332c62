"""The prod runner under mocks: its only way out is the NAT gateway's static address, the bootstrap exports
that address as the range prod must authorize, and the VM registers with the labels the prod jobs ask for.

Rules modelled: a subnet with a NAT gateway sends all outbound internet traffic through the gateway's public
IPs, and a NIC without a public IP has no other way out once the subnet's default outbound access is off
(learn.microsoft.com/azure/nat-gateway/nat-overview; virtual-network/ip-services/default-outbound-access);
a NAT gateway needs a Standard SKU static public IP (same page); an AKS authorized range is a CIDR, a single
address as /32 (learn.microsoft.com/azure/aks/api-server-authorized-ip-ranges).
"""

from __future__ import annotations

import base64
import ipaddress

import pytest

from bootstrap.runner import RUNNER_HOME
from tests.bootstrap.harness import RUNNER_EGRESS_IP, run_bootstrap
from tests.harness.stack_mocks import MockRun, is_secret

TOKEN = "AABBCCDDEEFFGG"


@pytest.fixture(scope="module")
def run() -> MockRun:
    return run_bootstrap({"runnerRegistrationToken": TOKEN})


def test_egress_is_one_static_standard_address_exported_as_a_range(run):
    ip = run.one("azure-native:network:PublicIPAddress")
    assert ip.inputs["sku"] == {"name": "Standard"}
    assert ip.inputs["publicIPAllocationMethod"] == "Static" and ip.inputs["publicIPAddressVersion"] == "IPv4"
    assert ip.protect  # prod authorizes this address: deleting it locks prod's deployments out
    nat = run.one("azure-native:network:NatGateway")
    assert nat.inputs["sku"] == {"name": "Standard"}
    assert nat.inputs["publicIpAddresses"] == [{"id": ip.id}]
    assert run.outputs["runnerEgressIp"] == RUNNER_EGRESS_IP
    cidr = ipaddress.ip_network(run.outputs["runnerEgressCidr"])
    assert cidr == ipaddress.ip_network(f"{RUNNER_EGRESS_IP}/32")
    assert run.outputs["runnerPublicIpId"] == ip.id


def test_the_runner_subnet_leaves_only_through_the_nat_gateway(run):
    nat = run.one("azure-native:network:NatGateway")
    nsg = run.one("azure-native:network:NetworkSecurityGroup")
    vnet = run.one("azure-native:network:VirtualNetwork")
    (subnet,) = vnet.inputs["subnets"]
    assert subnet["natGateway"] == {"id": nat.id}
    assert subnet["defaultOutboundAccess"] is False
    assert subnet["networkSecurityGroup"] == {"id": nsg.id}
    assert subnet["addressPrefix"] == "10.90.0.0/27" == vnet.inputs["addressSpace"]["addressPrefixes"][0]
    (rule,) = nsg.inputs["securityRules"]
    assert (rule["direction"], rule["access"], rule["sourceAddressPrefix"]) == ("Inbound", "Deny", "*")
    nic = run.one("azure-native:network:NetworkInterface")
    (config,) = nic.inputs["ipConfigurations"]
    assert config["subnet"]["id"] == f"{vnet.id}/subnets/runner"
    assert "publicIPAddress" not in config  # no second way out, no way in


def test_vm_registers_the_runner_with_the_prod_labels(run):
    vm = run.one("azure-native:compute:VirtualMachine")
    nic = run.one("azure-native:network:NetworkInterface")
    assert vm.inputs["networkProfile"]["networkInterfaces"][0]["id"] == nic.id
    assert vm.inputs["hardwareProfile"] == {"vmSize": "Standard_D2as_v5"}
    assert "identity" not in vm.inputs  # jobs bring their own federated tokens; the VM holds no Azure role
    script = base64.b64decode(vm.inputs["osProfile"]["customData"]).decode()
    assert script.startswith("#!/bin/bash\nset -euo pipefail\n")
    assert "docker.io" in script  # pulumi up builds the service image with Docker
    assert (f"./config.sh --unattended --replace --url https://github.com/octo-org/aks-image-classifier "
            f"--token '{TOKEN}' --name \"$(hostname)\" --labels aic-prod") in script
    assert "releases/download/v2.329.0/actions-runner-linux-x64-2.329.0.tar.gz" in script
    assert f"mkdir -p {RUNNER_HOME}" in script and "./svc.sh install runner" in script
    assert run.outputs["runnerLabels"] == ["self-hosted", "aic-prod"]


def test_registration_token_stays_secret(run):
    """The custom data carries the registration token: the engine must store it encrypted."""
    vm = run.one("azure-native:compute:VirtualMachine")
    assert is_secret(vm.raw_inputs["osProfile"])  # the SDK marks the whole profile once one field is secret


def test_without_a_token_the_address_exists_but_no_vm():
    run = run_bootstrap()
    assert run.of_type("azure-native:compute:VirtualMachine") == []
    assert run.of_type("azure-native:network:NetworkInterface") == []
    assert run.outputs["runnerEgressCidr"] == f"{RUNNER_EGRESS_IP}/32"


def test_prod_stack_authorizes_the_runner_egress_bootstrap_declares(run):
    """bootstrap/, Pulumi.prod.yaml and the program agree on the runner's address: the prod stack names the
    public IP bootstrap declares (its group and name), and the program adds what Azure answers for it, as a
    /32, to the API server's authorized ranges, next to the configured ones."""
    from tests.harness.stack_mocks import run_program, stack_file_config
    from tests.stacks.conftest import ROOT

    ip = run.one("azure-native:network:PublicIPAddress")
    declared = f"{ip.inputs['resourceGroupName']}/{ip.inputs['publicIpAddressName']}"
    config = stack_file_config("prod", ROOT)
    assert config["aks-image-classifier:apiServerRunnerPublicIp"] == declared
    prod = run_program(config, "prod")
    ranges = prod.one("azure-native:containerservice:ManagedCluster").inputs["apiServerAccessProfile"]
    assert f"{run.outputs['runnerEgressIp']}/32" in ranges["authorizedIPRanges"]
    configured = set(config["aks-image-classifier:apiServerAuthorizedIpRanges"])
    assert configured <= set(ranges["authorizedIPRanges"])
    assert "azure-native:network:getPublicIPAddress" in prod.invokes
