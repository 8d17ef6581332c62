"""The bootstrap program under mocks: state storage, secrets key, deploy identity, federation, roles.

Role GUIDs are Azure's built-in role ids, the same in every tenant
(learn.microsoft.com/azure/role-based-access-control/built-in-roles).
"""

from __future__ import annotations

import ast
import re
import shlex
from pathlib import Path

import pytest
import yaml

from bootstrap import roles
from bootstrap.config import FEDERATION_AUDIENCE, GITHUB_ISSUER, PROJECT
from tests.bootstrap.harness import client_id, principal_id, run_bootstrap
from tests.harness.stack_mocks import SUBSCRIPTION_ID, TENANT_ID, MockRun

ROOT = Path(__file__).resolve().parents[2]
REPO = "octo-org/aks-image-classifier"
SUB_SCOPE = f"/subscriptions/{SUBSCRIPTION_ID}"


@pytest.fixture(scope="module")
def run() -> MockRun:
    return run_bootstrap()


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
    keys = run.of_type("azure-native:keyvault:Key")
    # One key per stack: a role assignment on one key opens one stack's secrets (Key Vault RBAC key scope).
    # Sorted: the mocks see registrations in the order the program's outputs resolve, which varies.
    assert sorted(k.inputs["keyName"] for k in keys) == ["pulumi-secrets-dev", "pulumi-secrets-prod"]
    for key in keys:
        assert key.inputs["vaultName"] == vault.inputs["vaultName"]
        assert key.inputs["properties"]["kty"] == "RSA" and key.inputs["properties"]["keySize"] == 3072
        assert sorted(key.inputs["properties"]["keyOps"]) == ["decrypt", "encrypt"]
        assert key.protect


def test_decrypt_role_has_only_key_read_and_decrypt(run):
    """No built-in role has decrypt alone (Key Vault Crypto User adds encrypt, sign, wrap...): the custom role
    holds the two data actions a preview needs and no control-plane action, assignable in the delivery
    group."""
    role = run.one("azure-native:authorization:RoleDefinition")
    assert role.inputs["permissions"] == [{"dataActions": ["Microsoft.KeyVault/vaults/keys/read",
                                                           "Microsoft.KeyVault/vaults/keys/decrypt/action"]}]
    assert role.inputs["assignableScopes"] == [f"{SUB_SCOPE}/resourceGroups/aks-image-classifier-delivery"]
    assert role.inputs["roleType"] == "CustomRole"
    assert re.fullmatch(r"[0-9a-f-]{36}", role.inputs["roleDefinitionId"])  # ARM: a GUID names a role


def test_stack_resource_groups_are_created_by_name_and_protected(run):
    """The main program adopts these groups by name (`resourceGroupName`), so no identity needs
    `resourceGroups/write` at subscription scope."""
    groups = {r.inputs["resourceGroupName"]: r for r in run.of_type("azure-native:resources:ResourceGroup")}
    assert set(groups) == {"aks-image-classifier-delivery", "aks-image-classifier-dev",
                           "aks-image-classifier-prod"}
    assert groups["aks-image-classifier-dev"].protect and groups["aks-image-classifier-prod"].protect
    assert all(g.inputs["location"] == "westeurope" for g in groups.values())


def test_each_identity_trusts_one_github_subject(run):
    identities = {r.inputs["resourceName"]
                  for r in run.of_type("azure-native:managedidentity:UserAssignedIdentity")}
    assert identities == {"github-deploy-preview", "github-deploy-dev", "github-deploy-prod"}
    creds = run.of_type("azure-native:managedidentity:FederatedIdentityCredential")
    assert {c.inputs["resourceName"]: c.inputs["subject"] for c in creds} == {
        "github-deploy-preview": f"repo:{REPO}:pull_request",
        "github-deploy-dev": f"repo:{REPO}:ref:refs/heads/main",
        "github-deploy-prod": f"repo:{REPO}:environment:production",
    }
    for cred in creds:
        assert cred.inputs["issuer"] == GITHUB_ISSUER == "https://token.actions.githubusercontent.com"
        assert cred.inputs["audiences"] == [FEDERATION_AUDIENCE] == ["api://AzureADTokenExchange"]
        # Entra: 3-120 characters, alphanumeric, dash or underscore, starting with an alphanumeric.
        name = cred.inputs["federatedIdentityCredentialResourceName"]
        assert re.fullmatch(r"[A-Za-z0-9][A-Za-z0-9_-]{2,119}", name)


def test_every_assignment_is_to_a_bootstrap_identity_as_service_principal(run):
    principals = {principal_id(r.inputs["resourceName"])
                  for r in run.of_type("azure-native:managedidentity:UserAssignedIdentity")}
    found = run.of_type("azure-native:authorization:RoleAssignment")
    assert found
    for assignment in found:
        inputs = assignment.inputs
        assert inputs["principalId"] in principals
        # azure-native v3 defaults to User, which Azure rejects for an identity (azure-rest-api-specs#21664).
        assert inputs["principalType"] == "ServicePrincipal"
        assert inputs["roleDefinitionId"].startswith(
            f"{SUB_SCOPE}/providers/Microsoft.Authorization/roleDefinitions/")
        assert ("condition" in inputs) == ("conditionVersion" in inputs)
        assert inputs.get("conditionVersion", "2.0") == "2.0"


