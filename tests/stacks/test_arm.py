"""The Azure side measured: `tools.render_arm` templates of dev, prod and aca judged by checkov's ARM rules.

Checkov's ARM framework reads a resource's `metadata.checkov` entries (`<CHECK_ID>:<reason>`) as inline
suppressions (checkov `arm/context_parser.py` `collect_skip_comments`); every accepted finding is
declared next to its resource in stacks/ with a reason that names the stack setting behind it.
"""

from __future__ import annotations

import json
import os
import re
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
    # Container Apps: the same registry (Basic) and model storage (LRS) as dev, nothing else accepted.
    "aca": {
        (REGISTRY, "CKV_AZURE_139"),
        (REGISTRY, "CKV_AZURE_166"),
        (REGISTRY, "CKV_AZURE_163"),
        (REGISTRY, "CKV_AZURE_233"),
        (STORAGE, "CKV_AZURE_35"),
        (STORAGE, "CKV_AZURE_206"),
    },
}
STACKS = tuple(EXPECTED_SKIPS)
CONTAINER_APP = "Microsoft.App/containerApps"
ENVIRONMENT = "Microsoft.App/managedEnvironments"


@pytest.fixture(scope="module")
def checkov_report(tmp_path_factory) -> dict:
    """Every template, judged by one checkov process (checkov takes seconds to start)."""
    out = tmp_path_factory.mktemp("arm")
    for stack in STACKS:
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
    found: dict[str, set[tuple[str, str]]] = {stack: set() for stack in STACKS}
    for check in checks:
        stack = Path(check["file_path"]).stem
        found[stack].add((check["resource"].rsplit(".", 1)[0], check["check_id"]))
    return found


def test_checkov_arm_has_no_failed_check_on_any_stack(checkov_report):
    summary = checkov_report["summary"]
    failed = [
        (c["file_path"], c["check_id"], c["resource"]) for c in checkov_report["results"]["failed_checks"]
    ]
    assert summary["failed"] == 0 and not failed, failed
    assert summary["parsing_errors"] == 0
    passed = by_stack(checkov_report["results"]["passed_checks"])
    # Every template was judged: the cluster, pool, registry and storage rules ran on each AKS stack.
    for stack in ("dev", "prod"):
        assert {t for t, _ in passed[stack]} == {
            CLUSTER,
            POOL,
            REGISTRY,
            STORAGE,
            f"{STORAGE}/blobServices/containers",
        }, stack
    # checkov has no ARM rule for Microsoft.App types (none in its arm/checks): on the Container Apps stack
    # the registry and storage rules run; the app's own properties: tests/stacks/test_stack_containerapps.py.
    assert {t for t, _ in passed["aca"]} == {REGISTRY, STORAGE, f"{STORAGE}/blobServices/containers"}
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
    roles = "Microsoft.Authorization/roleAssignments"
    assert sorted(types) == sorted(
        [
            # No resource group: the stack adopts the one bootstrap/ made (resourceGroupName).
            "Microsoft.OperationalInsights/workspaces",
            CLUSTER,
            POOL,
            REGISTRY,
            roles,  # AcrPull for the kubelet identity
            roles,  # cluster admins (Pulumi.prod.yaml clusterAdmins: an identity and a group)
            roles,
            # planned maintenance (stacks/maintenance.py), prod's Sunday window for both channels
            f"{CLUSTER}/maintenanceConfigurations",
            f"{CLUSTER}/maintenanceConfigurations",
            # Container Insights data collection (stacks/monitoring.py)
            "Microsoft.Insights/dataCollectionRules",
            "Microsoft.Insights/dataCollectionRuleAssociations",
            # model repository (stacks/model_repository.py): storage, identity, reader and publisher roles
            STORAGE,
            f"{STORAGE}/blobServices",
            f"{STORAGE}/blobServices/containers",
            "Microsoft.ManagedIdentity/userAssignedIdentities",
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
            roles,
            roles,
            # managed Prometheus (stacks/prometheus.py), alert rules (stacks/alert_rules.py): two groups
            "Microsoft.Monitor/accounts",
            "Microsoft.Insights/dataCollectionEndpoints",
            "Microsoft.Insights/dataCollectionRules",
            "Microsoft.Insights/dataCollectionRuleAssociations",
            "Microsoft.Insights/actionGroups",
            "Microsoft.AlertsManagement/prometheusRuleGroups",
            "Microsoft.AlertsManagement/prometheusRuleGroups",
            # KEDA's identity (stacks/keda.py): federated with the operator, Monitoring Data Reader
            "Microsoft.ManagedIdentity/userAssignedIdentities",
            "Microsoft.ManagedIdentity/userAssignedIdentities/federatedIdentityCredentials",
            "Microsoft.Authorization/roleAssignments",
        ]
    )
    windows = [r for r in document["resources"] if r["type"] == f"{CLUSTER}/maintenanceConfigurations"]
    assert sorted(w["name"].split("/")[-1] for w in windows) == [
        "aksManagedAutoUpgradeSchedule",
        "aksManagedNodeOSUpgradeSchedule",
    ]
    for window in windows:
        assert set(window) == {"type", "apiVersion", "name", "properties"}
        assert window["properties"]["maintenanceWindow"]["schedule"] == {
            "weekly": {"dayOfWeek": "Sunday", "intervalWeeks": 1}
        }
    (rules,) = [r for r in document["resources"] if r["name"] == "aks-image-classifier.alerts"]
    assert set(rules) == {"type", "apiVersion", "name", "location", "properties"}
    assert rules["apiVersion"] == "2023-03-01" and rules["properties"]["interval"] == "PT1M"
    (group,) = [r for r in document["resources"] if r["type"] == "Microsoft.Insights/actionGroups"]
    assert group["location"] == "global" and "emailReceivers" in group["properties"]
    (amw,) = [r for r in document["resources"] if r["type"] == "Microsoft.Monitor/accounts"]
    assert set(amw) == {"type", "apiVersion", "name", "location"}  # ARM fills in the rest
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
    assert re.fullmatch(rf"{cluster['name']}/work[0-9a-f]{{8}}", pool["name"])  # versioned by shape
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


