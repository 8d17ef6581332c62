"""Node, API server and registry hardening as each stack's config chose it (mock inputs = ARM bodies)."""

from __future__ import annotations

from stacks.config import LOCAL_DISK_GIB
from tests.harness.stack_mocks import RUNNER_EGRESS_IP
from tests.stacks.conftest import run_stack

AKS = "azure-native:containerservice:ManagedCluster"
POOL = "azure-native:containerservice:AgentPool"
ACR = "azure-native:containerregistry:Registry"


def pools(run):
    return [run.one(AKS).inputs["agentPoolProfiles"][0], run.one(POOL).inputs]


def test_prod_api_server_admits_only_its_authorized_ranges(prod, dev):
    # Pulumi.prod.yaml's example range, and the prod runner's egress (apiServerRunnerPublicIp)
    assert prod.one(AKS).inputs["apiServerAccessProfile"] == {
        "authorizedIPRanges": ["203.0.113.0/24", f"{RUNNER_EGRESS_IP}/32"]
    }
    assert "apiServerAccessProfile" not in dev.one(AKS).inputs  # dev: public, warned by the policy pack
    ranges = ["198.51.100.0/24", "2001:db8::/32"]
    run = run_stack("dev", apiServerAuthorizedIpRanges=ranges)
    assert run.one(AKS).inputs["apiServerAccessProfile"]["authorizedIPRanges"] == ranges


def test_both_pools_have_ephemeral_os_disks_that_fit_the_local_disk(dev, prod):
    for run in (dev, prod):
        for pool in pools(run):
            assert pool["osDiskType"] == "Ephemeral"
            # Ddsv5 temp disk, Ddsv6 NVMe disks (Microsoft Learn "Ddsv5 sizes", "Ddsv6 sizes series");
            # Dsv5 and Dsv6 have none, so no ephemeral OS disk.
            assert 0 < pool["osDiskSizeGB"] <= LOCAL_DISK_GIB[pool["vmSize"]], pool["vmSize"]
    assert LOCAL_DISK_GIB["Standard_D4s_v5"] == 0 and LOCAL_DISK_GIB["Standard_D4ds_v5"] == 150
    assert LOCAL_DISK_GIB["Standard_D4s_v6"] == 0 and LOCAL_DISK_GIB["Standard_D4ds_v6"] == 220
    assert LOCAL_DISK_GIB["Standard_D16ds_v6"] == 2 * 440  # two NVMe disks of 440 GiB


def test_max_pods_is_explicit_and_at_least_50(dev, prod):
    for run in (dev, prod):
        assert [p["maxPods"] for p in pools(run)] == [110, 110]


def test_encryption_at_host_is_on_in_prod_and_what_dev_chose(dev, prod):
    assert [p["enableEncryptionAtHost"] for p in pools(prod)] == [True, True]
    assert [p["enableEncryptionAtHost"] for p in pools(dev)] == [False, False]


def test_dashboard_add_on_is_explicitly_off(dev, prod):
    for run in (dev, prod):
        assert run.one(AKS).inputs["addonProfiles"]["kubeDashboard"] == {"enabled": False}


def test_prod_registry_is_premium_zone_redundant_with_untagged_retention(prod, dev):
    acr = prod.one(ACR).inputs
    assert acr["sku"] == {"name": "Premium"}
    assert acr["zoneRedundancy"] == "Enabled"
    assert acr["policies"]["retentionPolicy"] == {"days": 7, "status": "enabled"}
    basic = dev.one(ACR).inputs
    # Basic has neither feature (Azure "Container Registry service tiers"); the SDK sends its default.
    assert basic["sku"] == {"name": "Basic"} and basic["zoneRedundancy"] == "Disabled"
    assert "policies" not in basic
