"""The bootstrap program under mocks: state storage, secrets key, deploy identity, federation, roles.

Role GUIDs are Azure's built-in role ids, the same in every tenant
(learn.microsoft.com/azure/role-based-access-control/built-in-roles).
"""

from __future__ import annotations

import ast
import itertools
import re
import shlex
from pathlib import Path

import pytest
import yaml

from bootstrap import roles
from bootstrap.config import FEDERATION_AUDIENCE, GITHUB_ISSUER, PROJECT
from tests.bootstrap.harness import IDENTITY_CLIENT_ID, IDENTITY_PRINCIPAL_ID, run_bootstrap
from tests.harness.stack_mocks import SUBSCRIPTION_ID, TENANT_ID, MockRun

ROOT = Path(__file__).resolve().parents[2]
REPO = "octo-org/aks-image-classifier"
SUB_SCOPE = f"/subscriptions/{SUBSCRIPTION_ID}"


def role_id(guid: str) -> str:
    return f"{SUB_SCOPE}/providers/Microsoft.Authorization/roleDefinitions/{guid}"


@pytest.fixture(scope="module")
def run() -> MockRun:
    return run_bootstrap()


def assignments(run: MockRun) -> dict[str, dict]:
    """Role assignments keyed by role GUID (each role is assigned once)."""
    found = {r.inputs["roleDefinitionId"].rsplit("/", 1)[1]: r.inputs
             for r in run.of_type("azure-native:authorization:RoleAssignment")}
    assert len(found) == len(run.of_type("azure-native:authorization:RoleAssignment"))
    return found


def test_state_storage_is_entra_only_versioned_and_protected(run):
    account = run.one("azure-native:storage:StorageAccount")
    assert account.inputs["allowSharedKeyAccess"] is False  # no account key / SAS can read the state
    assert account.inputs["defaultToOAuthAuthentication"] is True
    assert account.inputs["allowBlobPublicAccess"] is False
    assert account.inputs["minimumTlsVersion"] == "TLS1_2"
    assert account.inputs["enableHttpsTrafficOnly"] is True
    assert account.inputs["kind"] == "StorageV2" and account.inputs["sku"] == {"name": "Standard_LRS"}
    assert re.fullmatch(r"[a-z0-9]{3,24}", account.inputs["accountName"])  # Azure storage account naming rule
    assert account.protect
    service = run.one("azure-native:storage:BlobServiceProperties")
    assert service.inputs["isVersioningEnabled"] is True
    assert service.inputs["deleteRetentionPolicy"] == {"enabled": True, "days": 30}
    assert service.inputs["containerDeleteRetentionPolicy"] == {"enabled": True, "days": 30}
    container = run.one("azure-native:storage:BlobContainer")
    assert container.inputs["containerName"] == "pulumi-state"
    assert container.inputs["publicAccess"] == "None"
    assert container.inputs["accountName"] == account.inputs["accountName"]


def test_key_vault_uses_rbac_and_purge_protection_and_the_key_only_encrypts(run):
    vault = run.one("azure-native:keyvault:Vault")
    props = vault.inputs["properties"]
    assert props["enableRbacAuthorization"] is True and "accessPolicies" not in props
    assert props["enablePurgeProtection"] is True and props["enableSoftDelete"] is True
    assert props["softDeleteRetentionInDays"] == 90
    assert props["tenantId"] == TENANT_ID
    assert props["sku"] == {"family": "A", "name": "standard"}
    assert vault.protect
    key = run.one("azure-native:keyvault:Key")
    assert key.inputs["vaultName"] == vault.inputs["vaultName"]
    assert key.inputs["properties"]["kty"] == "RSA" and key.inputs["properties"]["keySize"] == 3072
    assert sorted(key.inputs["properties"]["keyOps"]) == ["decrypt", "encrypt"]
    assert key.protect


