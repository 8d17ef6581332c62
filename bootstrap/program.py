"""Wires the bootstrap components; `bootstrap/__main__.py` exports what `build(load_config())` returns."""

from __future__ import annotations

import shlex

import pulumi
import pulumi_random as random
from pulumi_azure_native import authorization, resources

from bootstrap import roles
from bootstrap.config import BootstrapConfig
from bootstrap.deploy_identity import DeployIdentity, DeployIdentityArgs
from bootstrap.secrets_key import SecretsKey, SecretsKeyArgs
from bootstrap.state_store import StateStore, StateStoreArgs

#: Repository variables the workflows read (`vars.NAME` in .github/workflows/deploy.yml), in print order.
VARIABLES = (
    "AZURE_CLIENT_ID",
    "AZURE_TENANT_ID",
    "AZURE_SUBSCRIPTION_ID",
    "PULUMI_BACKEND_URL",
    "PULUMI_SECRETS_PROVIDER",
)


def state_url(container: str, account: str) -> str:
    """`azblob://<container>?storage_account=<account>`: the Pulumi DIY backend URL that signs in with Entra
    (Azure CLI / default credential chain) instead of an account key (pulumi/pulumi#10900)."""
    return f"azblob://{container}?storage_account={account}"


def gh_variable_commands(repository: str, values: dict[str, str]) -> str:
    """One `gh variable set NAME --body VALUE --repo owner/repo` line per entry of `values` (shell-quoted)."""
    return "\n".join(
        f"gh variable set {name} --body {shlex.quote(value)} --repo {shlex.quote(repository)}"
        for name, value in values.items()
    )


def build(cfg: BootstrapConfig) -> dict[str, pulumi.Output]:
    """Declare the state storage, the secrets key and the deploy identity; return the stack outputs."""
    client = authorization.get_client_config_output()
    group = resources.ResourceGroup(
        "delivery", resource_group_name=cfg.resource_group_name, location=cfg.location
    )
    suffix = None
    if cfg.storage_account_name is None or cfg.key_vault_name is None:
        suffix = random.RandomString("name-suffix", length=8, special=False, upper=False, numeric=True).result
    account_name = cfg.storage_account_name or suffix.apply(lambda s: f"aicstate{s}")
    vault_name = cfg.key_vault_name or suffix.apply(lambda s: f"aic-state-{s}")
    store = StateStore(
        "state",
        StateStoreArgs(group.name, group.location, account_name, cfg.storage_sku, cfg.state_container,
                       cfg.state_retention_days),
    )
    key = SecretsKey(
        "secrets",
        SecretsKeyArgs(group.name, group.location, client.tenant_id, vault_name, cfg.key_name,
                       cfg.soft_delete_retention_days),
    )
    identity = DeployIdentity(
        "deploy",
        DeployIdentityArgs(
            resource_group_name=group.name,
            location=group.location,
            identity_name=cfg.identity_name,
            subscription_id=client.subscription_id,
            subjects=cfg.subjects,
            state_container_id=store.container_id,
            secrets_key_id=key.key_id,
            assignable_roles=roles.MAIN_PROGRAM_ROLES + cfg.extra_assignable_roles,
        ),
    )
    backend = pulumi.Output.all(store.container_name, store.account_name).apply(
        lambda names: state_url(names[0], names[1])
    )
    variables = pulumi.Output.all(
        identity.client_id, client.tenant_id, client.subscription_id, backend, key.provider_url
    ).apply(lambda values: dict(zip(VARIABLES, values, strict=True)))
    return {
        "clientId": identity.client_id,
        "tenantId": client.tenant_id,
        "subscriptionId": client.subscription_id,
        "principalId": identity.principal_id,
        "stateUrl": backend,
        "secretsProvider": key.provider_url,
        "resourceGroup": group.name,
        "stateContainerId": store.container_id,
        "secretsKeyId": key.key_id,
        "federatedSubjects": pulumi.Output.from_input(list(cfg.subjects)),
        "ghVariableCommands": variables.apply(lambda v: gh_variable_commands(cfg.repository, v)),
    }
