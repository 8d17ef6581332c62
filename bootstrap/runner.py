"""Where prod's `pulumi up` runs: a self-hosted GitHub Actions runner whose only way out is one fixed address.

Prod's API server accepts only its authorized IP ranges (`apiServerAuthorizedIpRanges`), and GitHub-hosted
runners have no fixed addresses. The runner is a small Linux VM in a subnet of its own, with no public IP of
its own and no inbound rule: its outbound traffic leaves through a NAT gateway with one static Standard
public IP (Azure NAT Gateway: "all outbound traffic from the subnet uses the gateway's public IPs",
learn.microsoft.com/azure/nat-gateway/nat-overview), so that address, as `<ip>/32`, is the range prod must
authorize. A VM rather than a Container Apps job (Microsoft's "Deploy self-hosted CI/CD runners and agents
with Azure Container Apps jobs" tutorial) because `pulumi up` builds the service image with Docker
(pulumi-docker-build), and Container Apps jobs cannot run Docker (same tutorial, "Note").
"""

from __future__ import annotations

import base64
from dataclasses import dataclass

import pulumi
import pulumi_random as random
from pulumi_azure_native import compute, network

from bootstrap.config import RunnerConfig

#: Ubuntu 24.04 LTS, the image GitHub's own `ubuntu-24.04` runners start from (Canonical's Azure offer).
IMAGE = {"publisher": "Canonical", "offer": "ubuntu-24_04-lts", "sku": "server", "version": "latest"}
ADMIN_USER = "runneradmin"
RUNNER_HOME = "/opt/actions-runner"


@dataclass
class RunnerArgs:
    """`repository`: `owner/repo` the runner registers with; `settings`: `RunnerConfig`."""

    resource_group_name: pulumi.Input[str]
    location: pulumi.Input[str]
    repository: str
    settings: RunnerConfig


def cloud_init(repository: str, settings: RunnerConfig, token: str) -> str:
    """The VM's first-boot script (cloud-init runs a `#!` user script as root): Docker and Python, the
    GitHub runner `settings.version` in `RUNNER_HOME`, registered for `repository` with `settings.labels`
    (runner `config.sh --unattended`, GitHub docs "Adding self-hosted runners"), installed as a service."""
    version = settings.version
    tarball = f"actions-runner-linux-x64-{version}.tar.gz"
    return "\n".join([
        "#!/bin/bash",
        "set -euo pipefail",
        "export DEBIAN_FRONTEND=noninteractive",
        "apt-get update",
        "apt-get install -y --no-install-recommends docker.io docker-buildx python3-venv git curl "
        "ca-certificates",
        "useradd --create-home --shell /bin/bash --groups docker runner",
        f"mkdir -p {RUNNER_HOME} && cd {RUNNER_HOME}",
        f"curl -fsSL -o {tarball} https://github.com/actions/runner/releases/download/v{version}/{tarball}",
        f"tar xzf {tarball} && rm {tarball} && chown -R runner:runner {RUNNER_HOME}",
        f"sudo -u runner ./config.sh --unattended --replace --url https://github.com/{repository} "
        f"--token '{token}' --name \"$(hostname)\" --labels {','.join(settings.labels)}",
        "./svc.sh install runner",
        "./svc.sh start",
    ]) + "\n"


