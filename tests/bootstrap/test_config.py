"""Bootstrap config validation: a missing or bad value fails before any resource exists, naming the key."""

from __future__ import annotations

import pytest

from bootstrap.config import PROJECT, ConfigError, load_config
from bootstrap.deploy_identity import credential_name
from bootstrap.roles import assign_only_condition, state_condition
from tests.bootstrap.harness import BASE, run_bootstrap
from tests.harness.stack_mocks import MockRun

REPO_KEY = f"{PROJECT}:githubRepository"


def load(**values):
    config = dict(BASE)
    config.update({k if ":" in k else f"{PROJECT}:{k}": v for k, v in values.items()})
    return load_config(config.get)


@pytest.mark.parametrize(
    ("values", "key", "words"),
    [
        ({"githubRepository": "aks-image-classifier"}, REPO_KEY, "owner/repo"),
        ({"githubRepository": "octo-org/"}, REPO_KEY, "owner/repo"),
        ({"githubRepository": "/repo"}, REPO_KEY, "owner/repo"),
        ({"githubRepository": "octo org/repo"}, REPO_KEY, "owner/repo"),
        ({"githubRepository": "-octo/repo"}, REPO_KEY, "owner/repo"),
        ({"githubRepository": "octo--org/repo"}, REPO_KEY, "owner/repo"),
        ({"githubRepository": "a/b/c"}, REPO_KEY, "owner/repo"),
        ({"githubRepository": "octo/.."}, REPO_KEY, "owner/repo"),
        ({"githubRepository": "o" * 40 + "/repo"}, REPO_KEY, "owner/repo"),
        ({"githubRepository": "https://github.com/octo/repo"}, REPO_KEY, "owner/repo"),
        ({"mainBranch": "feature branch"}, f"{PROJECT}:mainBranch", "branch"),
        ({"mainBranch": "a..b"}, f"{PROJECT}:mainBranch", "branch"),
        ({"productionEnvironment": "prod:eu"}, f"{PROJECT}:productionEnvironment", "environment"),
        ({"devSubject": "repo:o/r:ref:refs/heads/*"}, f"{PROJECT}:devSubject", "wildcards"),
        ({"previewSubject": "o/r:pull_request"}, f"{PROJECT}:previewSubject", "repo:"),
        ({"prodSubject": "repo:o/r:ref:refs/heads/main"}, f"{PROJECT}:prodSubject", "environment subject"),
        ({"previewSubject": "repo:octo-org/aks-image-classifier:ref:refs/heads/main"},
         f"{PROJECT}:previewSubject", "must differ"),
        ({"devResourceGroups": '["rg."]'}, f"{PROJECT}:devResourceGroups", "resource group"),
        ({"devResourceGroups": '["shared"]', "prodResourceGroups": '["Shared"]'},
         f"{PROJECT}:devResourceGroups", "must not share"),
        ({"prodResourceGroups": "aic-prod"}, f"{PROJECT}:prodResourceGroups", "list"),
        ({"clusterAdminAssignable": "yes"}, f"{PROJECT}:clusterAdminAssignable", "true or false"),
        ({"runnerAddressPrefix": "10.90.0.0/30"}, f"{PROJECT}:runnerAddressPrefix", "/29 or larger"),
        ({"runnerAddressPrefix": "8.8.8.0/24"}, f"{PROJECT}:runnerAddressPrefix", "private"),
        ({"runnerAddressPrefix": "a subnet"}, f"{PROJECT}:runnerAddressPrefix", "CIDR"),
        ({"runnerLabels": '["self-hosted"]'}, f"{PROJECT}:runnerLabels", "custom runner labels"),
        ({"runnerLabels": '["aic prod"]'}, f"{PROJECT}:runnerLabels", "custom runner labels"),
        ({"runnerVmSize": "D2as_v5"}, f"{PROJECT}:runnerVmSize", "VM size"),
        ({"runnerVersion": "latest"}, f"{PROJECT}:runnerVersion", "x.y.z"),
        ({"storageAccountName": "My-State"}, f"{PROJECT}:storageAccountName", "3-24 lowercase"),
        ({"storageAccountName": "a" * 25}, f"{PROJECT}:storageAccountName", "3-24 lowercase"),
        ({"storageSku": "Premium_LRS"}, f"{PROJECT}:storageSku", "Standard_LRS"),
        ({"stateContainer": "Pulumi_State"}, f"{PROJECT}:stateContainer", "container name"),
        ({"stateContainer": "a--b"}, f"{PROJECT}:stateContainer", "container name"),
        ({"stateRetentionDays": "0"}, f"{PROJECT}:stateRetentionDays", "between 1 and 365"),
        ({"stateRetentionDays": "a month"}, f"{PROJECT}:stateRetentionDays", "integer"),
        ({"keyVaultName": "1vault"}, f"{PROJECT}:keyVaultName", "vault name"),
        ({"keyVaultName": "my--vault"}, f"{PROJECT}:keyVaultName", "vault name"),
        ({"keyVaultName": "v" * 25}, f"{PROJECT}:keyVaultName", "vault name"),
        ({"keyPrefix": "pulumi_secrets"}, f"{PROJECT}:keyPrefix", "key name"),
        ({"softDeleteRetentionDays": "3"}, f"{PROJECT}:softDeleteRetentionDays", "between 7 and 90"),
        ({"extraAssignableRoles": '["Owner"]'}, f"{PROJECT}:extraAssignableRoles", "GUID"),
        ({"identityPrefix": "x"}, f"{PROJECT}:identityPrefix", "identity name"),
        ({"resourceGroupName": "rg."}, f"{PROJECT}:resourceGroupName", "resource group"),
        ({"azure-native:location": ""}, "azure-native:location", "must be set"),
    ],
)
def test_invalid_value_names_the_key(values, key, words):
    with pytest.raises(ConfigError) as error:
        load(**values)
    assert str(error.value).startswith(key), str(error.value)
    assert words in str(error.value)


