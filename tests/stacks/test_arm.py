"""The Azure side measured: `tools.render_arm` templates of dev and prod judged by checkov's ARM rules.

Checkov's ARM framework reads a resource's `metadata.checkov` entries (`<CHECK_ID>:<reason>`) as inline
suppressions (checkov `arm/context_parser.py` `collect_skip_comments`); every accepted finding is
declared next to its resource in stacks/ with a reason that names the stack setting behind it.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from tests.harness.stack_mocks import run_program, stack_file_config
from tools import render_arm

ROOT = Path(__file__).resolve().parents[2]
CLUSTER = "Microsoft.ContainerService/managedClusters"
POOL = "Microsoft.ContainerService/managedClusters/agentPools"
REGISTRY = "Microsoft.ContainerRegistry/registries"
STORAGE = "Microsoft.Storage/storageAccounts"
#: What each stack accepts, by ARM type: anything else must pass.
EXPECTED_SKIPS = {
    "dev": {
        (CLUSTER, "CKV_AZURE_141"),  # localAccounts: true (break-glass)
        (CLUSTER, "CKV_AZURE_6"),  # no authorized IP ranges
        (CLUSTER, "CKV_AZURE_227"),  # encryptionAtHost: false
        (POOL, "CKV_AZURE_227"),
        (CLUSTER, "CKV_AZURE_172"),  # no Key Vault secrets provider
        (REGISTRY, "CKV_AZURE_139"),  # public network access
        (REGISTRY, "CKV_AZURE_166"),  # quarantine
        (REGISTRY, "CKV_AZURE_163"),  # Basic SKU
        (REGISTRY, "CKV_AZURE_233"),  # zone redundancy is Premium-only
        (STORAGE, "CKV_AZURE_35"),  # model storage: public endpoint (no private endpoint)
        (STORAGE, "CKV_AZURE_206"),  # LRS: models are republishable
    },
    "prod": {
        (CLUSTER, "CKV_AZURE_172"),
        (REGISTRY, "CKV_AZURE_139"),
        (REGISTRY, "CKV_AZURE_166"),
        (STORAGE, "CKV_AZURE_35"),
        (STORAGE, "CKV_AZURE_206"),  # ZRS, not geo-replicated
    },
}


@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory) -> dict:
    """Both templates, judged by one checkov process (checkov takes seconds to start)."""
    out = tmp_path_factory.mktemp("arm")
    for stack in ("dev", "prod"):
        render_arm.render(stack, out / f"{stack}.json", ROOT)
    checkov = os.environ.get("CHECKOV", str(ROOT / ".venv-checkov" / "bin" / "checkov"))
    result = subprocess.run(
        [checkov, "--framework", "arm", "-d", str(out), "--skip-download", "--compact", "-o", "json"],
        capture_output=True,
        text=True,
        timeout=300,
    )
    report = json.loads(result.stdout)
    return report[0] if isinstance(report, list) else report


def by_stack(checks: list[dict]) -> dict[str, set[tuple[str, str]]]:
    found: dict[str, set[tuple[str, str]]] = {"dev": set(), "prod": set()}
    for check in checks:
        stack = Path(check["file_path"]).stem
        found[stack].add((check["resource"].rsplit(".", 1)[0], check["check_id"]))
    return found


def test_checkov_arm_has_no_failed_check_on_dev_or_prod(checkov_report):
    summary = checkov_report["summary"]
    failed = [
        (c["file_path"], c["check_id"], c["resource"]) for c in checkov_report["results"]["failed_checks"]
    ]
    assert summary["failed"] == 0 and not failed, failed
    assert summary["parsing_errors"] == 0
    passed = by_stack(checkov_report["results"]["passed_checks"])
    # Both templates were judged: the cluster, pool, registry and storage rules ran on each.
    for stack in ("dev", "prod"):
        assert {t for t, _ in passed[stack]} == {
            CLUSTER,
            POOL,
            REGISTRY,
            STORAGE,
            f"{STORAGE}/blobServices/containers",
        }, stack
    print(f"checkov arm: {summary}")


def test_every_skip_is_expected_for_its_stack_and_reasoned(checkov_report):
    skipped = checkov_report["results"]["skipped_checks"]
    assert by_stack(skipped) == EXPECTED_SKIPS
    for check in skipped:
        reason = check["check_result"]["suppress_comment"]
        assert len(reason) > 30 and reason != "No comment provided", check["check_id"]


def template_of(stack: str, **overrides) -> dict:
    config = stack_file_config(stack, ROOT)
    config.update({f"aks-image-classifier:{k}": v for k, v in overrides.items()})
    return render_arm.template(run_program(config, stack))


def skips_of(document: dict, arm_type: str) -> set[str]:
    (resource,) = [r for r in document["resources"] if r["type"] == arm_type]
    return {entry.split(":", 1)[0] for entry in resource.get("metadata", {}).get("checkov", [])}


def test_skips_follow_the_config_not_the_stack_name():
    hardened = template_of(
        "dev",
        localAccounts="false",
        encryptionAtHost="true",
        apiServerAuthorizedIpRanges=["198.51.100.0/24"],
        registrySku="Premium",
    )
    assert skips_of(hardened, CLUSTER) == {"CKV_AZURE_172"}
    assert skips_of(hardened, POOL) == set()
    assert skips_of(hardened, REGISTRY) == {"CKV_AZURE_139", "CKV_AZURE_166"}


def test_resources_are_arm_bodies():
    document = template_of("prod")
    types = [r["type"] for r in document["resources"]]
    assert sorted(types) == sorted(
        [
            "Microsoft.Resources/resourceGroups",
            "Microsoft.OperationalInsights/workspaces",
            CLUSTER,
            POOL,
            REGISTRY,
            "Microsoft.Authorization/roleAssignments",
            "Microsoft.Authorization/roleAssignments",
            # Container Insights data collection (stacks/monitoring.py)
            "Microsoft.Insights/dataCollectionRules",
            "Microsoft.Insights/dataCollectionRuleAssociations",
            # model repository (stacks/model_repository.py): storage, identity and its two role assignments
            STORAGE,
            f"{STORAGE}/blobServices",
            f"{STORAGE}/blobServices/containers",
            "Microsoft.ManagedIdentity/userAssignedIdentities",
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
            "Microsoft.Authorization/roleAssignments",
            "Microsoft.Authorization/roleAssignments",
        ]
    )
    (account,) = [r for r in document["resources"] if r["type"] == STORAGE]
    assert account["properties"]["networkAcls"]["bypass"] == "AzureServices"  # ARM's name, not the SDK's
    (container,) = [r for r in document["resources"] if r["type"].endswith("/containers")]
    assert container["name"] == f"{account['name']}/default/models"
    (cluster,) = [r for r in document["resources"] if r["type"] == CLUSTER]
    # field notes: azure-native 3.x ManagedCluster calls API 2025-09-01.
    assert cluster["apiVersion"] == "2025-09-01"
    assert {"location", "identity", "sku"} <= set(cluster) and "resourceGroupName" not in cluster
    assert cluster["properties"]["disableLocalAccounts"] is True
    assert "resourceName" not in cluster["properties"] and "resourceGroupName" not in cluster["properties"]
    (pool,) = [r for r in document["resources"] if r["type"] == POOL]
    assert pool["name"] == f"{cluster['name']}/workload"
    assert set(pool) == {"type", "apiVersion", "name", "properties"}
    assert not {"agentPoolName", "resourceName", "resourceGroupName"} & set(pool["properties"])
    (workspace,) = [r for r in document["resources"] if r["type"].endswith("/workspaces")]
    assert "sku" in workspace["properties"]  # a property of a Log Analytics workspace, not a top-level key
    role = next(r for r in document["resources"] if r["type"].endswith("/roleAssignments"))
    assert "scope" in role and "principalId" in role["properties"]


def test_an_unmapped_azure_type_is_an_error_not_a_silent_gap():
    with pytest.raises(render_arm.UnmappedType, match="azure-native:network:VirtualNetwork"):
        render_arm.arm_resource("azure-native:network:VirtualNetwork", "vnet", {}, {})


def test_cli_writes_the_template_and_rejects_unknown_stacks(tmp_path, capsys):
    out = tmp_path / "dev.json"
    assert render_arm.main(["--stack", "dev", "--out", str(out)]) == 0
    assert json.loads(out.read_text())["$schema"] == render_arm.SCHEMA
    assert render_arm.main(["--stack", "nope", "--out", str(tmp_path / "x.json")]) == 2
    assert "Pulumi.nope.yaml" in capsys.readouterr().err


def test_readme_and_security_doc_state_the_measured_counts(checkov_report):
    """The checkov figures the README and docs/security.md show are this run's, per stack."""
    counts = {stack: {"passed": 0, "failed": 0, "skipped": 0} for stack in ("dev", "prod")}
    for outcome in counts["dev"]:
        for check in checkov_report["results"][f"{outcome}_checks"]:
            counts[Path(check["file_path"]).stem][outcome] += 1
    expected = ", ".join(
        f"{stack} {c['passed']} passed / {c['failed']} failed / {c['skipped']} skipped"
        for stack, c in counts.items()
    )
    for doc in ("README.md", "docs/security.md"):
        text = " ".join((ROOT / doc).read_text().split())
        assert expected in text, f"{doc} should say: {expected}"