def test_identity_trusts_exactly_the_three_github_subjects(run):
    identity = run.one("azure-native:managedidentity:UserAssignedIdentity")
    assert identity.inputs["resourceName"] == "github-deploy"
    creds = run.of_type("azure-native:managedidentity:FederatedIdentityCredential")
    assert {c.inputs["subject"] for c in creds} == {
        f"repo:{REPO}:ref:refs/heads/main",
        f"repo:{REPO}:pull_request",
        f"repo:{REPO}:environment:production",
    }
    for cred in creds:
        assert cred.inputs["issuer"] == GITHUB_ISSUER == "https://token.actions.githubusercontent.com"
        assert cred.inputs["audiences"] == [FEDERATION_AUDIENCE] == ["api://AzureADTokenExchange"]
        assert cred.inputs["resourceName"] == "github-deploy"
        # Entra: 3-120 characters, alphanumeric, dash or underscore, starting with an alphanumeric.
        name = cred.inputs["federatedIdentityCredentialResourceName"]
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{2,119}", name)


def test_federated_credentials_are_created_one_after_another(run):
    """Entra answers concurrent credential writes on one identity with 'Too many concurrent writes'
    (workload identity federation considerations): each credential depends on the previous one."""
    creds = run.of_type("azure-native:managedidentity:FederatedIdentityCredential")
    assert not {c.urn for c in creds} & set(creds[0].dependencies)
    for before, after in itertools.pairwise(creds):
        assert before.urn in after.dependencies


def test_role_assignments_scopes_and_roles(run):
    found = assignments(run)
    account = run.one("azure-native:storage:StorageAccount").inputs["accountName"]
    vault = run.one("azure-native:keyvault:Vault").inputs["vaultName"]
    group = f"{SUB_SCOPE}/resourceGroups/aks-image-classifier-delivery"
    assert set(found) == {
        "b24988ac-6180-42a0-ab88-20f7382dd24c",  # Contributor
        "f58310d9-a9f6-439a-9e8d-f62e7b41a168",  # Role Based Access Control Administrator
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe",  # Storage Blob Data Contributor
        "12338af0-0e69-4776-bea7-57ae8d297424",  # Key Vault Crypto User
    }
    assert found[roles.CONTRIBUTOR]["scope"] == SUB_SCOPE
    assert found[roles.RBAC_ADMINISTRATOR]["scope"] == SUB_SCOPE
    assert found[roles.STORAGE_BLOB_DATA_CONTRIBUTOR]["scope"] == (
        f"{group}/providers/Microsoft.Storage/storageAccounts/{account}/blobServices/default/containers/pulumi-state"
    )
    assert found[roles.KEY_VAULT_CRYPTO_USER]["scope"] == (
        f"{group}/providers/Microsoft.KeyVault/vaults/{vault}/keys/pulumi-secrets"
    )
    for guid, inputs in found.items():
        assert inputs["roleDefinitionId"] == role_id(guid)
        assert inputs["principalId"] == IDENTITY_PRINCIPAL_ID
        # azure-native v3 defaults to User, which Azure rejects for an identity (azure-rest-api-specs#21664).
        assert inputs["principalType"] == "ServicePrincipal"
    assert not any(inputs["roleDefinitionId"].endswith(g) for inputs in found.values() for g in (
        "8e3af657-a8ff-443c-a75c-2fe8c4bcb635",  # Owner
        "18d7d88d-d35e-4fb5-a5c3-7773c20a72d9",  # User Access Administrator
    ))


def test_only_the_rbac_administrator_assignment_has_a_condition(run):
    found = assignments(run)
    for guid, inputs in found.items():
        if guid == roles.RBAC_ADMINISTRATOR:
            assert inputs["conditionVersion"] == "2.0"
            assert inputs["condition"] == roles.assign_only_condition(roles.MAIN_PROGRAM_ROLES)
        else:
            assert "condition" not in inputs and "conditionVersion" not in inputs


def _condition_guids(condition: str) -> list[set[str]]:
    return [set(g.split(", ")) for g in re.findall(r"GuidEquals \{([^}]*)\}", condition)]