def _rbac_admin_conditions(run) -> list[str]:
    return [r.inputs["condition"] for r in run.of_type("azure-native:authorization:RoleAssignment")
            if r.inputs["roleDefinitionId"].endswith(roles.RBAC_ADMINISTRATOR)]


def _condition_guids(condition: str) -> list[set[str]]:
    return [set(g.split(", ")) for g in re.findall(r"GuidEquals \{([^}]*)\}", condition)]


def test_condition_limits_writes_and_deletes_to_roles_and_principal_types(run):
    expected = {
        "7f951dda-4ed3-4680-a7ca-43fe172d538d",  # AcrPull
        "2a2b9908-6ea1-4ae2-8e65-a410df84e7d1",  # Storage Blob Data Reader
        "ba92f5b4-2d11-453d-a403-e96b0029c9fe",  # Storage Blob Data Contributor (model publishers)
        "b0d8363b-8ddd-447d-831f-62ca05bff136",  # Monitoring Data Reader (KEDA reads the workspace)
        "b1ff04bb-8a4e-4dc4-8eb5-8693973ce19b",  # Azure Kubernetes Service RBAC Cluster Admin
    }
    conditions = _rbac_admin_conditions(run)
    assert len(conditions) == 2  # one per deploy identity, on its own group
    for condition in conditions:
        # Microsoft's "Constrain roles and principal types": write (@Request) and delete (@Resource) clauses.
        assert "ActionMatches{'Microsoft.Authorization/roleAssignments/write'}" in condition
        assert "ActionMatches{'Microsoft.Authorization/roleAssignments/delete'}" in condition
        for source in ("@Request", "@Resource"):
            assert f"{source}[Microsoft.Authorization/roleAssignments:RoleDefinitionId]" in condition
            assert (f"{source}[Microsoft.Authorization/roleAssignments:PrincipalType] "
                    "ForAnyOfAnyValues:StringEqualsIgnoreCase {'ServicePrincipal', 'Group'}") in condition
        assert _condition_guids(condition) == [expected, expected]
        assert condition.count("(") == condition.count(")")


def test_extra_assignable_roles_join_the_condition():
    extra = "4633458B-17DE-408A-B874-0445C86B69E6"  # Key Vault Secrets User
    run = run_bootstrap({"extraAssignableRoles": [extra]})
    for condition in _rbac_admin_conditions(run):
        assert all(extra.lower() in guids for guids in _condition_guids(condition))


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_main_program_assigns_only_roles_the_condition_allows(stack):
    """Every role the main program (`stacks/`, run under its own mocks) assigns is one its stack's deploy
    identity may assign, or the first `pulumi up` from CI fails with AuthorizationFailed on it."""
    from bootstrap.access import assignable_roles
    from bootstrap.config import load_config
    from tests.bootstrap.harness import BASE
    from tests.harness.stack_mocks import run_program, stack_file_config

    main = run_program(stack_file_config(stack, ROOT), stack)
    assigned = {r.inputs["roleDefinitionId"].rsplit("/", 1)[1]
                for r in main.of_type("azure-native:authorization:RoleAssignment")}
    allowed = set(assignable_roles(load_config(BASE.get)))
    assert roles.ACR_PULL in assigned
    assert assigned <= allowed, assigned - allowed


def test_outputs_are_what_the_workflows_need(run):
    account = run.one("azure-native:storage:StorageAccount").inputs["accountName"]
    vault = run.one("azure-native:keyvault:Vault").inputs["vaultName"]
    for level in ("preview", "dev", "prod"):
        assert run.outputs[f"{level}ClientId"] == client_id(f"github-deploy-{level}")
        assert run.outputs["identities"][level] == {
            "clientId": client_id(f"github-deploy-{level}"),
            "principalId": principal_id(f"github-deploy-{level}"),
            "subject": run.outputs["federatedSubjects"][level]}
    assert run.outputs["tenantId"] == TENANT_ID
    assert run.outputs["subscriptionId"] == SUBSCRIPTION_ID
    assert run.outputs["stateUrl"] == f"azblob://pulumi-state?storage_account={account}"
    for stack in ("dev", "prod"):
        assert run.outputs[f"{stack}SecretsProvider"] == (
            f"azurekeyvault://{vault}.vault.azure.net/keys/pulumi-secrets-{stack}")
        assert run.outputs[f"{stack}SecretsKeyId"].endswith(f"/vaults/{vault}/keys/pulumi-secrets-{stack}")
    assert run.outputs["stateContainerId"].endswith(
        f"/storageAccounts/{account}/blobServices/default/containers/pulumi-state")
    assert run.outputs["stackResourceGroups"] == {"dev": ["aks-image-classifier-dev"],
                                                  "prod": ["aks-image-classifier-prod"]}


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
        "AZURE_CLIENT_ID_PREVIEW": run.outputs["previewClientId"],
        "AZURE_CLIENT_ID_DEV": run.outputs["devClientId"],
        "AZURE_CLIENT_ID_PROD": run.outputs["prodClientId"],
        "AZURE_TENANT_ID": TENANT_ID,
        "AZURE_SUBSCRIPTION_ID": SUBSCRIPTION_ID,
        "PULUMI_BACKEND_URL": run.outputs["stateUrl"],
        "PULUMI_SECRETS_PROVIDER_DEV": run.outputs["devSecretsProvider"],
        "PULUMI_SECRETS_PROVIDER_PROD": run.outputs["prodSecretsProvider"],
        "PROD_RUNNER_LABELS": '["self-hosted", "aic-prod"]',
    }
    deploy = (ROOT / ".github/workflows/deploy.yml").read_text()
    read = set(re.findall(r"vars\.([A-Z_]+)", deploy))
    assert read == set(parsed), read ^ set(parsed)


