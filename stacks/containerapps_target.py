"""Target `containerapps`: the classifier on Azure Container Apps, no cluster (resource group, registry,
image, Log Analytics, a managed environment, a user-assigned identity, the model repository and the
Container App)."""

from __future__ import annotations

import pulumi
from pulumi_azure_native import managedidentity

from stacks import pod_spec
from stacks.acr_pull import AcrPull, AcrPullArgs
from stacks.app_environment import AppEnvironment, AppEnvironmentArgs
from stacks.azure_base import TokenExchange, azure_base
from stacks.config import StackConfig
from stacks.container_app import ContainerApp, ContainerAppArgs
from stacks.grantee import grantees
from stacks.model_repository import ModelRepository, ModelRepositoryArgs, storage_account_prefix


def build(cfg: StackConfig, exchange: TokenExchange) -> dict[str, pulumi.Output]:
    """Declare the Container Apps stack; return its outputs: `endpoint` (the HTTPS URL), `latest_revision`,
    `revision_suffix`, `traffic` (`{revision: percent}`), `image`, `registry`, `resource_group`, and with the
    model repository `model_repository_url`, `model_storage_account_url`."""
    aca = cfg.container_app
    assert aca is not None and cfg.model is not None and cfg.access is not None
    base = azure_base(cfg, exchange)
    group, client = base.group, base.client
    environment = AppEnvironment(
        "aca",
        AppEnvironmentArgs(
            resource_group_name=group.name,
            location=group.location,
            log_retention_days=aca.log_retention_days,
            workload_profile=aca.workload_profile,
            profile_min_count=aca.profile_min_count,
            profile_max_count=aca.profile_max_count,
        ),
    )
    identity = managedidentity.UserAssignedIdentity(
        f"{cfg.workload.app_name}-identity", resource_group_name=group.name, location=group.location
    )
    acr_pull = AcrPull(
        "acr-pull",
        AcrPullArgs(
            principal_id=identity.principal_id,
            registry_id=base.registry.registry_id,
            subscription_id=client.subscription_id,
            description="the container app's identity pulls the classifier image",
        ),
    )
    depends_on: list[pulumi.Resource] = [acr_pull.assignment]
    repository = None
    if cfg.model.repository:
        repository = ModelRepository(
            "models",
            ModelRepositoryArgs(
                resource_group_name=group.name,
                location=group.location,
                sku=cfg.model.storage_sku,
                name_prefix=storage_account_prefix("aicm", cfg.stack),
                subscription_id=client.subscription_id,
                publishers=grantees(
                    cfg.access.model_publishers,
                    client.object_id if cfg.access.grant_deployer else None,
                    cfg.access.deployer_principal_type,
                ),
                reader_principal_id=identity.principal_id,
                reader_description="the container app's identity reads model versions",
            ),
        )
        depends_on.append(repository.reader_assignment)
    model_env = pod_spec.model_env_values(cfg.model)
    # DefaultAzureCredential picks the user-assigned identity by its client id (azure-identity
    # ManagedIdentityCredential reads AZURE_CLIENT_ID).
    env: dict[str, pulumi.Input[str]] = {
        **pod_spec.service_env_values(cfg.workload),
        **model_env,
        "AZURE_CLIENT_ID": identity.client_id,
    }
    container_app = ContainerApp(
        "classifier",
        ContainerAppArgs(
            resource_group_name=group.name,
            location=group.location,
            environment_id=environment.environment_id,
            workload_profile_name=environment.workload_profile_name,
            app_name=cfg.workload.app_name,
            image=base.image.ref,
            image_digest=base.image.digest,
            registry_server=base.registry.login_server,
            identity_id=identity.id,
            cpu=aca.cpu,
            memory_gib=aca.memory_gib,
            min_replicas=aca.min_replicas,
            max_replicas=aca.max_replicas,
            concurrency=aca.concurrency,
            cooldown_s=aca.cooldown_s,
            termination_grace_s=cfg.workload.termination_grace_s,
            env=env,
            canary_percent=aca.canary_percent,
            stable_revision=aca.stable_revision,
            api_key=cfg.api_key,
            model_cache=bool(model_env),
            allowed_source_ranges=cfg.workload.allowed_source_ranges,
            depends_on=depends_on,
        ),
    )
    outputs = {
        "endpoint": container_app.url,
        "latest_revision": container_app.latest_revision,
        "revision_suffix": container_app.revision_suffix,
        "traffic": container_app.traffic,
        "image": base.image.ref,
        "registry": base.registry.login_server,
        "resource_group": group.name,
    }
    if repository is not None:  # tools.publish_model --stack reads model_repository_url
        outputs["model_repository_url"] = repository.container_url
        outputs["model_storage_account_url"] = repository.blob_endpoint
    return outputs
