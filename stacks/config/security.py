"""Access and hardening: cluster sign-in (Entra ID, kubelogin), API server ranges, node OS disks, registry
retention, and HTTPS (TLS) names."""

from __future__ import annotations

import re
from dataclasses import dataclass

from stacks.config.cluster import LOCAL_DISK_GIB, OS_DISK_TYPES
from stacks.config.reader import DNS_LABEL, ConfigError, Reader

#: `kubelogin get-token --login` modes that work without a browser (Azure/kubelogin README, "Login modes").
KUBELOGIN_MODES = ("azurecli", "workloadidentity", "spn", "msi", "azd")

#: `apiServerRunnerPublicIp`: `<resource group>/<public IP name>` (Azure names: resource group 1-90
#: characters, public IP 1-80, letters, digits, `_`, `-`, `.`; Azure "Naming rules and restrictions for Azure
#: resources").
_PUBLIC_IP = re.compile(r"^([-\w._()]{1,90})/([A-Za-z0-9][-\w.]{0,78}[\w])$")
_EMAIL = re.compile(r"^[A-Za-z0-9._%+-]+@([A-Za-z0-9-]+\.)+[A-Za-z]{2,}$")
#: Domains Let's Encrypt refuses as an account contact ("invalid contact domain"): RFC 2606 / 6761 names.
_FORBIDDEN_CONTACT = re.compile(r"(^|\.)(example\.(com|net|org)|example|test|invalid|localhost)$")


@dataclass(frozen=True)
class SecuritySettings:
    """Access and hardening. Cluster fields apply to target azure only.

    `authorized_ip_ranges`: CIDRs for the API server (empty: public). `runner_public_ip`: (resource group,
    name) of the public IP address where `pulumi up` runs from (bootstrap's prod runner egress), whose
    address the program adds to the API server's ranges as `<ip>/32`; None: none. `os_disk_size_gb`: GB.
    `tls`: HTTPS at https://<dns_label>.<region>.cloudapp.azure.com with a Let's Encrypt certificate.
    """

    local_accounts: bool
    kubelogin_mode: str
    authorized_ip_ranges: tuple[str, ...]
    os_disk_type: str
    os_disk_size_gb: int
    max_pods: int
    encryption_at_host: bool
    untagged_retention_days: int
    tls: bool
    dns_label: str | None
    tls_contact_email: str | None
    runner_public_ip: tuple[str, str] | None = None

    @property
    def restricts_api_server(self) -> bool:
        """True when the API server admits only listed addresses (ranges, the runner's, or both)."""
        return bool(self.authorized_ip_ranges) or self.runner_public_ip is not None


def _os_disk(r: Reader, vm_sizes: tuple[str, ...]) -> tuple[str, int]:
    """`osDiskType` and `osDiskSizeGb`; an ephemeral disk must fit every pool's local disk."""
    disk_type = r.choice("osDiskType", OS_DISK_TYPES)
    size = r.int("osDiskSizeGb", minimum=30, maximum=2048)
    if disk_type == "Ephemeral":
        for vm_size in vm_sizes:
            local = LOCAL_DISK_GIB.get(vm_size)
            if local is not None and size > local:
                raise ConfigError(
                    f"{r.key('osDiskSizeGb')} ({size}) does not fit the {local} GiB local disk of {vm_size} "
                    f"for an ephemeral OS disk (sizes without a local disk, e.g. Dsv5 or Dsv6, need "
                    f"their `d` variant such as Ddsv5 or Ddsv6, or {r.key('osDiskType')}: Managed)"
                )
    return disk_type, size


def _tls(r: Reader, target: str) -> tuple[bool, str | None, str | None]:
    """`tls`, `dnsLabel`, `tlsContactEmail`: both names are required when TLS is on (azure only)."""
    if not r.bool("tls"):
        return False, None, None
    if target != "azure":
        raise ConfigError(f"{r.key('tls')} needs target azure (the name is an Azure cloudapp DNS label)")
    label = r.str("dnsLabel")
    if label is None:
        raise ConfigError(f"{r.key('dnsLabel')} must be set when {r.key('tls')} is true")
    if not DNS_LABEL.match(label):
        raise ConfigError(f"{r.key('dnsLabel')} is not a valid DNS label (RFC 1123): {label!r}")
    email = r.str("tlsContactEmail")
    if email is None:
        raise ConfigError(f"{r.key('tlsContactEmail')} must be set when {r.key('tls')} is true")
    if not _EMAIL.match(email) or _FORBIDDEN_CONTACT.search(email.rsplit("@", 1)[-1].lower()):
        raise ConfigError(
            f"{r.key('tlsContactEmail')} must be a deliverable e-mail address (Let's Encrypt refuses "
            f"reserved domains such as example.com), got {email!r}"
        )
    return True, label, email


def _runner_public_ip(r: Reader) -> tuple[str, str] | None:
    """`apiServerRunnerPublicIp`: `<resource group>/<public IP name>`, or None when empty."""
    value = r.str("apiServerRunnerPublicIp")
    if value is None:
        return None
    match = _PUBLIC_IP.match(value)
    if not match:
        raise ConfigError(
            f"{r.key('apiServerRunnerPublicIp')} must be <resource group>/<public IP name> (bootstrap's "
            f"`runnerPublicIpId` names both), got {value!r}"
        )
    return match.group(1), match.group(2)


def security_settings(r: Reader, target: str, vm_sizes: tuple[str, ...]) -> SecuritySettings:
    ranges = r.cidrs("apiServerAuthorizedIpRanges")
    runner = _runner_public_ip(r)
    if target == "azure" and r.bool("requireAuthorizedIpRanges") and not ranges and runner is None:
        raise ConfigError(
            f"{r.key('apiServerAuthorizedIpRanges')} must list the CIDRs allowed to reach the API server "
            f"(or {r.key('apiServerRunnerPublicIp')} name the runner's address): "
            f"{r.key('requireAuthorizedIpRanges')} is true for this stack"
        )
    disk_type, disk_size = _os_disk(r, vm_sizes)
    tls, dns_label, email = _tls(r, target)
    return SecuritySettings(
        local_accounts=r.bool("localAccounts"),
        kubelogin_mode=r.choice("kubeloginMode", KUBELOGIN_MODES),
        authorized_ip_ranges=ranges,
        os_disk_type=disk_type,
        os_disk_size_gb=disk_size,
        max_pods=r.int("maxPods", minimum=50, maximum=250),
        encryption_at_host=r.bool("encryptionAtHost"),
        untagged_retention_days=r.int("untaggedRetentionDays", minimum=0, maximum=365),
        tls=tls,
        dns_label=dns_label,
        tls_contact_email=email,
        runner_public_ip=runner,
    )