class ProdRunner(pulumi.ComponentResource):
    """NAT gateway + static public IP + subnet (no default outbound access, inbound denied) + the runner VM.

    The VM is declared only once `settings.registration_token` is set (a registration token lasts one hour:
    `gh api -X POST repos/<owner>/<repo>/actions/runners/registration-token`); the address exists before,
    so prod's ranges can include it first. The VM's administrator password is random and unused: the VM has
    no inbound path. Outputs: `egress_ip`, `egress_cidr` (`<ip>/32`), `public_ip_id`, `subnet_id`.
    """

    def __init__(self, name: str, args: RunnerArgs, opts: pulumi.ResourceOptions | None = None):
        super().__init__("aks-image-classifier:runner:ProdRunner", name, None, opts)
        child = pulumi.ResourceOptions(parent=self)
        where = {"resource_group_name": args.resource_group_name, "location": args.location}
        self.public_ip = network.PublicIPAddress(
            f"{name}-egress-ip",
            public_ip_address_name=f"{name}-egress",
            sku=network.PublicIPAddressSkuArgs(name=network.PublicIPAddressSkuName.STANDARD),
            public_ip_allocation_method=network.IPAllocationMethod.STATIC,
            public_ip_address_version=network.IPVersion.I_PV4,
            # The address is what prod authorizes: losing it (a delete) locks prod's deployments out.
            opts=pulumi.ResourceOptions(parent=self, protect=True),
            **where,
        )
        self.nat = network.NatGateway(
            f"{name}-nat",
            nat_gateway_name=f"{name}-nat",
            sku=network.NatGatewaySkuArgs(name=network.NatGatewaySkuName.STANDARD),
            public_ip_addresses=[network.SubResourceArgs(id=self.public_ip.id)],
            idle_timeout_in_minutes=4,
            opts=child,
            **where,
        )
        self.nsg = network.NetworkSecurityGroup(
            f"{name}-nsg",
            network_security_group_name=f"{name}-nsg",
            security_rules=[network.SecurityRuleArgs(
                name="deny-all-inbound", priority=4096, direction=network.SecurityRuleDirection.INBOUND,
                access=network.SecurityRuleAccess.DENY, protocol=network.SecurityRuleProtocol.ASTERISK,
                source_address_prefix="*", source_port_range="*", destination_address_prefix="*",
                destination_port_range="*",
            )],
            opts=child,
            **where,
        )
        # The subnet inline, not a separate Subnet resource: a VirtualNetwork update would otherwise drop it
        # (pulumi-azure-native#611).
        self.vnet = network.VirtualNetwork(
            f"{name}-vnet",
            virtual_network_name=f"{name}-vnet",
            address_space=network.AddressSpaceArgs(address_prefixes=[args.settings.address_prefix]),
            subnets=[network.SubnetArgs(
                name="runner",
                address_prefix=args.settings.address_prefix,
                nat_gateway=network.SubResourceArgs(id=self.nat.id),
                network_security_group=network.NetworkSecurityGroupArgs(id=self.nsg.id),
                default_outbound_access=False,
            )],
            opts=child,
            **where,
        )
        self.subnet_id: pulumi.Output[str] = self.vnet.subnets.apply(lambda subnets: subnets[0].id)
        self.egress_ip: pulumi.Output[str] = self.public_ip.ip_address
        self.egress_cidr: pulumi.Output[str] = self.public_ip.ip_address.apply(lambda ip: f"{ip}/32")
        self.public_ip_id: pulumi.Output[str] = self.public_ip.id
        self.vm = None if args.settings.registration_token is None else self._vm(name, args, where)
        self.register_outputs({"egress_ip": self.egress_ip, "egress_cidr": self.egress_cidr,
                               "public_ip_id": self.public_ip_id, "subnet_id": self.subnet_id})

    def _vm(self, name: str, args: RunnerArgs, where: dict) -> compute.VirtualMachine:
        child = pulumi.ResourceOptions(parent=self)
        nic = network.NetworkInterface(
            f"{name}-nic",
            network_interface_name=f"{name}-nic",
            ip_configurations=[network.NetworkInterfaceIPConfigurationArgs(
                name="primary", subnet=network.SubnetArgs(id=self.subnet_id),
                private_ip_allocation_method=network.IPAllocationMethod.DYNAMIC,
            )],
            opts=child,
            **where,
        )
        password = random.RandomPassword(f"{name}-admin-password", length=32, special=True, opts=child)
        script = pulumi.Output.secret(args.settings.registration_token).apply(
            lambda token: base64.b64encode(cloud_init(args.repository, args.settings, token).encode())
            .decode()
        )
        return compute.VirtualMachine(
            f"{name}-vm",
            vm_name=f"{name}-vm",
            hardware_profile=compute.HardwareProfileArgs(vm_size=args.settings.vm_size),
            storage_profile=compute.StorageProfileArgs(
                image_reference=compute.ImageReferenceArgs(**IMAGE),
                os_disk=compute.OSDiskArgs(
                    create_option=compute.DiskCreateOptionTypes.FROM_IMAGE,
                    delete_option=compute.DiskDeleteOptionTypes.DELETE,
                    disk_size_gb=64,
                    managed_disk=compute.ManagedDiskParametersArgs(
                        storage_account_type=compute.StorageAccountTypes.STANDARD_SS_D_LRS),
                ),
            ),
            os_profile=compute.OSProfileArgs(
                computer_name=f"{name}-vm",
                admin_username=ADMIN_USER,
                admin_password=password.result,
                custom_data=script,
                linux_configuration=compute.LinuxConfigurationArgs(
                    patch_settings=compute.LinuxPatchSettingsArgs(
                        patch_mode=compute.LinuxVMGuestPatchMode.AUTOMATIC_BY_PLATFORM),
                ),
            ),
            network_profile=compute.NetworkProfileArgs(network_interfaces=[
                compute.NetworkInterfaceReferenceArgs(id=nic.id, primary=True,
                                                      delete_option=compute.DeleteOptions.DELETE),
            ]),
            opts=child,
            **where,
        )