def test_condition_limits_writes_and_deletes_to_the_main_programs_roles(run):
    condition = assignments(run)[roles.RBAC_ADMINISTRATOR]["condition"]
    expected = {
        "7f951dda-4ed3-4680-a7ca-43fe172d538d",  # AcrPull
        "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",  # Storage Blob Data Reader
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe",  # Storage Blob Data Contributor (deployer publishes models)
        "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b",  # Azure Kubernetes Service RBAC Cluster Admin
        "3498e952-d568-435e-9b2c-8d77e338d7f7",  # Azure Kubernetes Service RBAC Admin
        "a7ffa36f-339b-4b5c-8bdf-e2c188b2c0eb",  # Azure Kubernetes Service RBAC Writer
        "7f6c6a51-bcf8-42ba-9220-52d62157d7db",  # Azure Kubernetes Service RBAC Reader
    }
    # Microsoft's "Constrain roles" example: one clause for write (@Request), one for delete (@Resource).
    assert "ActionMatches{'Microsoft.Authorization/roleAssignments/write'}" in condition
    assert "ActionMatches{'Microsoft.Authorization/roleAssignments/delete'}" in condition
    assert "@Request[Microsoft.Authorization/roleAssignments:RoleDefinitionId]" in condition
    assert "@Resource[Microsoft.Authorization/roleAssignments:RoleDefinitionId]" in condition
    assert _condition_guids(condition) == [expected, expected]
    assert condition.count("(") == condition.count(")")


def test_extra_assignable_roles_join_the_condition():
    extra = "4633458B-17DE-408A-B874-0445C86B69E6"  # Key Vault Secrets User
    run = run_bootstrap({"extraAssignableRoles": [extra]})
    condition = assignments(run)[roles.RBAC_ADMINISTRATOR]["condition"]
    assert all(extra.lower() in guids for guids in _condition_guids(condition))


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_main_program_assigns_only_roles_the_condition_allows(stack):
    """Every role the main program (`stacks/`, run under its own mocks) assigns is in `MAIN_PROGRAM_ROLES`,
    or the first `pulumi up` from CI would fail with AuthorizationFailed on that assignment."""
    from tests.harness.stack_mocks import run_program, stack_file_config

    main = run_program(stack_file_config(stack, ROOT), stack)
    assigned = {r.inputs["roleDefinitionId"].rsplit("/", 1)[1]
                for r in main.of_type("azure-native:authorization:RoleAssignment")}
    assert roles.ACR_PULL in assigned
    assert assigned <= set(roles.MAIN_PROGRAM_ROLES), assigned - set(roles.MAIN_PROGRAM_ROLES)


def test_outputs_are_what_the_workflows_need(run):
    account = run.one("azure-native:storage:StorageAccount").inputs["accountName"]
    vault = run.one("azure-native:keyvault:Vault").inputs["vaultName"]
    assert run.outputs["clientId"] == IDENTITY_CLIENT_ID
    assert run.outputs["tenantId"] == TENANT_ID
    assert run.outputs["subscriptionId"] == SUBSCRIPTION_ID
    assert run.outputs["stateUrl"] == f"azblob://pulumi-state?storage_account={account}"
    assert run.outputs["secretsProvider"] == f"azurekeyvault://{vault}.vault.azure.net/keys/pulumi-secrets"
    # The scopes an operator's own data-role assignments use (docs/delivery.md, step 2.4).
    found = assignments(run)
    assert run.outputs["stateContainerId"] == found[roles.STORAGE_BLOB_DATA_CONTRIBUTOR]["scope"]
    assert run.outputs["secretsKeyId"] == found[roles.KEY_VAULT_CRYPTO_USER]["scope"]


