"""Wires the bootstrap components; `bootstrap/__main__.py` exports what `build(load_config())` returns."""

from __future__ import annotations

import json
import shlex

import pulumi
import pulumi_random as random
from pulumi_azure_native import authorization, resources

from bootstrap import roles
from bootstrap.access import Scopes, matrix
from bootstrap.config import LEVELS, STACKS, BootstrapConfig
from bootstrap.deploy_identity import DeployIdentity, DeployIdentityArgs
from bootstrap.runner import ProdRunner, RunnerArgs
from bootstrap.secrets_key import SecretsKey, SecretsKeyArgs
from bootstrap.state_store import StateStore, StateStoreArgs

#: Repository variables the workflows read (`vars.NAME` in .github/workflows/deploy.yml), in print order: one
#: client id per trust level (each job logs in as its own identity), one secrets provider per stack.
VARIABLES = (
    "AZURE_CLIENT_ID_PREVIEW",
    "AZURE_CLIENT_ID_DEV",
    "AZURE_CLIENT_ID_PROD",
    "AZURE_TENANT_ID",
    "AZURE_SUBSCRIPTION_ID",
    "PULUMI_BACKEND_URL",
    "PULUMI_SECRETS_PROVIDER_DEV",
    "PULUMI_SECRETS_PROVIDER_PROD",
    "PROD_RUNNER_LABELS",
)
#: Name of the bootstrap output holding the prod runner's egress range (`<ip>/32`), for a
#: `pulumi.StackReference` from the main program.
RUNNER_EGRESS_OUTPUT = "runnerEgressCidr"
RUNNER_NAME = "aic-prod-runner"


def state_url(container: str, account: str) -> str:
    """`azblob://<container>?storage_account=<account>`: the Pulumi DIY backend URL that signs in with Entra
    (the default Azure credential chain) instead of an account key (pulumi/pulumi#10900)."""
    return f"azblob://{container}?storage_account={account}"


def gh_variable_commands(repository: str, values: dict[str, str]) -> str:
    """One `gh variable set NAME --body VALUE --repo owner/repo` line per entry of `values` (shell-quoted)."""
    return "\n".join(
        f"gh variable set {name} --body {shlex.quote(value)} --repo {shlex.quote(repository)}"
        for name, value in values.items()
    )


def build(cfg: BootstrapConfig) -> dict[str, pulumi.Output]:
    """Declare the stacks' resource groups, the state storage, the secrets keys, one identity per trust level
    and the prod runner; return the stack outputs."""
    client = authorization.get_client_config_output()
    group = resources.ResourceGroup(
        "delivery", resource_group_name=cfg.resource_group_name, location=cfg.location
    )
    # The main program adopts these by name (its `resourceGroupName`) and never creates a group, so no
    # identity needs a right at subscription scope. Protected: deleting one deletes a whole stack.
    protected = pulumi.ResourceOptions(protect=True)
    stack_groups = {
        stack: [(name, resources.ResourceGroup(f"stack-{name}", resource_group_name=name,
                                               location=cfg.location, opts=protected)) for name in names]
        for stack, names in cfg.stack_groups.items()
    }
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
        SecretsKeyArgs(group.name, group.id, group.location, client.tenant_id, vault_name,
                       {stack: f"{cfg.key_prefix}-{stack}" for stack in STACKS},
                       cfg.soft_delete_retention_days),
    )
    runner = ProdRunner(RUNNER_NAME, RunnerArgs(group.name, group.location, cfg.repository, cfg.runner))
    scopes = Scopes(
        groups={stack: [(name, g.id) for name, g in pairs] for stack, pairs in stack_groups.items()},
        keys=key.key_ids,
        state_container=store.container_id,
        runner_address=runner.public_ip_id,
    )
    decrypt_role_id = pulumi.Output.all(client.subscription_id, key.decrypt_role_guid).apply(
        lambda a: roles.role_definition_id(a[0], a[1]))
    identities = {
        level: DeployIdentity(
            level,
            DeployIdentityArgs(
                resource_group_name=group.name,
                location=group.location,
                identity_name=f"{cfg.identity_prefix}-{level}",
                subscription_id=client.subscription_id,
                subject=cfg.subjects[level],
                grants=grants,
                decrypt_role_id=decrypt_role_id,
            ),
        )
        for level, grants in matrix(cfg, scopes).items()
    }
    # `runs-on` of the prod jobs: `${{ fromJSON(vars.PROD_RUNNER_LABELS) }}`.
    runner_labels = ["self-hosted", *cfg.runner.labels]
    backend = pulumi.Output.all(store.container_name, store.account_name).apply(
        lambda names: state_url(names[0], names[1])
    )
    variables = pulumi.Output.all(
        *(identities[level].client_id for level in LEVELS), client.tenant_id, client.subscription_id, backend,
        *(key.provider_urls[stack] for stack in STACKS), json.dumps(runner_labels),
    ).apply(lambda values: dict(zip(VARIABLES, values, strict=True)))
    return {
        **{f"{level}ClientId": identities[level].client_id for level in LEVELS},
        **{f"{level}PrincipalId": identities[level].principal_id for level in LEVELS},
        # The same, by level, for the stack files' access lists (`ServicePrincipal:<principalId>`).
        "identities": pulumi.Output.from_input({
            level: {"clientId": identities[level].client_id, "principalId": identities[level].principal_id,
                    "subject": cfg.subjects[level]}
            for level in LEVELS
        }),
        "tenantId": client.tenant_id,
        "subscriptionId": client.subscription_id,
        "stateUrl": backend,
        **{f"{stack}SecretsProvider": key.provider_urls[stack] for stack in STACKS},
        **{f"{stack}SecretsKeyId": key.key_ids[stack] for stack in STACKS},
        "resourceGroup": group.name,
        "stackResourceGroups": pulumi.Output.from_input({s: list(n) for s, n in cfg.stack_groups.items()}),
        "stateContainerId": store.container_id,
        "federatedSubjects": pulumi.Output.from_input(dict(cfg.subjects)),
        "runnerEgressIp": runner.egress_ip,
        RUNNER_EGRESS_OUTPUT: runner.egress_cidr,
        "runnerPublicIpId": runner.public_ip_id,
        "runnerLabels": pulumi.Output.from_input(runner_labels),
        "ghVariableCommands": variables.apply(lambda v: gh_variable_commands(cfg.repository, v)),
    }