def test_missing_repository_fails_naming_the_key():
    with pytest.raises(ConfigError) as error:
        load_config({"azure-native:location": "westeurope"}.get)
    assert str(error.value).startswith(f"{REPO_KEY} must be set")


@pytest.mark.parametrize("repository", ["octo-org/aks-image-classifier", "a/b", "Octo/my.repo_v2-x",
                                        "o" * 39 + "/" + "r" * 100, "octo/.github"])
def test_valid_repository_names(repository):
    assert load(githubRepository=repository).repository == repository


def test_config_error_stops_the_program_before_any_resource():
    run = MockRun()
    with pytest.raises(ConfigError, match=f"^{REPO_KEY}"):
        run_bootstrap({"githubRepository": "not-a-repo"}, run=run)
    assert run.resources == [] and run.invokes == []


def test_missing_repository_stops_the_program_before_any_resource():
    run = MockRun()
    with pytest.raises(ConfigError, match=f"^{REPO_KEY} must be set"):
        run_bootstrap({"azure-native:location": "westeurope"}, base=False, run=run)
    assert run.resources == [] and run.invokes == []


def test_credential_names_fit_entra_rules():
    assert credential_name("repo:o/r:ref:refs/heads/main") == "github-ref-refs-heads-main"
    assert credential_name("repo:o/r:pull_request") == "github-pull-request"
    assert credential_name("repo:o/r:environment:production") == "github-environment-production"
    assert len(credential_name("repo:o/r:environment:" + "e" * 300)) == 120


def test_condition_needs_a_role_and_a_path():
    with pytest.raises(ValueError, match="at least one"):
        assign_only_condition(())
    with pytest.raises(ValueError, match="at least one"):
        assign_only_condition(("7f951dda-4ed3-4680-a7ca-43fe172d538d",), ())
    with pytest.raises(ValueError, match="at least one readable path"):
        state_condition((), ())