def test_gh_variable_lines_set_every_variable_the_deploy_workflow_reads(run):
    lines = run.outputs["ghVariableCommands"].splitlines()
    parsed = {}
    for line in lines:
        argv = shlex.split(line)
        assert argv[:3] == ["gh", "variable", "set"]
        name = argv[3]
        assert argv[argv.index("--body") + 1] and argv[argv.index("--repo") + 1] == REPO
        parsed[name] = argv[argv.index("--body") + 1]
    assert parsed == {
        "AZURE_CLIENT_ID": IDENTITY_CLIENT_ID,
        "AZURE_TENANT_ID": TENANT_ID,
        "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION_ID,
        "PULUMI_BACKEND_URL": run.outputs["stateUrl"],
        "PULUMI_SECRETS_PROVIDER": run.outputs["secretsProvider"],
    }
    deploy = (ROOT / ".github/workflows/deploy.yml").read_text()
    read = set(re.findall(r"vars\.([A-Z_]+)", deploy))
    assert read == set(parsed), read ^ set(parsed)


def test_custom_subjects_and_names():
    subjects = [f"repo:{REPO}:environment:staging", f"repo:{REPO}:ref:refs/heads/release"]
    run = run_bootstrap({"federatedSubjects": subjects, "storageAccountName": "mystate01",
                         "keyVaultName": "my-vault-01", "stateContainer": "state",
                         "storageSku": "Standard_ZRS"})
    creds = run.of_type("azure-native:managedidentity:FederatedIdentityCredential")
    assert [c.inputs["subject"] for c in creds] == subjects
    assert [c.inputs["federatedIdentityCredentialResourceName"] for c in creds] == [
        "github-environment-staging", "github-ref-refs-heads-release"]
    assert run.outputs["stateUrl"] == "azblob://state?storage_account=mystate01"
    assert run.outputs["secretsProvider"] == "azurekeyvault://my-vault-01.vault.azure.net/keys/pulumi-secrets"
    assert run.of_type("random:index/randomString:RandomString") == []
    assert run.one("azure-native:storage:StorageAccount").inputs["sku"] == {"name": "Standard_ZRS"}


def test_branch_and_environment_shape_the_default_subjects():
    run = run_bootstrap({"mainBranch": "trunk", "productionEnvironment": "prod"})
    assert run.outputs["federatedSubjects"] == [
        f"repo:{REPO}:ref:refs/heads/trunk", f"repo:{REPO}:pull_request", f"repo:{REPO}:environment:prod"]


def test_defaults_in_pulumi_yaml_match_the_program():
    """Pulumi.yaml's defaults are what the CLI applies; the program's own fallbacks must agree."""
    from bootstrap.config import load_config

    declared = yaml.safe_load((ROOT / "bootstrap/Pulumi.yaml").read_text())["config"]
    assert yaml.safe_load((ROOT / "bootstrap/Pulumi.yaml").read_text())["name"] == PROJECT
    assert "default" not in declared["githubRepository"]  # required: the CLI refuses to run without it
    with_defaults = {f"{PROJECT}:{k}": v["default"] for k, v in declared.items() if "default" in v}
    base = {"azure-native:location": "westeurope", f"{PROJECT}:githubRepository": REPO}
    from_yaml = load_config({**base, **with_defaults}.get)
    from_code = load_config(base.get)
    assert from_yaml == from_code


def test_bootstrap_pins_match_the_main_program():
    def pins(path: Path) -> dict[str, str]:
        lines = [line.split("#")[0].strip() for line in path.read_text().splitlines()]
        return dict(line.split("==") for line in lines if "==" in line)

    main, boot = pins(ROOT / "requirements.txt"), pins(ROOT / "bootstrap/requirements.txt")
    assert boot and all(main[name] == version for name, version in boot.items())


def test_main_program_does_not_import_bootstrap():
    """`bootstrap/` is its own Pulumi project: the main program and its tools never import it."""
    for path in [*(ROOT / "stacks").glob("*.py"), ROOT / "__main__.py", *(ROOT / "tools").glob("*.py")]:
        for node in ast.walk(ast.parse(path.read_text())):
            names = [a.name for a in node.names] if isinstance(node, ast.Import) else (
                [node.module or ""] if isinstance(node, ast.ImportFrom) else [])
            assert not any(n.split(".")[0] == "bootstrap" for n in names), path