def test_container_apps_template_has_no_aks_and_arm_shaped_app_bodies():
    document = template_of("aca")
    types = [r["type"] for r in document["resources"]]
    assert not [t for t in types if t.startswith("Microsoft.ContainerService/")]
    assert types.count(CONTAINER_APP) == types.count(ENVIRONMENT) == 1
    (app,) = [r for r in document["resources"] if r["type"] == CONTAINER_APP]
    # Microsoft.App containerApps: identity at the top as ARM's map {id: {}}; configuration, template inside.
    assert app["identity"]["type"] == "UserAssigned"
    (identity_id,) = app["identity"]["userAssignedIdentities"]
    assert app["identity"]["userAssignedIdentities"][identity_id] == {}
    assert {"configuration", "template", "environmentId"} <= set(app["properties"])
    assert "containerAppName" not in app["properties"] and app["name"] == "classifier"
    (diagnostics,) = [
        r for r in document["resources"] if r["type"] == "Microsoft.Insights/diagnosticSettings"
    ]
    assert "resourceUri" not in diagnostics["properties"]
    assert {log["category"] for log in diagnostics["properties"]["logs"]} == {
        "ContainerAppConsoleLogs",
        "ContainerAppSystemLogs",
    }


def test_readme_and_security_doc_state_the_measured_counts(checkov_report):
    """The checkov figures the README and docs/security.md show are this run's, per stack."""
    counts = {stack: {"passed": 0, "failed": 0, "skipped": 0} for stack in ("dev", "prod")}
    for outcome in counts["dev"]:
        for check in checkov_report["results"][f"{outcome}_checks"]:
            if Path(check["file_path"]).stem in counts:  # dev and prod: the figures the docs show
                counts[Path(check["file_path"]).stem][outcome] += 1
    expected = ", ".join(
        f"{stack} {c['passed']} passed / {c['failed']} failed / {c['skipped']} skipped"
        for stack, c in counts.items()
    )
    for doc in ("README.md", "docs/security.md"):
        text = " ".join((ROOT / doc).read_text().split())
        assert expected in text, f"{doc} should say: {expected}"


def test_container_apps_doc_states_the_measured_counts(checkov_report):
    counts = {"passed": 0, "failed": 0, "skipped": 0}
    for outcome in counts:
        counts[outcome] = sum(
            Path(c["file_path"]).stem == "aca" for c in checkov_report["results"][f"{outcome}_checks"]
        )
    text = " ".join((ROOT / "docs" / "container-apps.md").read_text().split())
    expected = f"aca {counts['passed']} passed / {counts['failed']} failed / {counts['skipped']} skipped"
    assert expected in text, expected
