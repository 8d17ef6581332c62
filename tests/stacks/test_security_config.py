"""Security config mistakes fail before any resource is declared, naming the key (ConfigError)."""

from __future__ import annotations

import pytest

from stacks.config import ConfigError
from tests.harness.stack_mocks import MockRun, run_program, stack_file_config
from tests.stacks.conftest import ROOT

P = "aks-image-classifier"


def declare(stack: str, **overrides) -> MockRun:
    config = stack_file_config(stack, ROOT)
    config.update({f"{P}:{k}": v for k, v in overrides.items()})
    run = MockRun()
    try:
        run_program(config, stack, run=run)
    finally:
        assert run.resources == [], "a config error must stop the program before any resource"
    return run


@pytest.mark.parametrize(
    ("stack", "overrides", "key", "words"),
    [
        (
            "dev",
            {"apiServerAuthorizedIpRanges": ["10.0.0.1/8"]},
            "apiServerAuthorizedIpRanges",
            "invalid CIDR",
        ),
        ("dev", {"apiServerAuthorizedIpRanges": ["office"]}, "apiServerAuthorizedIpRanges", "invalid CIDR"),
        (
            "prod",
            {"apiServerAuthorizedIpRanges": [], "apiServerRunnerPublicIp": ""},
            "apiServerAuthorizedIpRanges",
            "requireAuthorizedIpRanges",
        ),
        (
            "prod",
            {"apiServerRunnerPublicIp": "aic-prod-runner-egress"},
            "apiServerRunnerPublicIp",
            "<resource group>/",
        ),
        ("prod", {"apiServerRunnerPublicIp": "rg/bad name"}, "apiServerRunnerPublicIp", "<public IP name>"),
        ("prod", {"dnsLabel": ""}, "dnsLabel", "must be set"),
        ("prod", {"dnsLabel": "Not_A_Label"}, "dnsLabel", "DNS label"),
        ("prod", {"tlsContactEmail": ""}, "tlsContactEmail", "must be set"),
        ("prod", {"tlsContactEmail": "ops"}, "tlsContactEmail", "e-mail"),
        # Let's Encrypt refuses reserved contact domains ("invalid contact domain").
        ("prod", {"tlsContactEmail": "ops@example.com"}, "tlsContactEmail", "reserved"),
        ("dev", {"tls": "true"}, "dnsLabel", "must be set"),
        ("local", {"tls": "true"}, "tls", "target azure"),
        ("dev", {"nodeVmSize": "Standard_D4s_v5"}, "osDiskSizeGb", "local disk"),
        ("dev", {"nodeVmSize": "Standard_D4s_v6"}, "osDiskSizeGb", "local disk"),
        # The workload pool's Ddsv6 NVMe disk (220 GiB) is the limit once the system pool's disk is larger.
        (
            "dev",
            {"systemNodeVmSize": "Standard_D16ds_v5", "osDiskSizeGb": "230"},
            "osDiskSizeGb",
            "220 GiB local disk of Standard_D4ds_v6",
        ),
        ("prod", {"osDiskSizeGb": "200"}, "osDiskSizeGb", "Standard_D4ds_v5"),
        ("dev", {"maxPods": "30"}, "maxPods", ">= 50"),
        ("dev", {"kubeloginMode": "devicecode"}, "kubeloginMode", "azurecli"),
        ("dev", {"deployerPrincipalType": "Robot"}, "deployerPrincipalType", "ServicePrincipal"),
        ("dev", {"localAccounts": "maybe"}, "localAccounts", "true or false"),
    ],
)
def test_security_mistake_names_the_key_before_anything_is_declared(stack, overrides, key, words):
    with pytest.raises(ConfigError) as error:
        declare(stack, **overrides)
    message = str(error.value)
    assert message.startswith(f"{P}:{key}"), message
    assert words in message, message


def test_managed_os_disks_lift_the_local_disk_rule():
    run = MockRun()
    config = {
        **stack_file_config("dev", ROOT),
        f"{P}:nodeVmSize": "Standard_D4s_v5",
        f"{P}:osDiskType": "Managed",
    }
    run_program(config, "dev", run=run)
    assert run.config.security.os_disk_type == "Managed"


def test_the_runner_address_alone_satisfies_required_ranges():
    """prod without configured ranges still restricts its API server to the runner's egress (a /32)."""
    config = stack_file_config("prod", ROOT)
    config[f"{P}:apiServerAuthorizedIpRanges"] = []
    run = run_program(config, "prod")
    profile = run.one("azure-native:containerservice:ManagedCluster").inputs["apiServerAccessProfile"]
    assert profile["authorizedIPRanges"] == ["203.0.113.77/32"]