def test_custom_subjects_and_names():
    subjects = {"previewSubject": f"repo:{REPO}:pull_request:custom",
                "devSubject": f"repo:{REPO}:ref:refs/heads/release",
                "prodSubject": f"repo:{REPO}:environment:live"}
    run = run_bootstrap({**subjects, "storageAccountName": "mystate01", "keyVaultName": "my-vault-01",
                         "stateContainer": "state", "storageSku": "Standard_ZRS",
                         "devResourceGroups": ["aic-dev-a", "aic-dev-b"], "prodResourceGroups": ["aic-live"]})
    creds = run.of_type("azure-native:managedidentity:FederatedIdentityCredential")
    assert sorted(c.inputs["subject"] for c in creds) == sorted(subjects.values())
    assert {c.inputs["federatedIdentityCredentialResourceName"] for c in creds} == {
        "github-pull-request-custom", "github-ref-refs-heads-release", "github-environment-live"}
    assert run.outputs["stateUrl"] == "azblob://state?storage_account=mystate01"
    assert run.outputs["prodSecretsProvider"] == "azurekeyvault://my-vault-01.vault.azure.net/keys/pulumi-secrets-prod"
    assert run.of_type("random:index/randomString:RandomString") == []
    assert run.one("azure-native:storage:StorageAccount").inputs["sku"] == {"name": "Standard_ZRS"}
    contributor = {r.inputs["scope"].rsplit("/", 1)[1]
                   for r in run.of_type("azure-native:authorization:RoleAssignment")
                   if r.inputs["roleDefinitionId"].endswith(roles.CONTRIBUTOR)}
    assert contributor == {"aic-dev-a", "aic-dev-b", "aic-live"}


def test_branch_and_environment_shape_the_default_subjects():
    run = run_bootstrap({"mainBranch": "trunk", "productionEnvironment": "prod"})
    assert run.outputs["federatedSubjects"] == {
        "preview": f"repo:{REPO}:pull_request", "dev": f"repo:{REPO}:ref:refs/heads/trunk",
        "prod": f"repo:{REPO}:environment:prod"}


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


DELIVERY_DOC = ROOT / "docs" / "delivery.md"


def test_every_bootstrap_key_is_documented():
    declared = yaml.safe_load((ROOT / "bootstrap/Pulumi.yaml").read_text())["config"]
    spans = set(re.findall(r"`([^`\n]+)`", DELIVERY_DOC.read_text()))
    assert sorted(set(declared) - spans) == []


def test_docs_name_the_runner_output_labels_and_defaults(run):
    """The names and defaults docs/delivery.md gives the runner come from the code."""
    from bootstrap.config import load_config
    from bootstrap.program import RUNNER_EGRESS_OUTPUT, RUNNER_NAME
    from tests.bootstrap.harness import BASE

    doc = DELIVERY_DOC.read_text()
    runner = load_config(BASE.get).runner
    assert RUNNER_EGRESS_OUTPUT in run.outputs
    for text in (f"**`{RUNNER_EGRESS_OUTPUT}`**", f"`{RUNNER_NAME}`", f"`{runner.vm_size}`",
                 f"`{runner.address_prefix}`", f"`{runner.version}`", f"`{run.outputs['runnerLabels'][1]}`",
                 f"`{RUNNER_NAME}-egress`", f"`{RUNNER_NAME}-vm`",
                 '`runs-on: ${{ fromJSON(vars.PROD_RUNNER_LABELS) }}`',
                 f"`{run.outputs['ghVariableCommands'].split()[3]}`"):
        assert text in doc, text


@pytest.mark.parametrize("stack", ["dev", "prod"])
def test_bootstrap_creates_the_group_each_stack_file_names(stack):
    """The main program adopts the group its stack file names (`resourceGroupName`); the bootstrap must have
    created exactly that group for that stack, or the first `up` fails with ResourceGroupNotFound."""
    from bootstrap.config import load_config
    from tests.bootstrap.harness import BASE
    from tests.harness.stack_mocks import stack_file_config

    key = "aks-image-classifier:resourceGroupName"
    config = stack_file_config(stack, ROOT)
    if key not in config:
        pytest.skip("the main program declares no resourceGroupName (it still creates its own group)")
    assert config[key] in load_config(BASE.get).stack_groups[stack]
